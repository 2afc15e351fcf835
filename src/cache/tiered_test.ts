/**
 * `CacheStore` is the seam: a store written for this test, implementing the
 * interface alone (asynchronous, no synchronous lookup), plugs into the tiers
 * as a shared store between two cache engines — as a disk or another shared
 * store would — and the engine serves, promotes and purges through it.
 */
import assert from "node:assert/strict";
import { CacheEngine, storageTtl } from "./cache.ts";
import type { CacheEntry } from "./entry.ts";
import { MemoryStore } from "./memory.ts";
import { STRICT_HEURISTIC } from "./policy.ts";
import type { CacheStore } from "./store.ts";
import { call, fetchNext, startOrigin } from "./test_util.ts";
import { TieredStore } from "./tiered.ts";
import { secondaryKey } from "./vary.ts";

/** A plain Map of variants per key, answering only through promises. */
class MapStore implements CacheStore {
  readonly map = new Map<string, CacheEntry[]>();
  async get(key: string, headers: Headers): Promise<CacheEntry | undefined> {
    await Promise.resolve();
    return this.map.get(key)?.find((e) => (secondaryKey(e.varyNames, headers) ?? "") === e.varyKey);
  }
  set(key: string, entry: CacheEntry, _ttlSec: number): Promise<void> {
    const kept = (this.map.get(key) ?? []).filter((e) => e.varyKey !== entry.varyKey);
    this.map.set(key, [...kept, entry]);
    return Promise.resolve();
  }
  delete(key: string): Promise<boolean> {
    return Promise.resolve(this.map.delete(key));
  }
  purgePrefix(prefix: string): Promise<number> {
    let n = 0;
    for (const k of [...this.map.keys()]) if (k.startsWith(prefix) && this.map.delete(k)) n++;
    return Promise.resolve(n);
  }
  clear(): Promise<number> {
    const n = this.map.size;
    this.map.clear();
    return Promise.resolve(n);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function engineOver(shared: CacheStore): CacheEngine {
  const ttlOf = (e: CacheEntry, now: number) => storageTtl(e, now, 3600);
  return new CacheEngine({
    store: new TieredStore({
      local: [new MemoryStore({ maxBytes: 1 << 20 })],
      shared: [shared],
      ttlOf,
    }),
    maxObjectBytes: 1 << 20,
    heuristic: STRICT_HEURISTIC,
    revalidateGraceSec: 3600,
  });
}

Deno.test("a store implementing CacheStore alone is a tier: shared hits, promotion, purge", async () => {
  const origin = startOrigin({
    "/doc": (_req, n) => new Response(`doc ${n}`, { headers: { "cache-control": "max-age=60" } }),
  });
  const shared = new MapStore();
  const a = engineOver(shared);
  const b = engineOver(shared);
  const url = `${origin.url}/doc`;
  try {
    const first = await call(a.wrap(fetchNext), url);
    assert.deepEqual([first.xcache, first.body], ["MISS", "doc 1"]);
    await a.settle();
    assert.equal(shared.map.size, 1, "written through to the shared tier");
    // Another engine (instance) has nothing in memory: it finds the entry in the shared tier.
    const other = await call(b.wrap(fetchNext), url);
    assert.deepEqual([other.xcache, other.body], ["HIT", "doc 1"]);
    assert.equal(origin.count("/doc"), 1);
    // …and copied it into its memory tier: the synchronous hit path now answers.
    await b.settle();
    assert.equal(b.store.lookup(url, new Headers())?.status, 200);
    // A purge goes through every tier.
    assert.equal(await b.store.delete(url), true);
    assert.equal(shared.map.size, 0);
    const again = await call(b.wrap(fetchNext), url);
    assert.deepEqual([again.xcache, again.body], ["MISS", "doc 2"]);
  } finally {
    await a.settle();
    await b.settle();
    await origin.close();
  }
});
