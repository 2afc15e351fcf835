/**
 * The memory caches of the serving threads as one cache: a further local tier
 * (a {@linkcode CacheStore} behind the thread's own memory store in
 * src/cache's TieredStore) that copies every stored response to the other
 * threads and carries every deletion and purge to them.
 *
 * - **Hits cost nothing extra**: each thread answers from its own replica,
 *   synchronously, as with one thread; this tier is never asked on a hit.
 * - **A store** posts the response (metadata and body bytes, copied once by
 *   the structured clone) to each other thread over its MessagePort, batched
 *   per task; each puts it in its memory store for the same remaining
 *   lifetime. A thread that misses a key whose copy is still on its way waits
 *   for it instead of asking the origin (per-slot copy counters).
 * - **A cold key is fetched once** for the process: a thread about to fetch
 *   claims the key in a shared table (Atomics); another thread that misses
 *   the same key meanwhile waits until the claim ends, by which time the copy
 *   has arrived (the copy itself ends the claim for them), as requests on one
 *   thread wait for their leader.
 * - **A purge** (PURGE, POST /proxy-cache/purge, an invalidation from Redis)
 *   bumps a shared epoch, removes the keys here, broadcasts, and resolves only
 *   when every other thread has removed them too (or after `ackTimeoutMs`).
 *   A copy stored before the epoch changed is dropped on arrival, so a copy
 *   that crossed the purge in flight cannot bring a purged object back after
 *   the purge has answered.
 *
 * CACHE_MEMORY_SIZE bounds the whole process: each of N threads holds its
 * replica within 1/N of it (see src/app.ts).
 *
 * @module
 */
import type { CacheEntry, StoredResponse } from "../cache/entry.ts";
import type { CacheStore, FetchClaims } from "../cache/store.ts";
import { CLAIM_SLOTS, COUNTER, type ThreadGroup } from "./group.ts";

type Purge = { op: "delete" | "prefix" | "all"; arg: string };

type Message =
  | {
    kind: "set";
    key: string;
    entry: StoredResponse;
    expiresAt: number;
    epoch: number;
    slot: number;
    copy: number;
  }
  | { kind: "purge"; id: number; from: number; purge: Purge }
  | { kind: "ack"; id: number; to: number; removed: number }
  | { kind: "released"; slot: number };

export interface CacheReplicasOptions {
  group: ThreadGroup;
  /** This thread's memory store: where the other threads' copies and purges land. */
  memory: CacheStore;
  /** Rebuilds the derived values of a copy (src/cache's `prepare` with the heuristic). */
  prepare: (stored: StoredResponse) => CacheEntry;
  /** Longest wait for the other threads to confirm a purge (default 2000 ms). */
  ackTimeoutMs?: number;
}

/** Counters of the replication, for the cache section of /proxy-stats. */
export interface ReplicaCounters {
  sent: number;
  received: number;
  /** Copies dropped on arrival because a purge happened after they were stored. */
  dropped: number;
}

export class CacheReplicas implements CacheStore, FetchClaims {
  readonly counters: ReplicaCounters = { sent: 0, received: 0, dropped: 0 };
  readonly #group: ThreadGroup;
  readonly #memory: CacheStore;
  readonly #prepare: (stored: StoredResponse) => CacheEntry;
  readonly #ackTimeoutMs: number;
  /** Messages of this task, posted together at its end (one post per batch, not per copy). */
  #outbox: Message[] = [];
  /** Claim slots with a copy in the outbox: its arrival ends the claim for the waiters. */
  readonly #outboxSlots = new Set<number>();
  #closed = false;
  readonly #purges = new Map<number, { missing: number; removed: number[]; done(): void }>();
  #purgeSeq = 0;
  /** Requests here waiting for another thread's fetch, by claim slot. */
  readonly #waiting = new Map<number, (() => void)[]>();
  /** Per slot, the copies posted by any thread (shared) and those this thread has (own). */
  readonly #posted: Int32Array;
  readonly #seen = new Int32Array(CLAIM_SLOTS);

  constructor(options: CacheReplicasOptions) {
    this.#group = options.group;
    this.#memory = options.memory;
    this.#prepare = options.prepare;
    this.#ackTimeoutMs = options.ackTimeoutMs ?? 2000;
    this.#posted = options.group.claims.subarray(CLAIM_SLOTS);
    options.group.listen(TOPIC, (batch) => this.#receiveAll(batch as Message[]));
  }

  #send(m: Message): void {
    if (this.#closed) return;
    if (this.#outbox.length === 0) queueMicrotask(() => this.#flush());
    this.#outbox.push(m);
  }

  #flush(): void {
    const batch = this.#outbox;
    this.#outbox = [];
    this.#outboxSlots.clear();
    if (!this.#closed) this.#group.post(TOPIC, batch);
  }

  async #receiveAll(batch: Message[]): Promise<void> {
    for (const m of batch) await this.#receive(m);
  }

  async #receive(m: Message): Promise<void> {
    const counters = this.#group.counters;
    if (m.kind === "set") {
      this.counters.received++;
      const ttlSec = (m.expiresAt - Date.now()) / 1000;
      if (Atomics.load(counters, COUNTER.purgeEpoch) !== m.epoch) {
        this.counters.dropped++;
      } else if (ttlSec > 0) {
        await this.#memory.set(m.key, this.#prepare(m.entry), ttlSec);
      }
      if (m.copy > this.#seen[m.slot]) this.#seen[m.slot] = m.copy;
      this.#wake(m.slot);
    } else if (m.kind === "released") {
      this.#wake(m.slot);
    } else if (m.kind === "purge") {
      const removed = await applyPurge(this.#memory, m.purge);
      const ack: Message = { kind: "ack", id: m.id, to: m.from, removed };
      this.#group.postTo(m.from, TOPIC, [ack]);
    } else if (m.kind === "ack") {
      const p = this.#purges.get(m.id);
      if (p === undefined) return;
      p.removed.push(m.removed);
      if (--p.missing === 0) p.done();
    }
  }

  #wake(slot: number): void {
    const waiters = this.#waiting.get(slot);
    if (waiters === undefined) return;
    this.#waiting.delete(slot);
    for (const wake of waiters) wake();
  }

  /**
   * True when this thread may fetch `key`: no other thread is fetching a key of its slot, and
   * no copy of one is still on its way here (then waiting for it is cheaper than the origin).
   */
  claim(key: string): boolean {
    const slot = slotOf(key);
    if (Atomics.load(this.#posted, slot) > this.#seen[slot]) return false;
    const mine = this.#group.thread + 1;
    return Atomics.compareExchange(this.#group.claims, slot, 0, mine) === 0;
  }

  /**
   * Ends this thread's claim. The waiters wake when the copy of what was stored arrives, or,
   * when nothing was stored, on a "released" posted after anything posted before it.
   */
  release(key: string): void {
    const slot = slotOf(key);
    Atomics.store(this.#group.claims, slot, 0);
    if (!this.#outboxSlots.has(slot)) this.#send({ kind: "released", slot });
  }

  wait(key: string, timeoutMs: number): Promise<void> {
    const slot = slotOf(key);
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(resolve, timeoutMs);
    const waiters = this.#waiting.get(slot) ?? [];
    waiters.push(() => {
      clearTimeout(timer);
      resolve();
    });
    this.#waiting.set(slot, waiters);
    return promise;
  }

  /** Never asked for a hit: the thread's own memory store holds every copy. */
  get(): Promise<CacheEntry | undefined> {
    return Promise.resolve(undefined);
  }

  set(key: string, entry: CacheEntry, ttlSec: number): Promise<void> {
    if (ttlSec <= 0) return Promise.resolve();
    this.counters.sent++;
    const slot = slotOf(key);
    const copy = Atomics.add(this.#posted, slot, 1) + 1;
    if (copy > this.#seen[slot]) this.#seen[slot] = copy;
    this.#outboxSlots.add(slot);
    this.#send({
      kind: "set",
      key,
      entry: plain(entry),
      expiresAt: Date.now() + ttlSec * 1000,
      epoch: Atomics.load(this.#group.counters, COUNTER.purgeEpoch),
      slot,
      copy,
    });
    return Promise.resolve();
  }

  async delete(key: string): Promise<boolean> {
    return (await this.#purge({ op: "delete", arg: key })).some((n) => n > 0);
  }

  async purgePrefix(prefix: string): Promise<number> {
    return Math.max(0, ...(await this.#purge({ op: "prefix", arg: prefix })));
  }

  async clear(): Promise<number> {
    return Math.max(0, ...(await this.#purge({ op: "all", arg: "" })));
  }

  /** Removes on every other thread; resolves with what each removed, once all have. */
  async #purge(purge: Purge): Promise<number[]> {
    Atomics.add(this.#group.counters, COUNTER.purgeEpoch, 1);
    const others = this.#group.threads - 1;
    if (others === 0) return [];
    const id = ++this.#purgeSeq;
    const removed: number[] = [];
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(resolve, this.#ackTimeoutMs);
    this.#purges.set(id, { missing: others, removed, done: resolve });
    this.#send({ kind: "purge", id, from: this.#group.thread, purge });
    await promise;
    clearTimeout(timer);
    this.#purges.delete(id);
    return removed;
  }

  close(): Promise<void> {
    this.#closed = true;
    for (const p of this.#purges.values()) p.done();
    for (const waiters of this.#waiting.values()) for (const wake of waiters) wake();
    return Promise.resolve();
  }
}

/** The group topic of the copies, purges and claims. */
const TOPIC = "cache";

/** The claim slot of a key (FNV-1a over its UTF-16 code units). */
function slotOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % CLAIM_SLOTS;
}

async function applyPurge(store: CacheStore, p: Purge): Promise<number> {
  if (p.op === "delete") return (await store.delete(p.arg)) ? 1 : 0;
  if (p.op === "prefix") return await store.purgePrefix(p.arg);
  return await store.clear();
}

/** The stored fields only, with the body in a buffer of its own (a view would clone all of its buffer). */
function plain(e: CacheEntry): StoredResponse {
  const body = e.body.byteOffset === 0 && e.body.byteLength === e.body.buffer.byteLength
    ? e.body
    : e.body.slice();
  return {
    url: e.url,
    status: e.status,
    headers: e.headers,
    body,
    requestTime: e.requestTime,
    responseTime: e.responseTime,
    varyNames: e.varyNames,
    varyKey: e.varyKey,
    initialAge: e.initialAge,
  };
}
