/**
 * Stores in tiers, each only a {@linkcode CacheStore}: the instance's own
 * (`local`, nearest first: the memory LRU, and any other store of this
 * instance) in front of those other instances share (`shared`: Redis).
 *
 * Reads try the tiers in order; a hit in a farther one is copied into the
 * nearer ones for its remaining lifetime. Writes go to the nearest tier at
 * once and to the others in the background. Deletions and purges go to every
 * tier and are published on `<prefix>invalidate`, so every other instance
 * drops the same keys from its local tiers and none keeps serving a purged
 * object from memory. A further tier (say, a disk store) plugs in by
 * implementing `CacheStore` and being listed here.
 *
 * @module
 */
import type { HeaderView } from "../context/mod.ts";
import type { Cluster, Redis } from "ioredis";
import type { CacheEntry } from "./entry.ts";
import type { CacheStore } from "./store.ts";

export interface TieredStoreOptions {
  /** This instance's own stores, nearest first (at least one). */
  local: readonly CacheStore[];
  /** Stores other instances share (they may hold what another instance stored). */
  shared?: readonly CacheStore[];
  /** Remaining storage lifetime of an entry in seconds (for copies into nearer tiers). */
  ttlOf: (entry: CacheEntry, now: number) => number;
  /** Pub/sub for cross-instance invalidation of local tiers: a publishing client and a subscriber connection. */
  pubsub?: { publisher: Redis | Cluster; subscriber: Redis | Cluster; channel: string };
}

type Invalidation = { from: string; op: "delete" | "prefix" | "all"; arg: string };

export class TieredStore implements CacheStore {
  /** True when some tier is shared with other instances (worth asking on a local miss). */
  readonly shared: boolean;
  readonly #local: readonly CacheStore[];
  readonly #shared: readonly CacheStore[];
  readonly #all: readonly CacheStore[];
  readonly #near: CacheStore;
  readonly #ttlOf: (entry: CacheEntry, now: number) => number;
  readonly #pubsub: TieredStoreOptions["pubsub"];
  readonly #id = crypto.randomUUID();
  readonly #pending = new Set<Promise<unknown>>();

  constructor(options: TieredStoreOptions) {
    if (options.local.length === 0) throw new Error("TieredStore needs at least one local store");
    this.#local = options.local;
    this.#shared = options.shared ?? [];
    this.#all = [...this.#local, ...this.#shared];
    this.#near = this.#local[0];
    this.shared = this.#shared.length > 0;
    this.#ttlOf = options.ttlOf;
    this.#pubsub = options.pubsub;
    const ps = this.#pubsub;
    if (ps) {
      ps.subscriber.on("message", (channel: string, message: string) => {
        if (channel === ps.channel) this.#onInvalidation(message);
      });
      ps.subscriber.subscribe(ps.channel).catch(() => {/* resubscribed on reconnect */});
    }
  }

  #onInvalidation(message: string): void {
    let m: Invalidation;
    try {
      m = JSON.parse(message);
    } catch {
      return;
    }
    if (m.from === this.#id) return;
    for (const store of this.#local) {
      if (m.op === "delete") this.#track(store.delete(m.arg));
      else if (m.op === "prefix") this.#track(store.purgePrefix(m.arg));
      else if (m.op === "all") this.#track(store.clear());
    }
  }

  #publish(op: Invalidation["op"], arg: string): void {
    const ps = this.#pubsub;
    if (!ps || ps.publisher.status !== "ready") return;
    this.#track(ps.publisher.publish(ps.channel, JSON.stringify({ from: this.#id, op, arg })));
  }

  #track(p: Promise<unknown>): void {
    const q = p.catch(() => {/* counted by the store; never fails a request */});
    this.#pending.add(q);
    q.finally(() => this.#pending.delete(q));
  }

  /** The nearest tier only, synchronously (the hit path); undefined when it cannot answer so. */
  lookup(key: string, headers: HeaderView, now?: number): CacheEntry | undefined {
    return this.#near.lookup?.(key, headers, now);
  }

  /** Copies an entry found in tier `found` into the nearer tiers. */
  #promote(key: string, entry: CacheEntry, found: number): void {
    if (found === 0) return;
    const now = Date.now();
    const ttl = this.#ttlOf(entry, now);
    if (ttl <= 0) return;
    for (let i = 0; i < found; i++) this.#track(this.#all[i].set(key, entry, ttl));
  }

  static async #read(store: CacheStore, key: string, headers: Headers) {
    return store.lookup !== undefined ? store.lookup(key, headers) : await store.get(key, headers);
  }

  async get(key: string, headers: Headers): Promise<CacheEntry | undefined> {
    const all = this.#all;
    for (let i = 0; i < all.length; i++) {
      const entry = await TieredStore.#read(all[i], key, headers);
      if (entry !== undefined) {
        this.#promote(key, entry, i);
        return entry;
      }
    }
    return undefined;
  }

  /**
   * The shared tiers only: another instance may have refreshed what is stale
   * locally. A copy newer than `than` is copied into the local tiers and returned.
   */
  async newerShared(
    key: string,
    headers: Headers,
    than: CacheEntry | undefined,
  ): Promise<CacheEntry | undefined> {
    const shared = this.#shared;
    for (let i = 0; i < shared.length; i++) {
      const entry = await TieredStore.#read(shared[i], key, headers);
      if (entry === undefined || (than && entry.responseTime <= than.responseTime)) continue;
      this.#promote(key, entry, this.#local.length + i);
      return entry;
    }
    return undefined;
  }

  /** Stores in the nearest tier now and in the others in the background. */
  set(key: string, entry: CacheEntry, ttlSec: number): Promise<void> {
    const all = this.#all;
    const near = all[0].set(key, entry, ttlSec);
    for (let i = 1; i < all.length; i++) this.#track(all[i].set(key, entry, ttlSec));
    return near;
  }

  async delete(key: string): Promise<boolean> {
    this.#publish("delete", key);
    const removed = await Promise.all(this.#all.map((s) => s.delete(key)));
    return removed.includes(true);
  }

  async purgePrefix(prefix: string): Promise<number> {
    this.#publish("prefix", prefix);
    const counts = await Promise.all(this.#all.map((s) => s.purgePrefix(prefix)));
    return Math.max(...counts);
  }

  async clear(): Promise<number> {
    this.#publish("all", "");
    const counts = await Promise.all(this.#all.map((s) => s.clear()));
    return Math.max(...counts);
  }

  /** Resolves when background writes have settled. */
  async settle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  async close(): Promise<void> {
    await this.settle();
    for (const store of this.#all) await store.close();
  }
}
