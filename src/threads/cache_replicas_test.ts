/**
 * CacheReplicas between two thread-group members in one thread (BroadcastChannel objects
 * of the same name reach each other here too), so each race can be staged exactly.
 */
import assert from "node:assert/strict";
import { type CacheEntry, prepare, type StoredResponse } from "../cache/entry.ts";
import { MemoryStore } from "../cache/memory.ts";
import { STRICT_HEURISTIC } from "../cache/policy.ts";
import type { CacheStore } from "../cache/store.ts";
import { CacheReplicas } from "./cache_replicas.ts";
import { ThreadGroup } from "./group.ts";

function pair(memoryB: CacheStore = new MemoryStore({ maxBytes: 1 << 20 })) {
  const id = crypto.randomUUID();
  const counters = new SharedArrayBuffer(64);
  const groups = [0, 1].map((thread) => new ThreadGroup({ id, thread, threads: 2, counters }, []));
  const memoryA = new MemoryStore({ maxBytes: 1 << 20 });
  const make = (group: ThreadGroup, memory: CacheStore) =>
    new CacheReplicas({ group, memory, prepare: (s) => prepare(s, STRICT_HEURISTIC) });
  const a = make(groups[0], memoryA);
  const b = make(groups[1], memoryB);
  return {
    a,
    b,
    memoryA,
    memoryB,
    async close() {
      await a.close();
      await b.close();
      for (const g of groups) g.close();
    },
  };
}

function entry(url: string, body = "hello"): CacheEntry {
  const now = Date.now();
  const s: StoredResponse = {
    url,
    status: 200,
    headers: [["cache-control", "max-age=600"]],
    body: new TextEncoder().encode(body),
    requestTime: now,
    responseTime: now,
    varyNames: [],
    varyKey: "",
    initialAge: 0,
  };
  return prepare(s, STRICT_HEURISTIC);
}

const none = new Headers();
/** Lets the channels deliver what was posted so far. */
const delivered = () => new Promise((r) => setTimeout(r, 50));

Deno.test("a response stored on one thread lands in the other thread's memory store", async () => {
  const p = pair();
  try {
    await p.a.set("http://x/a", entry("http://x/a", "copy"), 60);
    await delivered();
    const copy = p.memoryB.lookup!("http://x/a", none);
    assert.ok(copy);
    assert.equal(new TextDecoder().decode(copy.body), "copy");
    assert.equal(p.b.counters.received, 1);
  } finally {
    await p.close();
  }
});

Deno.test("a purge resolves only once the other thread has removed the key", async () => {
  const slow = new MemoryStore({ maxBytes: 1 << 20 });
  let removedAt = 0;
  // The other thread is busy: its removal finishes 200 ms after the purge reached it.
  const busy: CacheStore = Object.assign(Object.create(slow), {
    async delete(key: string) {
      await new Promise((r) => setTimeout(r, 200));
      removedAt = performance.now();
      return slow.remove(key);
    },
  });
  const p = pair(busy);
  try {
    slow.put("http://x/a", entry("http://x/a"), 60);
    assert.equal(await p.a.delete("http://x/a"), true, "the other thread's removal is counted");
    assert.ok(removedAt > 0 && removedAt <= performance.now(), "answered after the removal");
    assert.equal(slow.lookup("http://x/a", none), undefined);
  } finally {
    await p.close();
  }
});

Deno.test("a copy stored before a purge does not land after it", async () => {
  const p = pair();
  try {
    // Thread B stores and posts its copy; thread A purges before the copy has arrived.
    await p.b.set("http://x/a", entry("http://x/a", "old"), 60);
    await p.a.delete("http://x/a");
    await delivered();
    assert.equal(p.memoryA.lookup("http://x/a", none), undefined, "no stale copy after a purge");
    assert.equal(p.a.counters.dropped, 1);
    // A copy stored after the purge is replicated again.
    await p.b.set("http://x/a", entry("http://x/a", "new"), 60);
    await delivered();
    assert.ok(p.memoryA.lookup("http://x/a", none));
  } finally {
    await p.close();
  }
});
