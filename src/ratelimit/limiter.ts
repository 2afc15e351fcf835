/**
 * The rate-limit phase: RATE_LIMIT_REQUESTS per RATE_LIMIT_WINDOW seconds per
 * client, decided in Redis when it is healthy and locally when it is not.
 *
 * Redis trouble never fails or slows a request beyond `redisTimeoutMs`: an
 * error, a timeout or a client whose status is not "ok" sends that decision to
 * the in-process limiter, and the snapshot says so (`store`, `redis_fallbacks`).
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import type { Cluster, Redis } from "ioredis";
import type { RequestContext, Wrapper } from "../context/mod.ts";
import { plainText } from "../respond/mod.ts";
import type { MetricFamily, StatsSource } from "../stats/metric.ts";
import { type Cidr, matchesAny } from "../security/mod.ts";
import { ceilSeconds, type Decision, rateLimitHeaders } from "./decision.ts";
import { LocalSlidingWindow } from "./local.ts";
import { RedisSlidingWindow } from "./redis_store.ts";
import type { ThreadGroup } from "../threads/group.ts";

/**
 * Defaults chosen so that trying the proxy is never refused by surprise: 1000
 * requests a minute fits several browser page loads of 150 sub-resources each,
 * and loopback (the dashboard's own load test, a browser on the same machine)
 * is exempt altogether.
 */
export const DEFAULT_RATE_LIMIT_REQUESTS = 1000;
export const DEFAULT_RATE_LIMIT_WINDOW_SEC = 60;
export const DEFAULT_RATE_LIMIT_EXEMPT = "127.0.0.0/8,::1/128";

/** How a client is identified: its IP, its proxy user, or a request header's value. */
export type KeyBy = "ip" | "user" | { readonly header: string };

/** The shared Redis connection as the app hands it around. */
export interface RedisHandle {
  readonly client: Redis | Cluster;
  /** "ok" when commands can be sent now; anything else means use the local limiter. */
  status(): string;
}

export interface RateLimiterOptions {
  /** Requests per window; 0 disables rate limiting. */
  readonly limit: number;
  readonly windowSec: number;
  readonly redis?: RedisHandle;
  /** Redis key prefix, e.g. "proxy:rl:". */
  readonly prefix?: string;
  readonly keyBy?: KeyBy;
  /** Clients (by IP) that are never limited. */
  readonly exempt?: readonly Cidr[];
  /** Longest wait for Redis before deciding locally (default 250 ms). */
  readonly redisTimeoutMs?: number;
  readonly logger?: Logger;
  /** Clock for the local limiter (tests inject one). */
  readonly now?: () => number;
  /**
   * The serving threads (SERVE_THREADS > 1): without Redis, thread 0 keeps every client's
   * window and the others ask it, so the limit holds for the process, not per thread.
   */
  readonly threads?: ThreadGroup;
}

export interface RateLimiter extends StatsSource {
  /** 429 with Retry-After when over the limit, RateLimit-* headers on every limited answer. */
  readonly phase: Wrapper;
  /** True for a client in RATE_LIMIT_EXEMPT (remembered per address). */
  isExempt(ip: string): boolean;
  /**
   * True, counted as an exempt request, when the phase would let this request
   * through untouched (an exempt client); the pipeline's fast path then skips it.
   */
  passesExempt(ctx: RequestContext): boolean;
  /** Decides for a client key (already derived; exemption is not applied here). */
  check(key: string): Promise<Decision>;
  /** Decides for a request: applies keyBy and the exempt list (also for CONNECT). */
  decide(ctx: RequestContext, headers?: Headers): Promise<Decision>;
  /** The 429 response for a refused decision. */
  refusal(decision: Decision, ctx: RequestContext): Response;
  snapshot(): RateLimitSnapshot;
  metrics(): MetricFamily[];
  close(): void;
}

export interface RateLimitSnapshot {
  readonly enabled: boolean;
  readonly limit: number;
  readonly window_sec: number;
  readonly key_by: string;
  readonly exempt: readonly string[];
  /** Store that took the latest decision. */
  readonly store: "redis" | "local";
  readonly allowed_requests: number;
  readonly rate_limited_requests: number;
  readonly exempt_requests: number;
  /** Decisions taken locally because Redis was unavailable. */
  readonly redis_fallbacks: number;
  readonly last_redis_error?: string;
  readonly local_tracked_clients: number;
}

/** What the other serving threads ask thread 0 for: a decision on a client key. */
const RATE_LIMIT_TOPIC = "ratelimit";

class RedisTimeout extends Error {
  constructor(ms: number) {
    super(`no answer from Redis within ${ms} ms`);
  }
}

export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const limit = Math.max(0, Math.floor(options.limit));
  const enabled = limit > 0;
  const windowMs = options.windowSec * 1000;
  if (enabled && !(windowMs > 0)) {
    throw new Error(
      `RATE_LIMIT_WINDOW must be a positive number of seconds (got ${options.windowSec})`,
    );
  }
  const keyBy = options.keyBy ?? "ip";
  const exempt = options.exempt ?? [];
  const timeoutMs = options.redisTimeoutMs ?? 250;
  const log = options.logger;
  const own = new LocalSlidingWindow({ limit, windowMs, now: options.now });
  const threads = options.threads;
  const stopAnswering = enabled && threads?.thread === 0
    ? threads.handle(RATE_LIMIT_TOPIC, (key) => own.check(key as string))
    : undefined;
  /** The in-process window: this thread's own, or thread 0's for every thread. */
  const local = threads === undefined || threads.thread === 0
    ? (key: string): Decision | Promise<Decision> => own.check(key)
    : (key: string): Promise<Decision> =>
      // Thread 0 answers between two of its requests; if it cannot (it is stopping), this
      // thread's own window decides.
      threads.ask<Decision>(RATE_LIMIT_TOPIC, key, timeoutMs).catch(() => own.check(key));
  const remote = enabled && options.redis
    ? new RedisSlidingWindow({
      client: options.redis.client,
      limit,
      windowMs,
      prefix: options.prefix ?? "proxy:rl:",
    })
    : undefined;
  const counts = { allowed: 0, limited: 0, exempt: 0, fallbacks: 0 };
  let store: "redis" | "local" = remote ? "redis" : "local";
  let lastError: string | undefined;

  const useLocal = (key: string, reason: string): Decision | Promise<Decision> => {
    counts.fallbacks++;
    lastError = reason;
    if (store === "redis") {
      store = "local";
      log?.warn("rate limit: Redis unavailable ({reason}); deciding locally until it is back", {
        reason,
      });
    }
    return local(key);
  };

  const check = async (key: string): Promise<Decision> => {
    if (!enabled) return { allowed: true, limit: 0, remaining: 0, resetMs: 0, store: "off" };
    if (!remote) return local(key);
    const status = options.redis!.status();
    if (status !== "ok") return useLocal(key, `Redis status ${status}`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const d = await Promise.race([
        remote.check(key),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new RedisTimeout(timeoutMs)), timeoutMs);
        }),
      ]);
      if (store === "local") {
        store = "redis";
        log?.info("rate limit: Redis is back; deciding in Redis again");
      }
      return d;
    } catch (err) {
      return useLocal(key, (err as Error).message);
    } finally {
      clearTimeout(timer);
    }
  };

  const keyFor = (ctx: RequestContext, headers?: Headers): string => {
    if (keyBy === "ip") return `ip:${ctx.clientIp}`;
    if (keyBy === "user") return ctx.user ? `user:${ctx.user}` : `ip:${ctx.clientIp}`;
    const value = headers?.get(keyBy.header);
    return value ? `h:${value.slice(0, 256)}` : `ip:${ctx.clientIp}`;
  };

  // Exemption per address string, remembered: parsing an address costs about a microsecond,
  // a Map lookup a few nanoseconds, and this runs on every request.
  const exemptCache = new Map<string, boolean>();
  const isExempt = (ip: string): boolean => {
    let v = exemptCache.get(ip);
    if (v === undefined) {
      v = matchesAny(exempt, ip);
      if (exemptCache.size >= 10_000) exemptCache.clear();
      exemptCache.set(ip, v);
    }
    return v;
  };

  const decide = async (ctx: RequestContext, headers?: Headers): Promise<Decision> => {
    if (!enabled) return { allowed: true, limit: 0, remaining: 0, resetMs: 0, store: "off" };
    if (exempt.length > 0 && isExempt(ctx.clientIp)) {
      counts.exempt++;
      return { allowed: true, limit, remaining: limit, resetMs: 0, store: "exempt" };
    }
    const d = await check(keyFor(ctx, headers));
    d.allowed ? counts.allowed++ : counts.limited++;
    return d;
  };

  const who = keyBy === "ip"
    ? "client address"
    : keyBy === "user"
    ? "proxy user"
    : `${keyBy.header} header`;
  const refusal = (d: Decision, ctx: RequestContext) =>
    plainText(
      429,
      `429 Too Many Requests: more than ${limit} requests in ${options.windowSec} s from ${who} ` +
        `${keyBy === "ip" ? ctx.clientIp : ""}`.trimEnd() +
        `; retry in ${ceilSeconds(d.resetMs)} s. ` +
        `(RATE_LIMIT_REQUESTS/RATE_LIMIT_WINDOW; clients in RATE_LIMIT_EXEMPT, loopback by default, are never limited)`,
      rateLimitHeaders(d),
    );

  const phase: Wrapper = (next) => {
    if (!enabled) return next;
    return async (req, ctx) => {
      const d = await decide(ctx, req.headers);
      if (d.store === "exempt") return await next(req, ctx);
      if (!d.allowed) return refusal(d, ctx);
      let res = await next(req, ctx);
      const headers = rateLimitHeaders(d);
      try {
        for (const k in headers) res.headers.set(k, headers[k]);
      } catch {
        // Immutable headers (a fetch() response): copy the response once, not once per header.
        res = new Response(res.body, res);
        for (const k in headers) res.headers.set(k, headers[k]);
      }
      return res;
    };
  };

  return {
    name: "rate_limit",
    phase,
    isExempt,
    passesExempt(ctx) {
      if (exempt.length === 0 || !isExempt(ctx.clientIp)) return false;
      counts.exempt++;
      return true;
    },
    check,
    decide,
    refusal,
    snapshot: () => ({
      enabled,
      limit,
      window_sec: options.windowSec,
      key_by: typeof keyBy === "string" ? keyBy : `header:${keyBy.header}`,
      exempt: exempt.map((c) => c.text),
      store,
      allowed_requests: counts.allowed,
      rate_limited_requests: counts.limited,
      exempt_requests: counts.exempt,
      redis_fallbacks: counts.fallbacks,
      ...(lastError ? { last_redis_error: lastError } : {}),
      local_tracked_clients: own.size,
    }),
    metrics: (): MetricFamily[] => [
      {
        name: "proxy_rate_limited_requests_total",
        help: "Requests refused with 429 by the rate limiter.",
        type: "counter",
        samples: [{ value: counts.limited }],
      },
      {
        name: "proxy_rate_limit_allowed_requests_total",
        help: "Requests the rate limiter let through (exempt clients not included).",
        type: "counter",
        samples: [{ value: counts.allowed }],
      },
      {
        name: "proxy_rate_limit_redis_fallbacks_total",
        help: "Rate-limit decisions taken locally because Redis was unavailable.",
        type: "counter",
        samples: [{ value: counts.fallbacks }],
      },
      {
        name: "proxy_rate_limit_store_redis",
        help: "1 while rate-limit decisions are taken in Redis, 0 while local.",
        type: "gauge",
        samples: [{ value: store === "redis" ? 1 : 0 }],
      },
    ],
    close() {
      stopAnswering?.();
      own.clear();
      exemptCache.clear();
    },
  };
}
