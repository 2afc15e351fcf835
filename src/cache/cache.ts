/**
 * The cache phase: `wrap(next)` answers from the store when RFC 9111 allows,
 * and otherwise asks `next` (compression → route → forwarder), storing what
 * may be stored on the way back.
 *
 * Outcomes (X-Cache and `ctx.cacheStatus`):
 * - HIT: a fresh stored response (the fast path: one Map lookup, precomputed
 *   headers, only Age is computed);
 * - STALE: a stale one, allowed by stale-while-revalidate (then refreshed once
 *   in the background), max-stale, or stale-if-error when the origin fails;
 * - REVALIDATED: a stale one confirmed by a conditional request (304);
 * - MISS: fetched from the origin (concurrent misses for one key wait for the
 *   first: one origin request; its body streams to the client while stored);
 * - BYPASS: not a cacheable request (other methods, Range).
 *
 * @module
 */
import type {
  CacheStatus,
  Handler,
  HitAnswer,
  RequestContext,
  RequestView,
  Wrapper,
} from "../context/mod.ts";
import { type CacheEntry, prepare, type StoredResponse } from "./entry.ts";
import { capture } from "./capture.ts";
import { UpstreamError } from "../forward/errors.ts";
import { plainText } from "../respond/mod.ts";
import {
  correctedInitialAge,
  currentAge,
  formatHttpDate,
  type Heuristic,
  invalidatesOnSuccess,
  NO_DIRECTIVES,
  NOT_STORED,
  NOT_UPDATED,
  notModified,
  onlyIfCached,
  parseCacheControl,
  parseHttpDate,
  type RequestRules,
  requestRules,
  staleIfError,
  storable,
  usability,
} from "./policy.ts";
import type { TieredStore } from "./tiered.ts";
import type { FetchClaims } from "./store.ts";
import { parseVary, secondaryKey } from "./vary.ts";

export interface EngineOptions {
  store: TieredStore;
  /** Objects larger than this stream through unstored. */
  maxObjectBytes: number;
  /** Freshness for cacheable responses without explicit freshness (CACHE_HEURISTIC). */
  heuristic: Heuristic;
  /** How long a stale entry with validators is kept for revalidation (seconds). */
  revalidateGraceSec: number;
  /** Longest wait for another request's origin fetch of the same key (default 5000 ms). */
  lockTimeoutMs?: number;
  logger?: (level: "debug" | "info" | "warn" | "error", msg: string) => void;
  /** Coalescing with the other serving threads (one origin fetch per key for the process). */
  claims?: FetchClaims;
}

/** Counters the cache reports. */
export interface EngineCounters {
  hits: number;
  misses: number;
  stale: number;
  revalidated: number;
  bypass: number;
  coalesced: number;
  bytesServed: number;
  stored: number;
  tooBig: number;
  refreshes: number;
}

interface Lock {
  readonly promise: Promise<boolean>;
  release(stored: boolean): void;
}

/**
 * What the cache knows about one request past the fast path (Pingora's
 * `Session.cache`): its key and variant rules, the stored entry found so far,
 * the coalescing lock it holds, and — once decided — why its response is not
 * stored. One object per miss instead of the same six to eight arguments
 * passed down every step.
 */
interface CacheSession {
  readonly req: Request;
  readonly ctx: RequestContext;
  /** The rest of the chain (compression → route → forwarder). */
  readonly next: Handler;
  /** Primary key: the effective request URL. */
  readonly key: string;
  /** The request's own Cache-Control / Pragma. */
  readonly rules: RequestRules;
  /** The stored variant for this request, fresh or not, when there is one. */
  entry: CacheEntry | undefined;
  /** The lock this request holds as the one fetching the key for everyone, or null. */
  lock: Lock | null;
  /** False for background refreshes: they do not count as hits or misses. */
  readonly counted: boolean;
  /** Why the response was not stored ("not storable", "too big", "no lifetime"), once decided. */
  notStored?: string;
}

/** A fresh stored response found for a request, before anything is counted. */
export interface FreshHit {
  readonly entry: CacheEntry;
  /** Its current age in seconds (fractional). */
  readonly age: number;
}

/** Bodies of known length up to this size are read whole on a miss instead of streamed. */
const INLINE_MAX_BYTES = 64 * 1024;

const NO_RULES: RequestRules = { directives: NO_DIRECTIVES, noCache: false };

/** Request fields this cache answers itself, so they never go upstream on a GET. */
const CLIENT_CONDITIONALS = ["if-none-match", "if-modified-since", "if-range"];

/** The primary cache key: the effective request URL without fragment. */
export function cacheKey(req: RequestView, ctx: Pick<RequestContext, "target">): string {
  const url = ctx.target !== undefined ? ctx.target.href : req.url;
  const hash = url.indexOf("#");
  return hash < 0 ? url : url.slice(0, hash);
}

/** Sets X-Cache on a response, copying its headers when they are immutable. */
function withStatus(res: Response, status: CacheStatus): Response {
  try {
    res.headers.set("x-cache", status);
    return res;
  } catch {
    const headers = new Headers(res.headers);
    headers.set("x-cache", status);
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
  }
}

/** Only a failed upstream exchange is an origin failure (stale-if-error); our own refusals are not. */
function isOriginFailure(err: unknown): boolean {
  return err instanceof UpstreamError && err.backendFault;
}

/**
 * Seconds a store should keep an entry from `now`: what is left of its
 * freshness plus its stale allowance (stale-while-revalidate, stale-if-error),
 * or the grace period when it has validators and that is longer.
 * 0 means "not worth storing".
 */
export function storageTtl(e: CacheEntry, now: number, graceSec: number): number {
  const f = e.freshness;
  const left = Math.max(0, f.lifetime - currentAge(e.initialAge, e.responseTime, now));
  const stale = f.mustRevalidate ? 0 : Math.max(f.swr, f.sie);
  // With validators a stale copy stays a while longer: revalidating it costs a 304, not a body.
  const validators = e.etag !== null || e.lastModified !== null;
  return Math.ceil(left + Math.max(stale, validators ? graceSec : 0));
}

export class CacheEngine {
  readonly counters: EngineCounters = {
    hits: 0,
    misses: 0,
    stale: 0,
    revalidated: 0,
    bypass: 0,
    coalesced: 0,
    bytesServed: 0,
    stored: 0,
    tooBig: 0,
    refreshes: 0,
  };
  readonly store: TieredStore;
  readonly #max: number;
  readonly #heuristic: Heuristic;
  readonly #grace: number;
  readonly #lockTimeout: number;
  readonly #log: EngineOptions["logger"];
  readonly #claims: FetchClaims | undefined;
  readonly #inflight = new Map<string, Lock>();
  readonly #refreshing = new Set<string>();
  readonly #tasks = new Set<Promise<unknown>>();

  constructor(options: EngineOptions) {
    this.store = options.store;
    this.#max = options.maxObjectBytes;
    this.#heuristic = options.heuristic;
    this.#grace = options.revalidateGraceSec;
    this.#lockTimeout = options.lockTimeoutMs ?? 5000;
    this.#log = options.logger;
    this.#claims = options.claims;
  }

  ttlOf = (e: CacheEntry, now: number): number => storageTtl(e, now, this.#grace);

  /**
   * The fresh stored response for a plain GET/HEAD (no Range, Cache-Control
   * or Pragma) when it is in memory, else undefined; counts nothing, changes
   * nothing. Never touches Redis or the origin.
   */
  freshHit = (req: RequestView, ctx: Pick<RequestContext, "target">): FreshHit | undefined => {
    const method = req.method;
    if (method !== "GET" && method !== "HEAD") return undefined;
    const h = req.headers;
    if (h.has("range") || h.has("cache-control") || h.has("pragma")) return undefined;
    const now = Date.now();
    const entry = this.store.lookup(cacheKey(req, ctx), h, now);
    if (entry === undefined) return undefined;
    const age = currentAge(entry.initialAge, entry.responseTime, now);
    if (entry.freshness.noCache || entry.freshness.lifetime <= age) return undefined;
    return { entry, age };
  };

  /**
   * The fresh-hit fast path alone, synchronously: a Response for a plain
   * GET/HEAD (no Range, Cache-Control or Pragma) whose fresh entry is in
   * memory, else undefined (then use the wrapped handler).
   */
  serveHit = (req: Request, ctx: RequestContext): Response | undefined => {
    const fresh = this.freshHit(req, ctx);
    if (fresh === undefined) return undefined;
    this.counters.hits++;
    return this.#serve(fresh.entry, req, ctx, fresh.age, "HIT");
  };

  /**
   * A fresh hit (from {@linkcode freshHit}) as a head template and body, for
   * a listener that writes it without a Response: what {@linkcode serveHit}
   * would answer, counted the same. Undefined (nothing counted) for what only
   * the Response path answers: a conditional request (it may be a 304), an
   * entry without a template.
   */
  answerHit = (hit: FreshHit, req: RequestView, ctx: RequestContext): HitAnswer | undefined => {
    const h = req.headers;
    if (h.has("if-none-match") || h.has("if-modified-since")) return undefined;
    const entry = hit.entry;
    const template = entry.hitHead;
    if (template === undefined) return undefined;
    this.counters.hits++;
    ctx.cacheStatus = "HIT";
    const body = req.method === "HEAD" ? null : entry.body;
    if (body !== null) this.counters.bytesServed += body.byteLength;
    return {
      status: entry.status,
      contentLength: entry.body.byteLength,
      body,
      template,
      age: String(Math.floor(hit.age)),
    };
  };

  wrap: Wrapper = (next: Handler): Handler => {
    return (req, ctx) => {
      const method = req.method;
      if (method !== "GET" && method !== "HEAD") return this.#other(req, ctx, next);
      const h = req.headers;
      if (h.has("range")) {
        this.counters.bypass++;
        ctx.cacheStatus = "BYPASS";
        return next(req, ctx).then((res) => withStatus(res, "BYPASS"));
      }
      const key = cacheKey(req, ctx);
      const cc = h.get("cache-control");
      const rules = cc === null && !h.has("pragma") ? NO_RULES : requestRules(cc, h.get("pragma"));
      const now = Date.now();
      const entry = this.store.lookup(key, h, now);
      if (entry !== undefined && rules === NO_RULES) {
        const f = entry.freshness;
        const age = currentAge(entry.initialAge, entry.responseTime, now);
        if (!f.noCache && f.lifetime > age) {
          this.counters.hits++;
          return Promise.resolve(this.#serve(entry, req, ctx, age, "HIT"));
        }
      }
      return this.#slow({ req, ctx, next, key, rules, entry, lock: null, counted: true });
    };
  };

  /** Serves a stored response (or a 304 when the client's validators match). */
  #serve(
    entry: CacheEntry,
    req: Request,
    ctx: RequestContext,
    age: number,
    status: CacheStatus,
  ): Response {
    ctx.cacheStatus = status;
    const h = req.headers;
    const inm = h.get("if-none-match");
    const ims = inm === null ? h.get("if-modified-since") : null;
    const ageStr = String(Math.floor(age));
    if (
      (inm !== null || ims !== null) && entry.status === 200 &&
      notModified(inm, ims, entry.etag, entry.modified)
    ) {
      const res = new Response(null, { status: 304, headers: entry.notModifiedHeaders });
      res.headers.append("age", ageStr);
      res.headers.append("x-cache", status);
      return res;
    }
    const noBody = req.method === "HEAD" || entry.status === 204 || entry.status === 304;
    if (!noBody) this.counters.bytesServed += entry.body.byteLength;
    const res = new Response(noBody ? null : entry.body, {
      status: entry.status,
      headers: entry.serveHeaders,
    });
    // Stored headers never contain Age, so append (no search) is enough; X-Cache is HIT there.
    const out = res.headers;
    out.append("age", ageStr);
    if (status !== "HIT") out.set("x-cache", status);
    return res;
  }

  async #slow(s: CacheSession): Promise<Response> {
    const { req, ctx, key, rules } = s;
    // Another instance may have stored (or refreshed) what our near layer lacks.
    let sharedChecked = !this.store.shared;
    for (let attempt = 0;; attempt++) {
      const entry = s.entry;
      if (entry !== undefined) {
        const now = Date.now();
        const age = currentAge(entry.initialAge, entry.responseTime, now);
        const use = usability(entry.freshness, age, rules);
        if (use === "fresh") {
          this.counters.hits++;
          return this.#serve(entry, req, ctx, age, "HIT");
        }
        if (use === "stale" || use === "swr") {
          this.counters.stale++;
          if (use === "swr") this.#refresh(s, entry);
          return this.#serve(entry, req, ctx, age, "STALE");
        }
      }
      if (req.method === "HEAD") {
        if (!sharedChecked) {
          sharedChecked = true;
          const found = await this.store.newerShared(key, req.headers, entry);
          if (found !== undefined) {
            s.entry = found;
            continue;
          }
        }
        if (onlyIfCached(rules)) return this.#gatewayTimeout(ctx);
        // HEAD has no body to store: ask the origin directly, without taking the lock.
        return this.#forward(s);
      }
      const lock = this.#inflight.get(key);
      if (lock !== undefined && attempt < 2) {
        this.counters.coalesced++;
        const storedByLeader = await this.#wait(lock);
        const again = this.store.lookup(key, req.headers);
        if (again !== undefined) {
          s.entry = again;
          continue;
        }
        // The leader's response was not stored (private, too big, failed): go on our own.
        if (!storedByLeader) {
          if (onlyIfCached(rules)) return this.#gatewayTimeout(ctx);
          return this.#forward(s);
        }
        continue;
      }
      let claimed = false;
      if (lock === undefined && attempt < 2 && this.#claims !== undefined) {
        claimed = this.#claims.claim(key);
        if (!claimed) {
          // Another serving thread fetches it: wait for its copy as for a leader here.
          this.counters.coalesced++;
          await this.#claims.wait(key, this.#lockTimeout);
          const again = this.store.lookup(key, req.headers);
          if (again !== undefined) {
            s.entry = again;
            continue;
          }
          if (onlyIfCached(rules)) return this.#gatewayTimeout(ctx);
          return this.#forward(s);
        }
      }
      const mine = lock === undefined ? this.#lock(key, claimed) : null;
      try {
        if (!sharedChecked) {
          sharedChecked = true;
          // Also when our copy is stale: another instance may have stored a newer one.
          const found = await this.store.newerShared(key, req.headers, entry);
          if (found !== undefined) {
            mine?.release(true);
            s.entry = found;
            continue;
          }
        }
        if (onlyIfCached(rules)) {
          mine?.release(false);
          return this.#gatewayTimeout(ctx);
        }
        s.lock = mine;
        return await this.#forward(s);
      } catch (err) {
        mine?.release(false);
        throw err;
      }
    }
  }

  /**
   * Waits for a leader, at most the lock timeout: a large body streams at the
   * pace of the leader's client, and a slow client must not hold everyone
   * else back (after the timeout the waiter fetches on its own).
   */
  async #wait(lock: Lock): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        lock.promise,
        new Promise<boolean>((r) => timer = setTimeout(() => r(false), this.#lockTimeout)),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  #gatewayTimeout(ctx: RequestContext): Response {
    ctx.cacheStatus = "MISS";
    this.counters.misses++;
    return plainText(504, "504 Gateway Timeout: not in cache (only-if-cached)", {
      "x-cache": "MISS",
    });
  }

  #lock(key: string, claimed: boolean): Lock {
    let resolve!: (stored: boolean) => void;
    const promise = new Promise<boolean>((r) => resolve = r);
    const lock: Lock = {
      promise,
      release: (stored) => {
        if (this.#inflight.get(key) === lock) {
          this.#inflight.delete(key);
          if (claimed) this.#claims!.release(key);
        }
        resolve(stored);
      },
    };
    this.#inflight.set(key, lock);
    return lock;
  }

  #track(p: Promise<unknown>): void {
    const q = p.catch((err) => this.#log?.("warn", `cache: background task failed: ${err}`));
    this.#tasks.add(q);
    q.finally(() => this.#tasks.delete(q));
  }

  /** Goes to the origin: conditionally when a stored entry has validators; stores the result. */
  async #forward(s: CacheSession): Promise<Response> {
    const { req, ctx, next, key, rules, entry, lock, counted: count } = s;
    const isGet = req.method === "GET";
    const conditional = isGet && entry !== undefined &&
      (entry.etag !== null || entry.lastModified !== null);
    let upstream = req;
    const rh = req.headers;
    const rewrite = conditional ||
      (isGet && (rh.has("if-none-match") || rh.has("if-modified-since") || rh.has("if-range")));
    if (rewrite) {
      const headers = new Headers(req.headers);
      for (const f of CLIENT_CONDITIONALS) headers.delete(f);
      if (conditional) {
        if (entry.etag !== null) headers.set("if-none-match", entry.etag);
        if (entry.lastModified !== null) headers.set("if-modified-since", entry.lastModified);
      }
      upstream = new Request(req.url, { method: "GET", headers });
    }
    const requestTime = Date.now();
    let res: Response;
    try {
      res = await next(upstream, ctx);
    } catch (err) {
      lock?.release(false);
      if (entry !== undefined && isOriginFailure(err)) {
        const age = currentAge(entry.initialAge, entry.responseTime, Date.now());
        if (staleIfError(entry.freshness, age, rules, true)) {
          if (count) this.counters.stale++;
          return this.#serve(entry, req, ctx, age, "STALE");
        }
      }
      throw err;
    }
    const responseTime = Date.now();
    if (entry !== undefined && res.status >= 500) {
      const age = currentAge(entry.initialAge, entry.responseTime, responseTime);
      if (staleIfError(entry.freshness, age, rules, false)) {
        lock?.release(false);
        res.body?.cancel().catch(() => {});
        if (count) this.counters.stale++;
        return this.#serve(entry, req, ctx, age, "STALE");
      }
    }
    if (conditional && res.status === 304) {
      const updated = this.#merge(entry, res, requestTime, responseTime);
      if (updated !== null) {
        res.body?.cancel().catch(() => {});
        const ttl = this.ttlOf(updated, responseTime);
        if (ttl > 0) this.store.set(key, updated, ttl);
        else this.#track(this.store.delete(key));
        lock?.release(true);
        if (count) this.counters.revalidated++;
        const age = currentAge(updated.initialAge, updated.responseTime, Date.now());
        return this.#serve(updated, req, ctx, age, "REVALIDATED");
      }
      // The 304 is for another representation than ours: fetch it afresh.
      res.body?.cancel().catch(() => {});
      s.entry = undefined;
      return this.#forward(s);
    }
    if (!isGet && entry !== undefined && res.status === 200) {
      this.#freshenFromHead(key, entry, res, requestTime, responseTime);
    }
    if (count) this.counters.misses++;
    return await this.#storeAndServe(s, res, requestTime, responseTime);
  }

  /**
   * A HEAD response for a stored GET (RFC 9111 §4.3.5): same validators and
   * length freshen the stored headers like a 304; different ones mean the
   * stored body is outdated, so it is dropped.
   */
  #freshenFromHead(
    key: string,
    entry: CacheEntry,
    res: Response,
    requestTime: number,
    responseTime: number,
  ): void {
    const h = res.headers;
    const etag = h.get("etag");
    const lm = h.get("last-modified");
    const length = h.get("content-length");
    const same = (length === null || Number(length) === entry.body.byteLength) &&
      (etag !== null
        ? etag === entry.etag
        : entry.etag === null && lm !== null && lm === entry.lastModified);
    if (!same) {
      this.#track(this.store.delete(key));
      return;
    }
    const updated = this.#merge(entry, res, requestTime, responseTime);
    if (updated === null) return;
    const ttl = this.ttlOf(updated, responseTime);
    if (ttl > 0) this.store.set(key, updated, ttl);
  }

  /** Applies a 304's header fields to the stored response (RFC 9111 §3.2, §4.3.4). */
  #merge(
    entry: CacheEntry,
    res: Response,
    requestTime: number,
    responseTime: number,
  ): CacheEntry | null {
    const etag = res.headers.get("etag");
    if (etag !== null && entry.etag !== null && etag !== entry.etag) return null;
    const replaced = new Set<string>();
    const fresh: [string, string][] = [];
    for (const [k, v] of res.headers) {
      if (NOT_UPDATED.has(k)) continue;
      replaced.add(k);
      fresh.push([k, v]);
    }
    const headers = entry.headers.filter(([k]) => !replaced.has(k)).concat(fresh);
    const date = res.headers.get("date");
    const dateMs = parseHttpDate(date) ?? responseTime;
    if (date === null) headers.push(["date", formatHttpDate(responseTime)]);
    const s: StoredResponse = {
      url: entry.url,
      status: entry.status,
      headers,
      body: entry.body,
      requestTime,
      responseTime,
      varyNames: entry.varyNames,
      varyKey: entry.varyKey,
      initialAge: correctedInitialAge(res.headers.get("age"), dateMs, requestTime, responseTime),
    };
    return prepare(s, this.#heuristic);
  }

  async #storeAndServe(
    s: CacheSession,
    res: Response,
    requestTime: number,
    responseTime: number,
  ): Promise<Response> {
    const { req, ctx, key, rules, lock } = s;
    const pass = (why: string) => {
      s.notStored = why;
      lock?.release(false);
      ctx.cacheStatus = "MISS";
      return withStatus(res, "MISS");
    };
    const rh = res.headers;
    const verdict = storable({
      method: req.method,
      requestDirectives: rules.directives,
      authorization: req.headers.has("authorization"),
      status: res.status,
      responseDirectives: parseCacheControl(rh.get("cache-control")),
      responseHeaders: rh,
    });
    if (!verdict.storable) return pass("not storable");
    const length = rh.get("content-length");
    if (length !== null && Number(length) > this.#max) {
      this.counters.tooBig++;
      return pass("too big");
    }
    const drop = new Set(verdict.strip);
    const connection = rh.get("connection");
    if (connection !== null) {
      for (const t of connection.split(",")) drop.add(t.trim().toLowerCase());
    }
    const headers: [string, string][] = [];
    for (const [k, v] of rh) if (!NOT_STORED.has(k) && !drop.has(k)) headers.push([k, v]);
    const date = rh.get("date");
    const dateMs = parseHttpDate(date) ?? responseTime;
    if (date === null) headers.push(["date", formatHttpDate(responseTime)]);
    const varyNames = parseVary(rh.get("vary"));
    const base: StoredResponse = {
      url: key,
      status: res.status,
      headers,
      body: new Uint8Array(0),
      requestTime,
      responseTime,
      varyNames,
      varyKey: secondaryKey(varyNames, req.headers) ?? "",
      initialAge: correctedInitialAge(rh.get("age"), dateMs, requestTime, responseTime),
    };
    const h = req.headers;
    const inm = h.get("if-none-match");
    const ims = inm === null ? h.get("if-modified-since") : null;
    /** The client's answer to a miss: 304 when its validators match what is stored, else the body. */
    const answer = (
      stored: CacheEntry,
      body: Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null,
    ) => {
      if (
        (inm !== null || ims !== null) && res.status === 200 &&
        notModified(inm, ims, stored.etag, stored.modified)
      ) {
        // A streamed body keeps flowing into the store; the client only needs the 304.
        if (body instanceof ReadableStream) body.cancel().catch(() => {});
        const nm = new Response(null, { status: 304, headers: stored.notModifiedHeaders });
        nm.headers.append("x-cache", "MISS");
        return nm;
      }
      const full = new Response(body, {
        status: res.status,
        statusText: res.statusText,
        headers: rh,
      });
      full.headers.set("x-cache", "MISS");
      return full;
    };
    if (res.body !== null && length !== null && Number(length) <= INLINE_MAX_BYTES) {
      // Small body of known size: read it at once. A JS stream between the
      // forwarder and the client would cost more than holding a few KiB.
      let body: Uint8Array<ArrayBuffer>;
      try {
        body = new Uint8Array(await res.arrayBuffer());
      } catch (err) {
        lock?.release(false);
        throw new UpstreamError("reset", `upstream body failed: ${(err as Error).message}`, true, {
          cause: err,
        });
      }
      const entry = prepare({ ...base, body }, this.#heuristic);
      const ttl = this.ttlOf(entry, Date.now());
      if (ttl > 0) {
        this.store.set(key, entry, ttl);
        this.counters.stored++;
      }
      lock?.release(ttl > 0);
      ctx.cacheStatus = "MISS";
      return answer(entry, body);
    }

    const probe = prepare(base, this.#heuristic);
    const ttl = this.ttlOf(probe, responseTime);
    if (ttl <= 0) return pass("no lifetime");

    const finish = (body: Uint8Array<ArrayBuffer> | null) => {
      if (body === null) {
        this.counters.tooBig++;
        s.notStored = "too big";
        lock?.release(false);
        return;
      }
      const entry = body.byteLength === 0 ? probe : prepare({ ...base, body }, this.#heuristic);
      const now = Date.now();
      this.store.set(key, entry, this.ttlOf(entry, now));
      this.counters.stored++;
      lock?.release(true);
    };
    ctx.cacheStatus = "MISS";
    let body: ReadableStream<Uint8Array> | null = null;
    if (res.body === null) {
      finish(new Uint8Array(0));
    } else {
      const cap = capture(res.body, this.#max);
      body = cap.stream;
      this.#track(cap.done.then(finish));
    }
    return answer(probe, body);
  }

  /** stale-while-revalidate: one background refresh per key at a time; never throws. */
  #refresh(s: CacheSession, entry: CacheEntry) {
    const { req, ctx, next, key } = s;
    if (this.#refreshing.has(key) || this.#inflight.has(key)) return;
    this.#refreshing.add(key);
    this.counters.refreshes++;
    const headers = new Headers(req.headers);
    for (const f of ["cache-control", "pragma", ...CLIENT_CONDITIONALS]) headers.delete(f);
    const bg = new Request(req.url, { method: "GET", headers });
    const task = (async () => {
      try {
        const res = await this.#forward({
          req: bg,
          ctx: { ...ctx },
          next,
          key,
          rules: NO_RULES,
          entry,
          lock: null,
          counted: false,
        });
        // Cancelling a captured body keeps reading it into the store.
        await res.body?.cancel();
      } finally {
        this.#refreshing.delete(key);
      }
    })();
    this.#track(task);
  }

  /** Other methods: pass through; a successful unsafe one invalidates (RFC 9111 §4.4). */
  async #other(req: Request, ctx: RequestContext, next: Handler): Promise<Response> {
    this.counters.bypass++;
    ctx.cacheStatus = "BYPASS";
    const res = await next(req, ctx);
    if (invalidatesOnSuccess(req.method) && res.status >= 200 && res.status < 400) {
      const key = cacheKey(req, ctx);
      this.invalidate(key, res.headers);
    }
    return withStatus(res, "BYPASS");
  }

  /**
   * Drops stored responses for `url` and, when given the response of an unsafe
   * request, for its same-origin Location and Content-Location. The memory
   * copy goes at once; the Redis deletion is queued before this returns.
   */
  invalidate(url: string, headers?: Headers): void {
    const keys = [url];
    if (headers) {
      let origin: string | undefined;
      try {
        origin = new URL(url).origin;
      } catch { /* not a URL: only the key itself */ }
      for (const f of ["location", "content-location"]) {
        const v = headers.get(f);
        if (v === null || origin === undefined) continue;
        try {
          const u = new URL(v, url);
          u.hash = "";
          if (u.origin === origin) keys.push(u.href);
        } catch { /* malformed: ignore */ }
      }
    }
    for (const k of keys) this.#track(this.store.delete(k));
  }

  /** Resolves when background refreshes and stores have finished. */
  async settle(): Promise<void> {
    while (this.#tasks.size > 0) await Promise.all([...this.#tasks]);
    await this.store.settle();
  }
}
