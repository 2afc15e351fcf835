/**
 * Keep-alive pools, one per origin (scheme://host:port), with their counters.
 * Idle connections are reused most-recent first and expire after the idle
 * timeout (checked on take and by the clock tick).
 *
 * @module
 */

import type { ConnRegistry, UpstreamConn } from "./conn.ts";
import type { UpstreamErrorKind } from "./errors.ts";

/** Per-origin state: idle connections and counters. */
export class Origin {
  readonly key: string;
  readonly idle: UpstreamConn[] = [];
  opened = 0;
  reused = 0;
  requests = 0;
  errors = 0;
  readonly errorsByKind = new Map<UpstreamErrorKind, number>();
  constructor(key: string) {
    this.key = key;
  }
}

/** Most origins tracked individually; beyond that the quietest are folded into "other". */
const MAX_ORIGINS = 512;
const OTHER = "other";

export interface PoolOptions {
  idleTimeoutMs: number;
  maxIdlePerOrigin: number;
  /** Shortest deadline any connection gets (the response timeout): sets the clock's resolution. */
  shortestDeadlineMs: number;
}

/**
 * All origins' pools, and the registry of open connections whose clock
 * enforces read deadlines and idle expiry. The clock runs only while some
 * connection is open and never keeps the process alive by itself.
 */
export class Pools implements ConnRegistry {
  readonly origins = new Map<string, Origin>();
  #opts: PoolOptions;
  readonly #open = new Set<UpstreamConn>();
  #idleCount = 0;
  #clock: ReturnType<typeof setInterval> | undefined;
  readonly #tickMs: number;
  #closed = false;
  readonly #tick = (): void => this.tick(Date.now());

  constructor(opts: PoolOptions) {
    this.#opts = opts;
    // Deadlines fire at most a quarter late (and within a second); idle expiry is as coarse.
    this.#tickMs = Math.min(
      1_000,
      Math.max(20, Math.min(opts.shortestDeadlineMs, opts.idleTimeoutMs) >> 2),
    );
  }

  add(c: UpstreamConn): void {
    this.#open.add(c);
    if (this.#clock === undefined) {
      const id = setInterval(this.#tick, this.#tickMs);
      Deno.unrefTimer(id);
      this.#clock = id;
    }
  }

  delete(c: UpstreamConn): void {
    this.#open.delete(c);
    if (this.#open.size === 0 && this.#clock !== undefined) {
      clearInterval(this.#clock);
      this.#clock = undefined;
    }
  }

  /** Open connections (busy and idle). */
  get openCount(): number {
    return this.#open.size;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get idleCount(): number {
    return this.#idleCount;
  }

  origin(key: string): Origin {
    let o = this.origins.get(key);
    if (o !== undefined) return o;
    o = new Origin(key);
    if (this.origins.size >= MAX_ORIGINS) this.#foldQuietest();
    this.origins.set(key, o);
    return o;
  }

  /**
   * A live idle connection for the origin, or undefined. `maxIdleMs` refuses connections idle
   * longer than that (left pooled): for requests that could not be retried on a dead one.
   */
  take(o: Origin, maxIdleMs = Infinity): UpstreamConn | undefined {
    const now = Date.now();
    while (o.idle.length > 0) {
      const c = o.idle[o.idle.length - 1];
      if (!c.closed && now - c.idleSince > maxIdleMs) return undefined; // the freshest is on top
      o.idle.pop();
      this.#idleCount--;
      if (c.closed || now - c.idleSince >= this.#lifetime(c)) {
        c.close();
        continue;
      }
      return c;
    }
    return undefined;
  }

  /** Keeps a connection whose last response was fully read, or closes it when the pool is full. */
  release(c: UpstreamConn): void {
    const o = this.origins.get(c.key);
    if (
      this.#closed || c.closed || o === undefined || o.idle.length >= this.#opts.maxIdlePerOrigin ||
      this.#lifetime(c) <= 0
    ) {
      c.close();
      return;
    }
    c.start = c.end = 0;
    c.idleSince = Date.now();
    o.idle.push(c);
    this.#idleCount++;
  }

  /** One clock tick: time out overdue reads, close idle connections past their lifetime. */
  tick(now: number): void {
    for (const c of this.#open) c.checkDeadline(now);
    if (this.#idleCount === 0) return;
    for (const o of this.origins.values()) {
      if (o.idle.length === 0) continue;
      const keep = o.idle.filter((c) => !c.closed && now - c.idleSince < this.#lifetime(c));
      if (keep.length === o.idle.length) continue;
      for (const c of o.idle) if (!keep.includes(c)) c.close();
      this.#idleCount -= o.idle.length - keep.length;
      o.idle.length = 0;
      o.idle.push(...keep);
    }
  }

  /**
   * How long `c` may stay idle: our idle timeout, shortened to a second less than the
   * origin's announced `Keep-Alive: timeout` so we never reuse one the origin is closing.
   */
  #lifetime(c: UpstreamConn): number {
    return Math.min(this.#opts.idleTimeoutMs, c.keepAliveMs - 1000);
  }

  close(): void {
    this.#closed = true;
    for (const o of this.origins.values()) {
      for (const c of o.idle) c.close();
      o.idle.length = 0;
    }
    this.#idleCount = 0;
  }

  /** Folds the least-used origin without idle connections into the "other" entry. */
  #foldQuietest(): void {
    let victim: Origin | undefined;
    for (const o of this.origins.values()) {
      if (o.key === OTHER || o.idle.length > 0) continue;
      if (victim === undefined || o.requests < victim.requests) victim = o;
    }
    if (victim === undefined) return;
    this.origins.delete(victim.key);
    let other = this.origins.get(OTHER);
    if (other === undefined) {
      other = new Origin(OTHER);
      this.origins.set(OTHER, other);
    }
    other.opened += victim.opened;
    other.reused += victim.reused;
    other.requests += victim.requests;
    other.errors += victim.errors;
    for (const [k, v] of victim.errorsByKind) {
      other.errorsByKind.set(k, (other.errorsByKind.get(k) ?? 0) + v);
    }
  }
}
