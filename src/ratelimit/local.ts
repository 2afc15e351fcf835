/**
 * In-process sliding-window-log limiter: at most `limit` requests in any
 * window of `windowMs`, exactly (no double burst at a fixed window's edge).
 * Refused requests are not counted, so a client that keeps knocking gets in
 * again as soon as its oldest counted request ages out.
 * @module
 */
import type { Decision } from "./decision.ts";

export interface LocalWindowOptions {
  readonly limit: number;
  readonly windowMs: number;
  /** Monotonic clock in ms (tests inject one). Default performance.now. */
  readonly now?: () => number;
  /** Clients tracked at most; beyond it the longest-tracked are forgotten (default 100 000). */
  readonly maxKeys?: number;
}

interface Log {
  ts: number[];
  head: number;
}

export class LocalSlidingWindow {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #maxKeys: number;
  #logs = new Map<string, Log>();
  #lastSweep: number;

  constructor(options: LocalWindowOptions) {
    this.#limit = options.limit;
    this.#windowMs = options.windowMs;
    this.#now = options.now ?? (() => performance.now());
    this.#maxKeys = options.maxKeys ?? 100_000;
    this.#lastSweep = this.#now();
  }

  /** Number of clients currently tracked. */
  get size(): number {
    return this.#logs.size;
  }

  check(key: string): Decision {
    const now = this.#now();
    const cutoff = now - this.#windowMs;
    if (now - this.#lastSweep >= this.#windowMs) this.#sweep(cutoff, now);
    let log = this.#logs.get(key);
    if (!log) {
      if (this.#logs.size >= this.#maxKeys) {
        this.#sweep(cutoff, now);
        // Still full: forget the client tracked longest (Map iterates in insertion order).
        if (this.#logs.size >= this.#maxKeys) this.#logs.delete(this.#logs.keys().next().value!);
      }
      log = { ts: [], head: 0 };
      this.#logs.set(key, log);
    }
    const ts = log.ts;
    while (log.head < ts.length && ts[log.head] <= cutoff) log.head++;
    if (log.head > 32 && log.head * 2 > ts.length) {
      log.ts = ts.slice(log.head);
      log.head = 0;
    }
    let count = log.ts.length - log.head;
    const allowed = count < this.#limit;
    if (allowed) {
      log.ts.push(now);
      count++;
    }
    const oldest = log.ts[log.head] ?? now;
    return {
      allowed,
      limit: this.#limit,
      remaining: this.#limit - count,
      resetMs: oldest + this.#windowMs - now,
      store: "local",
    };
  }

  #sweep(cutoff: number, now: number) {
    this.#lastSweep = now;
    for (const [key, log] of this.#logs) {
      if (log.ts.length === 0 || log.ts[log.ts.length - 1] <= cutoff) this.#logs.delete(key);
    }
  }

  clear(): void {
    this.#logs.clear();
  }
}
