/**
 * Memory L1 in front of an optional Redis L2.
 *
 * Reads try L1, then L2 (a hit there is promoted to L1 for its remaining
 * lifetime). Writes go to both; the L2 write does not hold up the caller.
 * Deletions and purges are also published on `<prefix>invalidate`, so the L1
 * of every other instance sharing the Redis drops the same keys and no
 * instance keeps serving a purged object from memory.
 *
 * @module
 */
import type { Cluster, Redis } from "ioredis";
import type { CacheEntry } from "./entry.ts";
import type { MemoryStore } from "./memory.ts";
import type { RedisStore } from "./redis_store.ts";
import type { CacheStore } from "./store.ts";

export interface TieredStoreOptions {
  l1: MemoryStore;
  l2?: RedisStore;
  /** Remaining storage lifetime of an entry in seconds (for promotion to L1). */
  ttlOf: (entry: CacheEntry, now: number) => number;
  /** Pub/sub for cross-instance L1 invalidation: a publishing client and a subscriber connection. */
  pubsub?: { publisher: Redis | Cluster; subscriber: Redis | Cluster; channel: string };
}

type Invalidation = { from: string; op: "delete" | "prefix" | "all"; arg: string };

export class TieredStore implements CacheStore {
  readonly l1: MemoryStore;
  readonly l2: RedisStore | undefined;
  readonly #ttlOf: (entry: CacheEntry, now: number) => number;
  readonly #pubsub: TieredStoreOptions["pubsub"];
  readonly #id = crypto.randomUUID();
  readonly #pending = new Set<Promise<unknown>>();

  constructor(options: TieredStoreOptions) {
    this.l1 = options.l1;
    this.l2 = options.l2;
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
    if (m.op === "delete") this.l1.remove(m.arg);
    else if (m.op === "prefix") this.l1.removePrefix(m.arg);
    else if (m.op === "all") this.l1.removeAll();
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

  /** L1 only, synchronously (the hit path). */
  lookup(key: string, headers: Headers, now?: number): CacheEntry | undefined {
    return this.l1.lookup(key, headers, now);
  }

  async get(key: string, headers: Headers): Promise<CacheEntry | undefined> {
    const hit = this.l1.lookup(key, headers);
    if (hit !== undefined || this.l2 === undefined) return hit;
    const entry = await this.l2.get(key, headers);
    if (entry !== undefined) {
      const now = Date.now();
      this.l1.put(key, entry, this.#ttlOf(entry, now), now);
    }
    return entry;
  }

  /**
   * L2 only: another instance may have refreshed what is stale in our L1.
   * A copy newer than `than` is promoted to L1 and returned.
   */
  async newerInL2(
    key: string,
    headers: Headers,
    than: CacheEntry | undefined,
  ): Promise<CacheEntry | undefined> {
    if (this.l2 === undefined) return undefined;
    const entry = await this.l2.get(key, headers);
    if (entry === undefined || (than && entry.responseTime <= than.responseTime)) return undefined;
    const now = Date.now();
    this.l1.put(key, entry, this.#ttlOf(entry, now), now);
    return entry;
  }

  /** Stores in L1 now and in L2 in the background. */
  set(key: string, entry: CacheEntry, ttlSec: number): Promise<void> {
    this.l1.put(key, entry, ttlSec);
    if (this.l2 !== undefined) this.#track(this.l2.set(key, entry, ttlSec));
    return Promise.resolve();
  }

  async delete(key: string): Promise<boolean> {
    const a = this.l1.remove(key);
    this.#publish("delete", key);
    const b = this.l2 ? await this.l2.delete(key) : false;
    return a || b;
  }

  async purgePrefix(prefix: string): Promise<number> {
    const a = this.l1.removePrefix(prefix);
    this.#publish("prefix", prefix);
    const b = this.l2 ? await this.l2.purgePrefix(prefix) : 0;
    return Math.max(a, b);
  }

  async clear(): Promise<number> {
    const a = this.l1.removeAll();
    this.#publish("all", "");
    const b = this.l2 ? await this.l2.clear() : 0;
    return Math.max(a, b);
  }

  /** Resolves when background writes have settled. */
  async settle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  async close(): Promise<void> {
    await this.settle();
    await this.l1.close();
    await this.l2?.close();
  }
}
