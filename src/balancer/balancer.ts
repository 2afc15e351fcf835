/**
 * The reverse-proxy phase "choose upstream peer → send", with Pingora's
 * loop back to "choose" when a failed attempt may be retried.
 *
 * @module
 */

import type { Handler, RequestContext } from "../context/mod.ts";
import type { MetricFamily } from "../stats/metric.ts";
import { Backend, type BackendState, type PassiveOptions } from "./backend.ts";
import { IDEMPOTENT_METHODS, prepareBody, type PreparedBody, trackBody } from "./body.ts";
import { HealthChecker, type HealthCheckOptions } from "./health.ts";
import { plainText } from "../respond/mod.ts";
import { UpstreamError } from "../forward/errors.ts";
import { createPolicy, pathAndQueryOf, type Strategy } from "./strategy.ts";

/** A configured backend: an origin (no path) and a weight (integer 1–1000, default 1). */
export interface BackendSpec {
  url: URL;
  weight: number;
}

/** Sends one attempt of `req` to `target` (the forwarder, in the app). */
export type SendFn = (req: Request, target: URL, ctx: RequestContext) => Promise<Response>;

/** The part of a logtape Logger the balancer uses (state changes and retries). */
export interface BalancerLogger {
  debug(message: string, properties?: Record<string, unknown>): void;
  info(message: string, properties?: Record<string, unknown>): void;
  warn(message: string, properties?: Record<string, unknown>): void;
}

export interface BalancerOptions {
  backends: readonly BackendSpec[];
  strategy: Strategy;
  /** Active checks; an empty or missing `path` turns them off. */
  healthCheck?: Partial<HealthCheckOptions>;
  passive?: Partial<PassiveOptions>;
  /** Further backends tried after a failed attempt (RETRY_ATTEMPTS; default 2). */
  retries?: number;
  /**
   * Request bodies up to this many bytes (default 64 KiB) are kept in memory
   * so a retry can resend them; larger or longer streamed bodies go out once
   * and are never replayed. Memory held is at most this per request in flight.
   */
  retryBodyLimit?: number;
  send: SendFn;
  logger?: BalancerLogger;
  /**
   * Upstream connection counters per origin (the forwarder's
   * `snapshot().origins`, keyed "http://host:port"), so each backend's entry
   * in the stats shows its keep-alive reuse.
   */
  connectionStats?: () => Readonly<Record<string, ConnectionCounters>>;
  /**
   * A turn counter shared by every serving thread (SERVE_THREADS > 1): round-robin and the
   * least-connections tie rotation take their turns from it, so they rotate for the process.
   */
  turns?: () => number;
}

export interface ConnectionCounters {
  opened: number;
  reused: number;
  requests: number;
}

export interface BackendSnapshot {
  url: string;
  weight: number;
  state: BackendState;
  /** Drained by the operator (`POST /proxy-backends/<id>/drain`). */
  drained: boolean;
  /** ISO time the current passive ejection ends, or null. */
  ejected_until: string | null;
  requests: number;
  errors: number;
  in_flight: number;
  latency_ms: { p50: number; p99: number };
  consecutive_failures: number;
  ejections: number;
  /** Upstream connections: opened, reused and the share of requests on a reused one. */
  connections: { opened: number; reused: number; reuse_ratio: number } | null;
  health: {
    enabled: boolean;
    healthy: boolean;
    consecutive_successes: number;
    consecutive_failures: number;
    last_check: string | null;
    last_status: number | null;
    last_error: string | null;
    last_duration_ms: number | null;
  };
}

export interface BalancerSnapshot {
  strategy: Strategy;
  /** Attempts made after a failed one. */
  retries: number;
  /** Requests answered 503 because no backend was available. */
  unavailable: number;
  /** Requests that failed on every attempt (502/504). */
  failed: number;
  backends: BackendSnapshot[];
}

/**
 * In-flight counts last until the response body has been delivered. When
 * the listener's ConnInfo carries `completed` (Deno.serve's
 * `ServeHandlerInfo.completed`, settled once the response was sent), that
 * promise ends the count; otherwise the body is wrapped, which costs about a
 * third of the throughput of a proxied 1 KiB response on Deno 2.9.
 */
export interface Balancer {
  /** Proxies an origin-form request to a chosen backend; sets `ctx.backend`. */
  readonly handler: Handler;
  /** Section "backends" of /proxy-stats. */
  readonly name: string;
  snapshot(): BalancerSnapshot;
  /**
   * Drains (no new requests; in-flight ones finish) or enables a backend,
   * named by its index, `host:port` or origin. Its snapshot, or undefined
   * when no backend has that name.
   */
  setDrained(id: string, drained: boolean): BackendSnapshot | undefined;
  metrics(): MetricFamily[];
  /** Stops active health checks. */
  close(): Promise<void>;
}

const DEFAULT_HEALTH: HealthCheckOptions = {
  path: "",
  intervalMs: 5_000,
  timeoutMs: 2_000,
  rise: 2,
  fall: 3,
};
const DEFAULT_PASSIVE: PassiveOptions = {
  maxFails: 3,
  failTimeoutMs: 10_000,
  countServerErrors: false,
};
const NO_BODY: PreparedBody = { kind: "none" };

/** Builds a balancer over `options.backends`; active health checks start at once. */
export function createBalancer(options: BalancerOptions): Balancer {
  const backends = options.backends.map((spec, i) => {
    if (!Number.isInteger(spec.weight) || spec.weight < 1) {
      throw new Error(`BACKEND_SERVERS: weight of ${spec.url.href} must be an integer ≥ 1`);
    }
    return new Backend(spec.url, spec.weight, i);
  });
  const strategy = options.strategy;
  const health = { ...DEFAULT_HEALTH, ...options.healthCheck };
  const passive = { ...DEFAULT_PASSIVE, ...options.passive };
  // Like nginx: ejecting the only backend cannot send traffic anywhere else,
  // it only turns requests that might succeed into certain 503s for the whole
  // ejection period. Active health checks still take it out.
  if (backends.length === 1) passive.maxFails = 0;
  const retries = Math.max(0, options.retries ?? 2);
  const bodyLimit = Math.max(0, options.retryBodyLimit ?? 64 * 1024);
  const send = options.send;
  const log = options.logger;
  const policy = createPolicy(strategy, backends, options.turns);
  let retryCount = 0;
  let unavailableCount = 0;
  let failedCount = 0;

  const checker = health.path && backends.length > 0
    ? new HealthChecker(backends, health, (b, healthy) => {
      if (healthy) {
        // Active checks vouch for it again: forget the passive back-off too.
        b.resetPassive();
        log?.info("backend {backend} is up (health check passed {rise} times)", {
          backend: b.origin,
          rise: health.rise,
        });
      } else {
        log?.warn("backend {backend} is down (health check failed {fall} times): {error}", {
          backend: b.origin,
          fall: health.fall,
          error: b.lastCheck?.error,
        });
      }
    })
    : undefined;

  const failure = (b: Backend, reason: string) => {
    b.errors++;
    const period = b.recordFailure(Date.now(), passive);
    if (period > 0) {
      log?.warn("backend {backend} ejected for {seconds} s after {reason}", {
        backend: b.origin,
        seconds: period / 1000,
        reason,
      });
    }
  };

  const unavailable = () => {
    unavailableCount++;
    const why = backends.every((b) => b.drained) ? "drained" : "down";
    return plainText(503, `no backend available: all backends are ${why}\n`, {
      "retry-after": String(retryAfterSeconds(backends, health)),
    });
  };

  const handler: Handler = async (req: Request, ctx: RequestContext): Promise<Response> => {
    if (backends.length === 0) return plainText(502, "no backend configured\n");
    const pathAndQuery = pathAndQueryOf(req.url);
    const idempotent = IDEMPOTENT_METHODS.has(req.method);
    // Backends already tried for this request; allocated on the first retry only.
    let tried: Set<Backend> | undefined;
    // "All down" answers at once, without waiting for an upload.
    const now = Date.now();
    if (!backends.some((c) => c.available(now))) return unavailable();
    const body: PreparedBody = req.body === null ? NO_BODY : await prepareBody(req, bodyLimit);
    let lastError: UpstreamError | undefined;
    let lastBackend: Backend | undefined;

    for (let attempt = 0; attempt <= retries; attempt++) {
      const at = Date.now();
      const b = tried === undefined
        ? policy.pick(backends, req, ctx, (c) => c.available(at))
        : policy.pick(backends, req, ctx, (c) => !tried!.has(c) && c.available(at));
      if (!b) break;
      if (attempt > 0) {
        retryCount++;
        // Debug: during a failover every request may retry once; that is not news.
        log?.debug("retrying {method} {path} on {backend} after {error}", {
          method: req.method,
          path: pathAndQuery,
          backend: b.origin,
          error: lastError?.kind,
        });
      }
      // No await between the pick and the in-flight count: concurrent
      // requests must see each other for least-connections to work.
      if (lastBackend !== undefined) (tried ??= new Set([lastBackend])).add(b);
      lastBackend = b;
      ctx.backend = b.origin;
      const target = new URL(b.origin + pathAndQuery);
      const attemptReq = attemptRequest(req, body);
      b.requests++;
      b.inFlight++;
      const started = performance.now();
      let res: Response;
      try {
        res = await send(attemptReq, target, ctx);
      } catch (thrown) {
        b.inFlight--;
        const err = lastError = UpstreamError.from(thrown);
        if (req.signal.aborted) break; // the client left; not the backend's fault
        if (err.backendFault) failure(b, err.kind);
        // A streamed body that went out (in part) cannot be sent again.
        if (!err.mayRetry(idempotent) || (body.kind === "stream" && attemptReq.bodyUsed)) break;
        continue;
      }
      b.latency.record(performance.now() - started);
      if (passive.countServerErrors && res.status >= 502 && res.status <= 504) {
        failure(b, `status ${res.status}`);
      } else {
        b.recordSuccess();
      }
      const completed = ctx.conn.completed;
      if (completed) {
        // The listener reports when the client got the whole response:
        // no body wrapper, so Deno keeps its fast path for the body.
        const done = () => b.inFlight--;
        completed.then(done, done);
        return res;
      }
      if (req.method === "HEAD") {
        // Only headers go out, and Deno.serve never reads (or cancels) a HEAD
        // response body, so a tracked body would never end.
        b.inFlight--;
        return res;
      }
      return trackBody(res, (how) => {
        b.inFlight--;
        // A reset in mid-body is a backend failure too (but not a client that left).
        if (how === "error" && !req.signal.aborted) failure(b, "error while streaming the body");
      });
    }

    if (lastBackend === undefined) return unavailable(); // all went down while the body was read
    failedCount++;
    const status = lastError?.status ?? 502;
    const text = status === 504 ? "gateway timeout" : "bad gateway";
    return plainText(status, `${text}: backend ${lastError?.kind ?? "failed"}`);
  };

  return {
    name: "backends",
    handler,
    snapshot(): BalancerSnapshot {
      const now = Date.now();
      const conns = options.connectionStats?.();
      return {
        strategy,
        retries: retryCount,
        unavailable: unavailableCount,
        failed: failedCount,
        backends: backends.map((b) =>
          backendSnapshot(b, now, checker !== undefined, conns && connectionsOf(b, conns))
        ),
      };
    },
    setDrained(id: string, drained: boolean): BackendSnapshot | undefined {
      const b = backends.find((b) => backendIds(b).includes(id));
      if (!b) return undefined;
      if (b.drained !== drained) {
        b.drained = drained;
        log?.info(`backend {backend} ${drained ? "drained" : "enabled"} by the operator`, {
          backend: b.origin,
        });
      }
      const conns = options.connectionStats?.();
      return backendSnapshot(
        b,
        Date.now(),
        checker !== undefined,
        conns && connectionsOf(b, conns),
      );
    },
    metrics(): MetricFamily[] {
      return backendMetrics(backends, retryCount, unavailableCount);
    },
    async close() {
      await checker?.close();
    },
  };
}

function attemptRequest(req: Request, body: PreparedBody): Request {
  switch (body.kind) {
    case "none":
      return req;
    case "kept":
      return new Request(req.url, {
        method: req.method,
        headers: req.headers,
        body: body.bytes,
        signal: req.signal,
        redirect: "manual",
      });
    case "stream":
      if (body.body === req.body) return req;
      return new Request(req.url, {
        method: req.method,
        headers: req.headers,
        body: body.body,
        signal: req.signal,
        redirect: "manual",
        // @ts-ignore: `duplex` is required by fetch for stream bodies but missing from Deno's RequestInit type
        duplex: "half",
      });
  }
}

/** When to come back: the earliest end of an ejection, else about one health-check round. */
function retryAfterSeconds(backends: readonly Backend[], health: HealthCheckOptions): number {
  const now = Date.now();
  let soonest = Infinity;
  for (const b of backends) {
    if (b.healthy && b.ejectedUntil > now) soonest = Math.min(soonest, b.ejectedUntil - now);
  }
  if (soonest === Infinity) soonest = health.intervalMs * health.rise;
  return Math.max(1, Math.min(300, Math.ceil(soonest / 1000)));
}

/** The forwarder keys origins with an explicit port ("http://h:80"); URL.host drops a default one. */
function connectionsOf(
  b: Backend,
  all: Readonly<Record<string, ConnectionCounters>>,
): ConnectionCounters | undefined {
  const port = b.url.port || (b.url.protocol === "https:" ? "443" : "80");
  return all[b.origin] ?? all[`${b.url.protocol}//${b.url.hostname}:${port}`];
}

/** The names a backend answers to in the admin API: index, host:port, origin. */
function backendIds(b: Backend): string[] {
  const port = b.url.port || (b.url.protocol === "https:" ? "443" : "80");
  return [String(b.index), `${b.url.hostname}:${port}`, b.url.host, b.origin];
}

function backendSnapshot(
  b: Backend,
  now: number,
  healthEnabled: boolean,
  conns: ConnectionCounters | undefined,
): BackendSnapshot {
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    url: b.origin,
    weight: b.weight,
    state: b.state(now),
    drained: b.drained,
    ejected_until: b.ejectedUntil > now ? new Date(b.ejectedUntil).toISOString() : null,
    requests: b.requests,
    errors: b.errors,
    in_flight: b.inFlight,
    latency_ms: { p50: round(b.latency.percentile(50)), p99: round(b.latency.percentile(99)) },
    consecutive_failures: b.consecutiveFailures,
    ejections: b.ejectionsTotal,
    connections: conns
      ? {
        opened: conns.opened,
        reused: conns.reused,
        reuse_ratio: conns.requests === 0 ? 0 : round(conns.reused / conns.requests),
      }
      : null,
    health: {
      enabled: healthEnabled,
      healthy: b.healthy,
      consecutive_successes: b.checkSuccesses,
      consecutive_failures: b.checkFailures,
      last_check: b.lastCheck ? new Date(b.lastCheck.at).toISOString() : null,
      last_status: b.lastCheck?.status ?? null,
      last_error: b.lastCheck?.error ?? null,
      last_duration_ms: b.lastCheck ? round(b.lastCheck.durationMs) : null,
    },
  };
}

function backendMetrics(
  backends: readonly Backend[],
  retries: number,
  unavailable: number,
): MetricFamily[] {
  const now = Date.now();
  const per = (value: (b: Backend) => number) =>
    backends.map((b) => ({ labels: { backend: b.origin }, value: value(b) }));
  return [
    {
      name: "proxy_backend_up",
      help: "1 when the backend may receive traffic (healthy and not ejected), else 0.",
      type: "gauge",
      samples: per((b) => (b.available(now) ? 1 : 0)),
    },
    {
      name: "proxy_backend_requests_total",
      help: "Attempts sent to the backend (retries included).",
      type: "counter",
      samples: per((b) => b.requests),
    },
    {
      name: "proxy_backend_errors_total",
      help: "Attempts that failed at the backend (connect errors, timeouts, resets).",
      type: "counter",
      samples: per((b) => b.errors),
    },
    {
      name: "proxy_backend_in_flight",
      help: "Requests to the backend whose response has not finished.",
      type: "gauge",
      samples: per((b) => b.inFlight),
    },
    {
      name: "proxy_backend_ejections_total",
      help: "Passive ejections of the backend after consecutive failures.",
      type: "counter",
      samples: per((b) => b.ejectionsTotal),
    },
    {
      name: "proxy_backend_latency_seconds",
      help: "Time from sending a request to the backend until its response headers.",
      type: "summary",
      samples: backends.flatMap((b) => [
        ...[0.5, 0.9, 0.99].map((q) => ({
          labels: { backend: b.origin, quantile: String(q) },
          value: b.latency.percentile(q * 100) / 1000,
        })),
        { labels: { backend: b.origin }, suffix: "_sum", value: b.latency.sum / 1000 },
        { labels: { backend: b.origin }, suffix: "_count", value: b.latency.count },
      ]),
    },
    {
      name: "proxy_backend_retries_total",
      help: "Attempts sent to another backend after a failed one.",
      type: "counter",
      samples: [{ value: retries }],
    },
    {
      name: "proxy_backend_unavailable_total",
      help: "Requests answered 503 because no backend was available.",
      type: "counter",
      samples: [{ value: unavailable }],
    },
  ];
}
