/**
 * Composes the proxy: one Hono app whose phases run in Pingora's order.
 *
 *   observe (request id · stats · access log)
 *   → own endpoints (/proxy-stats, /metrics, /healthz, purge) when addressed to the proxy
 *   → admission (in-flight limit + bounded FIFO queue)
 *   → client ACL · proxy auth (forward proxying only)
 *   → rate limit → filter
 *   → cache → compression → route (absolute-form: the destination; origin-form: the balancer)
 *     → forwarder (pooled keep-alive, timeouts, streaming)
 *
 * Request filters are Hono middlewares; everything after them is a chain of
 * plain `Handler`s (src/context), so the cache can call the inner chain for
 * background revalidation and a hit costs no middleware hops.
 *
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import type { LoadedConfig } from "./config/mod.ts";
import type { ConnInfo, Handler, RequestContext } from "./context/mod.ts";
import { createForwarder, UpstreamError } from "./forward/mod.ts";
import { createBalancer } from "./balancer/mod.ts";
import { createAdmission } from "./admission/mod.ts";
import { logger } from "./log/mod.ts";
import {
  adminGuard,
  bodyLimit,
  clientIpFrom,
  createAddressPolicy,
  createClientAcl,
  createHostnameCheck,
  createProxyAuth,
  forwardedForValue,
  parseCidrList,
  requestHygiene,
} from "./security/mod.ts";
import { createRateLimiter, rateLimitHeaders } from "./ratelimit/mod.ts";
import { createCompression } from "./compress/mod.ts";
import { createFilter, xFilterValue } from "./filter/mod.ts";
import { createWorkerPool, TASK_WORKER } from "./workers/mod.ts";
import { connectRedis } from "./redis/mod.ts";
import { createCache, purgeRoutes } from "./cache/mod.ts";
import { PROMETHEUS_CONTENT_TYPE, ProxyStats, renderPrometheus } from "./stats/mod.ts";
import type { Refusal, TunnelRequest } from "./server/tunnel.ts";
import { isWebSocketUpgrade, relayWebSocket } from "./server/websocket.ts";
import { VERSION } from "./version.ts";

export type ProxyEnv = { Bindings: ConnInfo; Variables: { ctx: RequestContext } };

/** Everything `serve` needs from the composed proxy. */
export interface Proxy {
  /** The app, for every listener. */
  fetch(req: Request, conn: ConnInfo): Response | Promise<Response>;
  /** Checks a CONNECT before a tunnel opens. */
  admitTunnel(req: TunnelRequest): Promise<Refusal | undefined>;
  /** SSRF check on the address actually connected to, for tunnels. */
  checkAddress?(ip: string, host: string): string | undefined;
  readonly stats: ProxyStats;
  readonly mode: LoadedConfig["mode"];
  /** Re-reads lists, certificates and auth files (SIGHUP). */
  reload(): Promise<void>;
  close(): Promise<void>;
}

const text = (status: number, body: string, headers: Record<string, string> = {}) =>
  new Response(`${body}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
  });

/** Paths of the proxy's own endpoints (origin-form requests only). */
const OWN_PATHS = new Set(["/proxy-stats", "/metrics", "/healthz", "/proxy-reload"]);

export async function createProxy(loaded: LoadedConfig): Promise<Proxy> {
  const { config, mode } = loaded;
  const listener = mode === "reverse" ? "deno.serve" : "node:http";
  const stats = new ProxyStats({ mode, listener });
  const accessLog = config.accessLog ? logger("access") : undefined;
  const log = logger("app");
  const instance = crypto.randomUUID().slice(0, 8);
  const via = `1.1 proxy-${instance}`;
  const closers: (() => unknown)[] = [];
  const cidrs = (list: { text: string }[]) => parseCidrList(list.map((c) => c.text));

  // ── security: who may use the proxy, where it may connect ──────────
  const acl = createClientAcl({ allowed: cidrs(config.allowedClients) });
  const trusted = cidrs(config.trustedProxies);
  const checkAddress = createAddressPolicy({
    allowPrivate: config.forwardAllowPrivate === "none" || config.forwardAllowPrivate === "all"
      ? config.forwardAllowPrivate
      : cidrs(config.forwardAllowPrivate),
  });
  // In a gateway the backends are the operator's own, so only forward proxying is
  // limited to ALLOWED_CLIENTS unless the operator set it explicitly.
  const aclForReverse = loaded.sources.allowedClients !== "default";
  // Names and literals pointing inside are refused before any connection attempt (no
  // port-probing oracle); the forwarder still checks the address it connected to.
  const checkHost = config.forwardAllowPrivate === "all"
    ? undefined
    : createHostnameCheck(checkAddress);
  const auth = config.proxyAuthFile
    ? createProxyAuth({ file: config.proxyAuthFile, logger: logger("auth") })
    : undefined;
  if (auth) {
    stats.add(auth);
    closers.push(() => auth.close());
  }
  const guardAdmin = adminGuard({ token: config.adminToken });
  const hygiene = requestHygiene({
    maxHeaderCount: config.maxHeaderCount,
    maxHeaderSize: config.maxHeaderSize,
  });
  const limitBody = bodyLimit(config.maxBodySize);

  // ── ratelimit: per client, shared through Redis when REDIS_URL is set ──
  const rateRedis = config.redisUrl
    ? connectRedis({
      url: config.redisUrl,
      commandTimeoutMs: config.redisTimeout,
      name: "proxy-ratelimit",
      logger: (level, msg) => logger("redis")[level](msg),
    })
    : undefined;
  const rateLimiter = createRateLimiter({
    limit: config.rateLimitRequests,
    windowSec: config.rateLimitWindow,
    redis: rateRedis,
    prefix: `${config.cachePrefix}rl:`,
    keyBy: config.rateLimitBy,
    exempt: cidrs(config.rateLimitExempt),
    redisTimeoutMs: config.redisTimeout,
    logger: logger("ratelimit"),
  });
  stats.add(rateLimiter);
  closers.push(() => rateLimiter.close());
  if (rateRedis) closers.push(() => rateRedis.close());

  // ── upstream: forwarder and balancer ────────────────────────────────
  const forwarder = createForwarder({
    connectTimeoutMs: config.connectionTimeout,
    responseTimeoutMs: config.connectionTimeout,
    idleTimeoutMs: config.upstreamIdleTimeout,
    maxIdlePerOrigin: config.upstreamKeepalive,
    via,
  });
  // Forward requests are checked against the address actually connected to (DNS rebinding
  // cannot bypass it); backends are the operator's choice and are not.
  const forwardForwarder = createForwarder({
    connectTimeoutMs: config.connectionTimeout,
    responseTimeoutMs: config.connectionTimeout,
    idleTimeoutMs: config.upstreamIdleTimeout,
    maxIdlePerOrigin: config.upstreamKeepalive,
    via,
    checkAddress,
  });
  closers.push(() => forwardForwarder.close());
  closers.push(() => forwarder.close());
  stats.add({
    name: "upstream",
    snapshot: () => forwarder.snapshot(),
    metrics: () => forwarder.metrics(),
  });

  /** WebSocket upgrades (Deno.serve only): the original request, which Deno must upgrade itself. */
  const upgrades = new WeakMap<RequestContext, Request>();

  const forwardInfo = (req: Request, ctx: RequestContext, preserveHost: boolean) => ({
    clientIp: ctx.clientIp,
    forwardedFor: forwardedForValue(
      ctx.conn.remoteAddr,
      req.headers.get("x-forwarded-for"),
      trusted,
    ),
    proto: ctx.conn.secure ? "https" as const : "http" as const,
    host: req.headers.get("host") ?? "",
    preserveHost,
  });

  const balancer = createBalancer({
    backends: config.backends,
    strategy: config.lbStrategy,
    healthCheck: {
      path: config.healthCheckPath,
      intervalMs: config.healthCheckInterval,
      timeoutMs: config.healthCheckTimeout,
      rise: config.healthCheckRise,
      fall: config.healthCheckFall,
    },
    passive: { maxFails: config.maxFails, failTimeoutMs: config.failTimeout },
    retries: config.retryAttempts,
    retryBodyLimit: config.retryBodyLimit,
    send: (req: Request, target: URL, ctx: RequestContext) => {
      const upgrade = upgrades.get(ctx);
      return upgrade
        ? relayWebSocket(upgrade, target, config.connectionTimeout)
        : forwarder.forward(req, target, forwardInfo(req, ctx, true));
    },
    logger: logger("balancer"),
    connectionStats: () => forwarder.snapshot().origins,
  });
  closers.push(() => balancer.close());
  stats.add(balancer);

  /** Route phase: absolute-form to its destination, origin-form to the backends. */
  const noBackend = () =>
    Promise.resolve(text(
      502,
      "no backend configured: this port is a forward proxy (send absolute-form requests, " +
        "e.g. curl -x), or set BACKEND_SERVERS to reverse-proxy origin-form requests",
    ));
  const route: Handler = (req, ctx) => {
    if (ctx.target) return forwardForwarder.forward(req, ctx.target, forwardInfo(req, ctx, false));
    if (config.backends.length === 0) return noBackend();
    if (listener === "deno.serve" && isWebSocketUpgrade(req)) upgrades.set(ctx, req);
    return balancer.handler(req, ctx);
  };

  // cache: wraps compression which wraps route; Redis shared with the rate limiter when both use it
  const cacheRedis = config.cacheBackend === "auto" || config.cacheBackend === "redis"
    ? rateRedis ?? connectRedis({
      url: config.redisUrl || undefined,
      host: config.redisHost,
      port: config.redisPort,
      db: config.redisDb,
      commandTimeoutMs: config.redisTimeout,
      name: "proxy-cache",
      logger: (level, msg) => logger("redis")[level](msg),
    })
    : undefined;
  const cache = await createCache({
    backend: config.cacheBackend,
    memoryBytes: config.cacheMemorySize,
    maxObjectBytes: config.cacheMaxObjectSize,
    defaultTtlSec: config.cacheExpiration,
    prefix: config.cachePrefix,
    redis: cacheRedis,
    logger: (level, msg) => logger("cache")[level](msg),
  });
  if (cacheRedis && cacheRedis !== rateRedis) {
    if (cache.backendName === "redis") closers.push(() => cacheRedis.close());
    else await cacheRedis.close(); // auto fell back to memory: stop reconnecting
  }
  closers.push(() => cache.close());
  stats.add(cache);
  const purger = purgeRoutes(cache);
  // compression: wraps route; bodies above INLINE_MAX_BYTES (32 KiB) go to the worker pool
  const pool = createWorkerPool({
    size: config.threadPoolSize,
    queueSize: 1024,
    taskTimeoutMs: 30_000,
    entry: TASK_WORKER,
    logger: logger("workers"),
  });
  closers.push(() => pool.close());
  stats.add(pool);
  const compression = createCompression({
    enabled: config.enableCompression,
    encodings: config.compressionEncodings,
    minSize: config.compressionMinSize,
    pool,
  });
  stats.add(compression);
  const pipeline: Handler = cache.wrap(compression.wrap(route));

  // ── the Hono app ────────────────────────────────────────────────────
  const app = new Hono<ProxyEnv>();
  let sequence = 0;

  app.use(observe());

  function observe(): MiddlewareHandler<ProxyEnv> {
    return async (c, next) => {
      const req = c.req.raw;
      const ctx: RequestContext = {
        id: `${instance}-${(++sequence).toString(36)}`,
        conn: c.env,
        startedAt: performance.now(),
        clientIp: trusted.length === 0
          ? c.env.remoteAddr
          : clientIpFrom(c.env.remoteAddr, req.headers.get("x-forwarded-for"), trusted),
      };
      c.set("ctx", ctx);
      stats.begin(req.method);
      await next();
      const res = c.res;
      const ms = performance.now() - ctx.startedAt;
      stats.end(res.status, ms);
      const length = res.headers.get("content-length");
      if (length !== null) stats.bytesTransferred += Number(length);
      else if (res.body && req.method !== "HEAD") {
        c.res = countBody(res, (n) => stats.bytesTransferred += n);
      }
      if (accessLog) {
        accessLog.info(
          "{clientIp} {method} {target} {status} {bytes} {durationMs}ms {cache} {backend} {id}",
          {
            id: ctx.id,
            clientIp: ctx.clientIp,
            method: req.method,
            target: ctx.conn.form === "absolute" ? req.url : c.req.path,
            status: res.status,
            bytes: length ?? "-",
            durationMs: Math.round(ms * 1000) / 1000,
            cache: ctx.cacheStatus ?? "-",
            backend: ctx.backend ?? "-",
            userAgent: req.headers.get("user-agent") ?? "",
          },
        );
      }
    };
  }

  // ── own endpoints ───────────────────────────────────────────────────
  const own = new Hono<ProxyEnv>();
  own.get("/healthz", (c) =>
    c.json({
      status: "ok",
      mode,
      listener,
      version: VERSION,
      uptime_seconds: Math.floor((Date.now() - stats.startTime.getTime()) / 1000),
      backends: config.backends.length,
      cache: cache.status(),
    }));
  own.get("/proxy-stats", (c) => c.json(stats.snapshot()));
  own.get(
    "/metrics",
    () =>
      new Response(renderPrometheus(stats.metrics()), {
        headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
      }),
  );
  own.post("/proxy-reload", async () => {
    await proxy.reload();
    return text(200, "reloaded");
  });
  own.all("*", () => text(405, "method not allowed on this endpoint"));

  // security: header count/size and ambiguous framing (431/400) before anything else reads them
  app.use(hygiene);
  app.use((c, next) => {
    if (c.env.form !== "origin" || !OWN_PATHS.has(c.req.path)) return next();
    const serveOwn = async () => {
      c.res = await own.fetch(c.req.raw, c.env);
    };
    // /healthz stays open for load balancers; the rest needs loopback or ADMIN_TOKEN.
    if (c.req.path === "/healthz") return serveOwn();
    return guardAdmin(c, serveOwn);
  });

  // cache: PURGE <url> and POST /proxy-cache/purge, behind the admin guard
  app.use((c, next) => {
    const purge = c.req.method === "PURGE" ||
      (c.env.form === "origin" && c.req.path === "/proxy-cache/purge");
    if (!purge) return next();
    return guardAdmin(c, async () => {
      c.res = await purger.fetch(c.req.raw);
    });
  });

  // admission: in-flight limit and queue (after the own endpoints, so /metrics answers under load)
  const admission = createAdmission({
    maxConcurrency: config.maxConcurrency,
    queueSize: config.requestQueueSize,
    queueTimeoutMs: config.queueTimeout,
  });
  closers.push(() => admission.close());
  stats.add(admission);
  app.use(admission.middleware);
  // security: client ACL (and proxy auth) for forward proxying
  app.use((c, next) => {
    if (c.env.form === "origin" && !aclForReverse) return next();
    return acl.middleware(c, next);
  });
  if (auth) app.use(auth.middleware); // forward proxying only; strips Proxy-Authorization
  app.use(limitBody);
  // ratelimit:
  app.use(rateLimiter.middleware);
  // filter: lists parsed in the pool; verdicts are hash lookups on this thread
  const filter = await createFilter({
    categories: config.requestFilters,
    lists: config.filterLists,
    allow: config.filterAllow,
    pool,
    logger: logger("filter"),
  }).catch(async (err) => {
    // A missing list stops start-up: end the workers and connections opened so far.
    for (const close of closers.reverse()) await close();
    throw err;
  });
  closers.push(() => filter.close());
  stats.add(filter);
  app.use(filter.middleware);

  app.all("*", async (c) => {
    const ctx = c.get("ctx");
    if (c.env.form === "absolute") {
      let target: URL;
      try {
        target = new URL(c.req.url);
      } catch {
        return text(400, "bad request-target");
      }
      if (target.protocol !== "http:" && target.protocol !== "https:") {
        return text(
          400,
          `unsupported scheme ${target.protocol} (only http and https; use CONNECT for TLS)`,
        );
      }
      if (c.req.raw.headers.get("via")?.includes(via)) return text(508, "loop detected");
      const refused = await checkHost?.(target.hostname);
      if (refused) return text(403, `403 Forbidden: ${refused}`);
      ctx.target = target;
    }
    return await pipeline(c.req.raw, ctx);
  });

  app.onError((err, c) => {
    if (err instanceof UpstreamError) return text(err.status, `upstream error: ${err.message}`);
    const status = (err as { status?: number }).status;
    if (typeof status === "number" && status >= 400 && status < 600) {
      return text(status, (err as Error).message);
    }
    log.error("unexpected error on {id}: {error}", { id: c.get("ctx")?.id, error: String(err) });
    return text(500, "internal proxy error");
  });

  const proxy: Proxy = {
    fetch: (req, conn) => app.fetch(req, conn),
    checkAddress,
    async admitTunnel(req: TunnelRequest): Promise<Refusal | undefined> {
      if (!acl.isAllowedClient(req.clientIp)) {
        return Promise.resolve({
          status: 403,
          reason: `403 Forbidden: client ${req.clientIp} is not in ALLOWED_CLIENTS`,
        });
      }
      if (!config.connectPorts.includes(req.authority.port)) {
        return Promise.resolve({
          status: 403,
          reason: `CONNECT to port ${req.authority.port} is not allowed (CONNECT_PORTS: ${
            config.connectPorts.join(",")
          })`,
        });
      }
      // filter: the CONNECT target, checked before any DNS lookup, so a blocked host never
      // reaches the network
      const blocked = filter.check(req.authority.host);
      if (blocked) {
        return {
          status: 403,
          reason: `blocked by proxy filter: category=${blocked.category} rule=${blocked.rule}`,
          headers: { "X-Filter": xFilterValue(blocked) },
        };
      }
      const inside = await checkHost?.(req.authority.host);
      if (inside) return { status: 403, reason: `403 Forbidden: ${inside}` };
      let user: string | undefined;
      if (auth) {
        const h = req.headers["proxy-authorization"];
        user = await auth.verify(Array.isArray(h) ? h[0] : h);
        if (user === undefined) {
          return {
            status: 407,
            reason: `407 Proxy Authentication Required: ${
              h ? "wrong user name or password" : "credentials required"
            }`,
            headers: { "Proxy-Authenticate": 'Basic realm="proxy", charset="UTF-8"' },
          };
        }
      }
      const decision = await rateLimiter.decide({
        id: "tunnel",
        conn: { remoteAddr: req.clientIp, remotePort: 0, form: "authority", secure: false },
        startedAt: performance.now(),
        clientIp: req.clientIp,
        user,
      });
      if (!decision.allowed) {
        return {
          status: 429,
          reason:
            `429 Too Many Requests: rate limit of ${decision.limit} requests reached; retry later`,
          headers: rateLimitHeaders(decision),
        };
      }
      return undefined;
    },
    stats,
    mode,
    async reload() {
      try {
        auth?.reload();
      } catch (err) {
        // A broken users file must not stop the other reloads; the previous users stay.
        log.error("proxy users not reloaded, keeping the previous ones: {error}", {
          error: String(err),
        });
      }
      await filter.reload();
      log.info("reloaded");
    },
    async close() {
      for (const close of closers.reverse()) await close();
    },
  };
  return proxy;
}

/** Counts body bytes as they stream to the client (responses without Content-Length). */
function countBody(res: Response, add: (n: number) => void): Response {
  const counted = res.body!.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        add(chunk.byteLength);
        controller.enqueue(chunk);
      },
    }),
  );
  return new Response(counted, {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
  });
}
