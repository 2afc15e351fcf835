/**
 * RFC 9111 shared HTTP cache: an in-process LRU (L1) in front of Redis (L2).
 *
 * ```ts
 * const cache = await createCache({
 *   backend: "auto", memoryBytes: 64 << 20, maxObjectBytes: 8 << 20,
 *   heuristic: { mode: "last-modified", maxSec: 300 }, prefix: "proxy:", redis: connectRedis({ host: "127.0.0.1", port: 6379, db: 0 }),
 * });
 * const handler = cache.wrap(compression.wrap(route));
 * ```
 *
 * `heuristic` (CACHE_HEURISTIC, CACHE_EXPIRATION) decides the freshness of
 * cacheable responses that carry no explicit freshness (no s-maxage, max-age
 * or Expires): by default 10 % of their Last-Modified age capped by
 * CACHE_EXPIRATION, and none without Last-Modified (see
 * {@linkcode CacheHeuristic}); explicit freshness always wins.
 *
 * @module
 */
import type { Handler, HitAnswer, RequestContext, RequestView, Wrapper } from "../context/mod.ts";
import { counter, gauge, type MetricFamily, type StatsSource } from "../stats/metric.ts";
import { type RedisHandle, subscriberOf } from "../redis/mod.ts";
import { CacheEngine, type FreshHit, storageTtl } from "./cache.ts";
import { MemoryStore } from "./memory.ts";
import type { CacheStore, FetchClaims } from "./store.ts";
import { RedisStore } from "./redis_store.ts";
import { TieredStore } from "./tiered.ts";
import type { Heuristic } from "./policy.ts";

export { purgeRoutes } from "./purge.ts";
export { cacheKey, type FreshHit } from "./cache.ts";
export {
  CACHE_HEURISTICS,
  type CacheHeuristic,
  type Heuristic,
  STRICT_HEURISTIC,
} from "./policy.ts";

export type CacheBackend = "auto" | "memory" | "redis" | "off";

export interface CacheOptions {
  /** "auto": Redis when it answers PING at start-up (within ~500 ms), else memory. */
  backend: CacheBackend;
  /** L1 byte budget (CACHE_MEMORY_SIZE). */
  memoryBytes: number;
  /** Larger objects stream through unstored (CACHE_MAX_OBJECT_SIZE). */
  maxObjectBytes: number;
  /** CACHE_HEURISTIC and CACHE_EXPIRATION; see the module doc. */
  heuristic: Heuristic;
  /** Redis key prefix (CACHE_PREFIX); nothing outside it is touched. */
  prefix: string;
  /** Shared Redis connection; needed for "redis", optional for "auto". */
  redis?: RedisHandle;
  /** Seconds a stale entry with validators stays stored for revalidation (default 3600). */
  revalidateGraceSec?: number;
  /** Longest wait for a concurrent request's origin fetch of the same URL (default 5000 ms). */
  lockTimeoutMs?: number;
  logger?: (level: "debug" | "info" | "warn" | "error", msg: string) => void;
  /**
   * A further local tier behind the memory store, given that store: the other serving
   * threads' replicas (src/threads), so the threads' memory caches act as one.
   */
  replicas?: (memory: CacheStore) => CacheStore & FetchClaims;
}

export type PurgeTarget = { url: string } | { prefix: string } | { all: true };

export interface CacheSnapshot {
  cache_hits: number;
  cache_misses: number;
  cache_hit_ratio: number;
  stale_served: number;
  revalidations: number;
  coalesced_waiters: number;
  bypassed: number;
  stored: number;
  not_stored_too_big: number;
  background_refreshes: number;
  bytes_served_from_cache: number;
  redis_errors: number;
  l1_bytes: number;
  l1_entries: number;
  l1_evictions: number;
  backend: "memory" | "redis" | "off";
  status: "ok" | "degraded" | "off";
}

export interface Cache extends StatsSource {
  readonly name: "cache";
  readonly backendName: "memory" | "redis" | "off";
  /** The cache phase; put it outside compression: `cache.wrap(compression.wrap(route))`. */
  readonly wrap: Wrapper;
  /**
   * Synchronous fresh-hit fast path for a listener that wants to answer hits
   * before the rest of the app: a Response for a plain GET/HEAD whose fresh
   * copy is in memory, else undefined (then run the app as usual). It skips
   * whatever the caller has not run before it (rate limit, filters), so call
   * it only after those or where they do not apply.
   */
  serveHit(req: Request, ctx: RequestContext): Response | undefined;
  /** The fresh in-memory entry for a plain GET/HEAD, counting nothing; see `answerHit`. */
  freshHit(req: RequestView, ctx: Pick<RequestContext, "target">): FreshHit | undefined;
  /**
   * `serveHit` for a listener that writes the answer itself: the same hit,
   * counted the same, as a head template and body; undefined (nothing
   * counted) when only a Response can answer it (a conditional request).
   */
  answerHit(hit: FreshHit, req: RequestView, ctx: RequestContext): HitAnswer | undefined;
  /** Drops stored responses for an effective request URL (all its variants). */
  invalidate(url: string): Promise<void>;
  /** Purges by exact URL, URL prefix, or everything under the prefix; returns keys removed. */
  purge(target: PurgeTarget): Promise<number>;
  /** "degraded" while Redis is unreachable (requests are then served from L1 / the origin). */
  status(): "ok" | "degraded" | "off";
  snapshot(): CacheSnapshot;
  metrics(): MetricFamily[];
  /** Resolves when background refreshes and writes have finished (for tests and shutdown). */
  settle(): Promise<void>;
  /** Waits for background work, then releases the stores (not the shared Redis handle). */
  close(): Promise<void>;
}

/** Normalises a URL the way request URLs are (lower-case host, default port dropped). */
function normalizeUrl(url: string): string {
  const u = new URL(url);
  u.hash = "";
  return u.href;
}

/**
 * Purge prefixes match keys as typed; a prefix with a path is normalised like
 * a URL, a bare (possibly partial) authority only lower-cased.
 */
function normalizePrefix(prefix: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/[^/?#]*)(.*)$/i.exec(prefix);
  if (m === null) return prefix;
  if (m[2] === "") return prefix.toLowerCase();
  try {
    return new URL(prefix).href;
  } catch {
    return prefix;
  }
}

export async function createCache(options: CacheOptions): Promise<Cache> {
  const log = options.logger;
  if (options.backend === "off") return offCache();
  let useRedis = false;
  if (options.backend === "redis") {
    if (!options.redis) throw new Error("CACHE_BACKEND=redis needs a Redis connection");
    useRedis = true;
    // Give the connection a moment, so the first requests can already share hits.
    if (!(await options.redis.ping(500))) {
      log?.("warn", "cache: redis is not answering yet; serving from memory until it does");
    }
  } else if (options.backend === "auto" && options.redis) {
    useRedis = await options.redis.ping(500);
  }
  const redis = useRedis ? options.redis : undefined;
  const l1 = new MemoryStore({ maxBytes: options.memoryBytes });
  const l2 = redis
    ? new RedisStore({
      client: redis.client,
      prefix: options.prefix,
      heuristic: options.heuristic,
    })
    : undefined;
  // A dedicated connection for pub/sub (a cluster's too: PUBLISH reaches every node's
  // subscribers); its subscribe waits for the connection and is renewed on every reconnect.
  const subscriber = redis ? subscriberOf(redis.client, "proxy-cache-invalidation") : undefined;
  subscriber?.on("error", () => {/* the shared handle reports Redis trouble */});
  const grace = options.revalidateGraceSec ?? 3600;
  const replicas = options.replicas?.(l1);
  const store = new TieredStore({
    local: replicas ? [l1, replicas] : [l1],
    shared: l2 ? [l2] : [],
    ttlOf: (e, now) => storageTtl(e, now, grace),
    pubsub: subscriber && redis
      ? {
        publisher: redis.client,
        subscriber,
        channel: options.prefix + "invalidate",
      }
      : undefined,
  });
  const engine = new CacheEngine({
    store,
    maxObjectBytes: options.maxObjectBytes,
    heuristic: options.heuristic,
    revalidateGraceSec: grace,
    lockTimeoutMs: options.lockTimeoutMs,
    logger: log,
    claims: replicas,
  });
  const backendName = redis ? "redis" : "memory";
  log?.(
    "info",
    `cache: ${backendName} backend` +
      (options.backend === "auto" && !redis && options.redis ? " (redis did not answer)" : ""),
  );
  const status = () => (redis && redis.status() !== "ok" ? "degraded" : "ok") as "ok" | "degraded";
  const snapshot = (): CacheSnapshot => {
    const c = engine.counters;
    const hits = c.hits + c.stale + c.revalidated;
    return {
      cache_hits: hits,
      cache_misses: c.misses,
      cache_hit_ratio: hits + c.misses === 0 ? 0 : hits / (hits + c.misses),
      stale_served: c.stale,
      revalidations: c.revalidated,
      coalesced_waiters: c.coalesced,
      bypassed: c.bypass,
      stored: c.stored,
      not_stored_too_big: c.tooBig,
      background_refreshes: c.refreshes,
      bytes_served_from_cache: c.bytesServed,
      redis_errors: l2?.errors ?? 0,
      l1_bytes: l1.bytes,
      l1_entries: l1.entries,
      l1_evictions: l1.evictions,
      backend: backendName,
      status: status(),
    };
  };
  let closed = false;
  return {
    name: "cache",
    backendName,
    wrap: engine.wrap,
    serveHit: engine.serveHit,
    freshHit: engine.freshHit,
    answerHit: engine.answerHit,
    invalidate(url) {
      engine.invalidate(normalizeUrl(url));
      return engine.settle();
    },
    async purge(target) {
      if ("url" in target) return (await store.delete(normalizeUrl(target.url))) ? 1 : 0;
      if ("prefix" in target) return await store.purgePrefix(normalizePrefix(target.prefix));
      return await store.clear();
    },
    status,
    snapshot,
    metrics: () => cacheMetrics(snapshot()),
    settle: () => engine.settle(),
    async close() {
      if (closed) return;
      closed = true;
      await engine.settle();
      await store.close();
      subscriber?.disconnect();
    },
  };
}

function offCache(): Cache {
  const snapshot = (): CacheSnapshot => ({
    cache_hits: 0,
    cache_misses: 0,
    cache_hit_ratio: 0,
    stale_served: 0,
    revalidations: 0,
    coalesced_waiters: 0,
    bypassed: 0,
    stored: 0,
    not_stored_too_big: 0,
    background_refreshes: 0,
    bytes_served_from_cache: 0,
    redis_errors: 0,
    l1_bytes: 0,
    l1_entries: 0,
    l1_evictions: 0,
    backend: "off",
    status: "off",
  });
  return {
    name: "cache",
    backendName: "off",
    wrap: (next: Handler) => next,
    serveHit: () => undefined,
    freshHit: () => undefined,
    answerHit: () => undefined,
    invalidate: () => Promise.resolve(),
    purge: () => Promise.resolve(0),
    status: () => "off",
    snapshot,
    metrics: () => cacheMetrics(snapshot()),
    settle: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

function cacheMetrics(s: CacheSnapshot): MetricFamily[] {
  return [
    {
      name: "proxy_cache_requests_total",
      help: "Cacheable requests by outcome (hit includes stale and revalidated).",
      type: "counter",
      samples: [
        { labels: { result: "hit" }, value: s.cache_hits },
        { labels: { result: "miss" }, value: s.cache_misses },
        { labels: { result: "bypass" }, value: s.bypassed },
      ],
    },
    counter("proxy_cache_stale_served_total", "Stale responses served.", s.stale_served),
    counter("proxy_cache_revalidations_total", "Stale entries revalidated (304).", s.revalidations),
    counter(
      "proxy_cache_coalesced_waiters_total",
      "Requests that waited for another request's origin fetch.",
      s.coalesced_waiters,
    ),
    counter("proxy_cache_stored_total", "Responses stored.", s.stored),
    counter(
      "proxy_cache_bytes_served_total",
      "Body bytes served from the cache.",
      s.bytes_served_from_cache,
    ),
    counter("proxy_cache_redis_errors_total", "Failed Redis cache commands.", s.redis_errors),
    gauge("proxy_cache_l1_bytes", "Bytes held by the in-process cache.", s.l1_bytes),
    gauge("proxy_cache_l1_entries", "Responses held by the in-process cache.", s.l1_entries),
    counter("proxy_cache_l1_evictions_total", "In-process cache evictions.", s.l1_evictions),
    gauge(
      "proxy_cache_up",
      "1 when the cache backend is healthy, 0 when degraded (Redis unreachable).",
      s.status === "degraded" ? 0 : 1,
    ),
  ];
}
