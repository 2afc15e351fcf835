/**
 * Composes the proxy: the phases of a request in Pingora's order.
 *
 *   context (request id · client address) → cache-hit lane (fresh in-memory hits)
 *   → own endpoints (src/admin: /healthz, /proxy-stats, /metrics, reload, purge)
 *   → header hygiene → admission (in-flight limit + FIFO queue)
 *   → client ACL · proxy auth (forward proxying) → body limit → rate limit → filter
 *   → target check (absolute-form) → cache → compression
 *   → route (absolute-form: the destination; origin-form: the balancer)
 *     → forwarder (pooled keep-alive, timeouts, streaming)
 *   → stats · access log
 *
 * Every phase is a `Wrapper` over a `Handler` (src/context) owned by its module,
 * composed once with the phases this configuration needs; the cache can call the
 * inner chain for background revalidation. Hono serves only the admin surface.
 *
 * @module
 */
import { createAdmin, isAdminPath, monitorCheck } from "./admin/mod.ts";
import type { LoadedConfig } from "./config/mod.ts";
import type { ConnInfo, Handler, RequestContext, Wrapper } from "./context/mod.ts";
import {
  aclPhase,
  admissionPhase,
  compose,
  filterPhase,
  hostAndPath,
  tunnelAdmission,
} from "./pipeline/mod.ts";
import { createForwarder, UpstreamError } from "./forward/mod.ts";
import { createBalancer } from "./balancer/mod.ts";
import { createAdmission } from "./admission/mod.ts";
import { accessLogger, logger, logStats } from "./log/mod.ts";
import {
  adminGuard,
  bodyLimitPhase,
  clientIpFrom,
  createAddressPolicy,
  createClientAcl,
  createHostnameCheck,
  createProxyAuth,
  forwardedForValue,
  parseCidrList,
  requestHygienePhase,
} from "./security/mod.ts";
import { createRateLimiter } from "./ratelimit/mod.ts";
import { createCompression } from "./compress/mod.ts";
import { blockedResponse, createFilter } from "./filter/mod.ts";
import { createWorkerPool, TASK_WORKER } from "./workers/mod.ts";
import { connectRedis, redisConfigured, redisConnectOptions } from "./redis/mod.ts";
import { createCache, purgeRoutes } from "./cache/mod.ts";
import { mergeFamilies, ProxyStats, StatsCluster, withLabels } from "./stats/mod.ts";
import type { Refusal, TunnelRequest } from "./server/tunnel.ts";
import type { RawUpgrade, UpgradeFetch } from "./server/types.ts";
import { VERSION } from "./version.ts";
import { createInterceptor, type Interceptor } from "./intercept/mod.ts";

/** Everything `serve` needs from the composed proxy. */
export interface Proxy {
  /** The app, for every listener. */
  fetch(req: Request, conn: ConnInfo): Response | Promise<Response>;
  /** Upgrade requests on the node:http listener (WebSocket to a backend). */
  upgrade: UpgradeFetch;
  /** Checks a CONNECT before a tunnel opens. */
  admitTunnel(req: TunnelRequest): Promise<Refusal | undefined>;
  /** SSRF check on the address actually connected to, for tunnels. */
  checkAddress?(ip: string, host: string): string | undefined;
  /**
   * TLS interception (TLS_INTERCEPT=on), the CONNECT tunnel's hook after admission: false
   * leaves a bypassed host to the plain tunnel. Absent when interception is off.
   */
  intercept?: Interceptor["takeTunnel"];
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

/** The path of a request URL (no query), without the cost of `new URL`. */
function pathOf(url: string): string {
  const p = url.indexOf("/", url.indexOf("//") + 2);
  if (p < 0) return "/";
  const q = url.indexOf("?", p);
  return q < 0 ? url.slice(p) : url.slice(p, q);
}

/** Which of the serving threads this proxy is (SERVE_THREADS > 1 runs one per thread). */
export interface ThreadInfo {
  thread: number;
  threads: number;
}

export async function createProxy(
  loaded: LoadedConfig,
  threadInfo: ThreadInfo = { thread: 0, threads: 1 },
): Promise<Proxy> {
  const { config, mode } = loaded;
  // Every mode is served by the HTTP/1.1 listener of src/server/http1 (upgrades through
  // `upgrade`, never through `fetch`).
  const listener: string = "http1";
  const stats = new ProxyStats({ mode, listener });
  stats.add(logStats);
  const accessLog = config.accessLog ? accessLogger() : undefined;
  const log = logger("app");
  const instance = crypto.randomUUID().slice(0, 8);
  const via = `1.1 proxy-${instance}`;
  const closers: (() => unknown)[] = [];
  const cidrs = (list: { text: string }[]) => parseCidrList(list.map((c) => c.text));

  // ── TLS interception: first, so a missing CA stops start-up before anything opens ──
  const interceptor = config.tlsIntercept === "on"
    ? await createInterceptor({
      caDir: config.tlsInterceptCaDir,
      bypass: config.tlsInterceptBypass,
      handshakeTimeoutMs: config.headerTimeout,
      log: (message) => logger("intercept").info(message),
      warn: (message) => logger("intercept").warn(message),
    })
    : undefined;
  if (interceptor) stats.add(interceptor);

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
  const guardAdmin = adminGuard({ token: config.adminToken });

  // ── ratelimit: per client, shared through Redis when one is configured (URL, Sentinel, Cluster) ──
  const redisOptions = {
    ...redisConnectOptions(config),
    logger: (level: "info" | "warn" | "error", msg: string) => logger("redis")[level](msg),
  };
  const rateRedis = redisConfigured(config)
    ? connectRedis({ ...redisOptions, name: "proxy-ratelimit" })
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
  const caCerts = config.upstreamCaFile ? [readCaFile(config.upstreamCaFile)] : undefined;
  const upstream = {
    caCerts,
    connectTimeoutMs: config.connectionTimeout,
    responseTimeoutMs: config.connectionTimeout,
    idleTimeoutMs: config.upstreamIdleTimeout,
    maxIdlePerOrigin: config.upstreamKeepalive,
    via,
  };
  const forwarder = createForwarder(upstream);
  // Forward requests are checked against the address actually connected to (DNS rebinding
  // cannot bypass it); backends are the operator's choice and are not.
  const forwardForwarder = createForwarder({ ...upstream, checkAddress });
  closers.push(() => forwardForwarder.close());
  closers.push(() => forwarder.close());
  stats.add({
    name: "upstream",
    snapshot: () => ({ ...forwarder.snapshot(), forward_proxy: forwardForwarder.snapshot() }),
    metrics: () =>
      mergeFamilies([
        ...withLabels(forwarder.metrics(), { role: "reverse" }),
        ...withLabels(forwardForwarder.metrics(), { role: "forward" }),
      ]),
  });

  /** Upgrades: where to hand the raw upstream connection after a 101. */
  const rawUpgrades = new WeakMap<RequestContext, (u: RawUpgrade) => void>();

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
      caCerts,
    },
    passive: { maxFails: config.maxFails, failTimeoutMs: config.failTimeout },
    retries: config.retryAttempts,
    retryBodyLimit: config.retryBodyLimit,
    send: async (req: Request, target: URL, ctx: RequestContext) => {
      const raw = rawUpgrades.get(ctx);
      if (raw) {
        const up = await forwarder.upgrade(req, target, forwardInfo(req, ctx, true));
        // A refusal is an ordinary response (its upstream connection already closing).
        if (up instanceof Response) return up;
        raw(up);
        // The balancer only needs to know this attempt worked; the bytes go through the socket.
        return new Response(null, { status: 204 });
      }
      return await forwarder.forward(req, target, forwardInfo(req, ctx, true));
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
    return balancer.handler(req, ctx);
  };

  // cache: wraps compression which wraps route; Redis shared with the rate limiter when both use it
  const cacheRedis = config.cacheBackend === "auto" || config.cacheBackend === "redis"
    ? rateRedis ?? connectRedis({ ...redisOptions, name: "proxy-cache" })
    : undefined;
  const cache = await createCache({
    backend: config.cacheBackend,
    memoryBytes: config.cacheMemorySize,
    maxObjectBytes: config.cacheMaxObjectSize,
    heuristic: { mode: config.cacheHeuristic, maxSec: config.cacheExpiration },
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
  // proxy auth: bcrypt runs in the pool, so failed logins never stall the event loop
  const auth = config.proxyAuthFile
    ? createProxyAuth({ file: config.proxyAuthFile, logger: logger("auth"), pool })
    : undefined;
  if (auth) {
    stats.add(auth);
    closers.push(() => auth.close());
  }
  const compression = createCompression({
    enabled: config.enableCompression,
    encodings: config.compressionEncodings,
    minSize: config.compressionMinSize,
    pool,
  });
  stats.add(compression);
  const pipeline: Handler = cache.wrap(compression.wrap(route));

  // ── bookkeeping every request gets ─────────────────────────────────
  let sequence = 0;

  /** Request id and client address (after TRUSTED_PROXIES): the first thing every request gets. */
  function contextOf(req: Request, conn: ConnInfo): RequestContext {
    return {
      id: `${instance}-${(++sequence).toString(36)}`,
      conn,
      startedAt: performance.now(),
      clientIp: trusted.length === 0
        ? conn.remoteAddr
        : clientIpFrom(conn.remoteAddr, req.headers.get("x-forwarded-for"), trusted),
    };
  }

  /** Stats and the access-log line once the response is known; may wrap the body to count it. */
  function finish(req: Request, res: Response, ctx: RequestContext, path: () => string): Response {
    const ms = performance.now() - ctx.startedAt;
    stats.end(res.status, ms);
    const length = res.headers.get("content-length");
    if (length !== null) stats.bytesTransferred += Number(length);
    else if (res.body && req.method !== "HEAD") {
      res = countBody(res, (n) => stats.bytesTransferred += n);
    }
    if (accessLog) {
      const target = ctx.conn.form === "absolute" ? req.url : path();
      const durationMs = Math.round(ms * 1000) / 1000;
      const cache = ctx.cacheStatus ?? "-";
      const backend = ctx.backend ?? "-";
      // The line is built here, not as a template: LogTape would quote every string value.
      accessLog.info(
        `${ctx.clientIp} ${req.method} ${target} ${res.status} ${
          length ?? "-"
        } ${durationMs}ms ${cache} ${backend} ${ctx.id}`,
        {
          id: ctx.id,
          clientIp: ctx.clientIp,
          method: req.method,
          target,
          status: res.status,
          bytes: length === null ? null : Number(length),
          durationMs,
          cache,
          backend,
          userAgent: req.headers.get("user-agent") ?? "",
        },
      );
    }
    return res;
  }

  // ── the admin surface ───────────────────────────────────────────────
  // With several serving threads, any of them may be asked: it gathers every thread's numbers.
  const cluster = threadInfo.threads > 1
    ? new StatsCluster(stats, threadInfo.thread, threadInfo.threads)
    : undefined;
  if (cluster) closers.push(() => cluster.close());
  const admin = createAdmin({
    stats,
    cluster,
    health: () => ({
      mode,
      listener,
      version: VERSION,
      backends: config.backends.length,
      cache: cache.status(),
      redis: rateRedis || cache.backendName === "redis" ? redisOptions.topology : "none",
    }),
    purger,
    guard: guardAdmin,
    reload: () => proxy.reload(),
    backends: config.backends.length > 0 ? balancer : undefined,
    threads: threadInfo.threads,
  });
  closers.push(() => admin.close());
  const isMonitor = monitorCheck(config.adminToken);

  /** Requests for the proxy itself rather than for an origin. */
  const isAdminRequest = (req: Request, conn: ConnInfo, path: string): boolean =>
    req.method === "PURGE" ||
    (conn.form === "origin" && isAdminPath(path));

  // ── the request-filter phases, in Pingora's order ───────────────────
  const admission = createAdmission({
    maxConcurrency: config.maxConcurrency,
    queueSize: config.requestQueueSize,
    queueTimeoutMs: config.queueTimeout,
  });
  closers.push(() => admission.close());
  stats.add(admission);
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
  const filtering = config.requestFilters.length > 0 || config.filterLists.length > 0;

  /** An absolute-form request: validate the target, refuse loops and inside names. */
  const targetPhase: Wrapper = (next) => async (req, ctx) => {
    if (ctx.conn.form !== "absolute") return await next(req, ctx);
    let target: URL;
    try {
      target = new URL(req.url);
    } catch {
      return text(400, "bad request-target");
    }
    if (target.protocol !== "http:" && target.protocol !== "https:") {
      return text(
        400,
        `unsupported scheme ${target.protocol} (only http and https; use CONNECT for TLS)`,
      );
    }
    if (req.headers.get("via")?.includes(via)) return text(508, "loop detected");
    const refused = await checkHost?.(target.hostname);
    if (refused) return text(403, `403 Forbidden: ${refused}`);
    ctx.target = target;
    return await next(req, ctx);
  };

  // Phases that are off are left out: the chain is what this configuration needs.
  const proxied: Handler = compose(
    pipeline,
    requestHygienePhase({
      maxHeaderCount: config.maxHeaderCount,
      maxHeaderSize: config.maxHeaderSize,
    }),
    admissionPhase(admission),
    mode !== "reverse" || aclForReverse
      ? aclPhase(acl.isAllowedClient, (ctx) => ctx.conn.form !== "origin" || aclForReverse)
      : undefined,
    auth?.phase,
    bodyLimitPhase(config.maxBodySize),
    rateLimiter.phase,
    filtering ? filterPhase(filter) : undefined,
    targetPhase,
  );

  /** The answer to an error a phase threw. */
  function errorResponse(err: unknown, ctx: RequestContext): Response {
    if (err instanceof UpstreamError) {
      // An origin whose certificate does not verify is refused, never re-signed: counted here.
      if (interceptor && /TLS handshake.*certificate/i.test(err.message)) {
        interceptor.upstreamVerificationFailed();
      }
      return text(err.status, `upstream error: ${err.message}`);
    }
    const status = (err as { status?: number }).status;
    if (typeof status === "number" && status >= 400 && status < 600) {
      return text(status, (err as Error).message);
    }
    log.error("unexpected error on {id}: {error}", { id: ctx.id, error: String(err) });
    return text(500, "internal proxy error");
  }

  /** Every request the listener hands over. */
  async function handle(req: Request, ctx: RequestContext): Promise<Response> {
    const path = pathOf(req.url);
    const conn = ctx.conn;
    if (isAdminRequest(req, conn, path) && isMonitor(req, ctx)) {
      // The dashboard's own polling: answered, but not counted nor logged.
      return await admin.fetch(req, { ...conn, ctx });
    }
    stats.begin(req.method);
    let res: Response;
    try {
      res = isAdminRequest(req, conn, path)
        ? await admin.fetch(req, { ...conn, ctx })
        : await proxied(req, ctx);
    } catch (err) {
      res = errorResponse(err, ctx);
    }
    return finish(req, res, ctx, () => path);
  }

  // ── the cache-hit lane ──────────────────────────────────────────────
  // A fresh hit in memory costs a few microseconds; the phases around it would cost several
  // times that. So an origin-form GET/HEAD that the cache can answer from memory is answered
  // here, with the checks that apply to it (rate-limit exemption, filter), and everything
  // else takes the full chain. Admission is not needed for a hit: it holds no upstream
  // resource and finishes at once.
  const laneOpen = cache.backendName !== "off" && !auth && !aclForReverse;
  function hitLane(req: Request, ctx: RequestContext): Response | undefined {
    if (!laneOpen || ctx.conn.form !== "origin") return undefined;
    const path = pathOf(req.url);
    if (isAdminPath(path)) return undefined;
    if (config.rateLimitRequests > 0 && !rateLimiter.isExempt(ctx.clientIp)) return undefined;
    let res = cache.serveHit(req, ctx);
    if (res === undefined) return undefined;
    if (filtering) {
      const target = hostAndPath(req.url);
      const verdict = filter.check(target.host, target.path);
      if (verdict) res = blockedResponse(verdict);
    }
    stats.begin(req.method);
    return finish(req, res, ctx, () => path);
  }

  /** An Upgrade (WebSocket) request inside an intercepted tunnel, to the tunnel's origin. */
  async function interceptedUpgrade(
    req: Request,
    ctx: RequestContext,
  ): Promise<RawUpgrade | Response> {
    const target = new URL(req.url);
    const refused = await checkHost?.(target.hostname);
    if (refused) return text(403, `403 Forbidden: ${refused}`);
    const verdict = filtering ? filter.check(target.hostname, target.pathname) : undefined;
    if (verdict) return blockedResponse(verdict);
    try {
      return await forwardForwarder.upgrade(req, target, forwardInfo(req, ctx, false));
    } catch (err) {
      return errorResponse(err, ctx);
    }
  }

  const proxy: Proxy = {
    fetch(req, conn) {
      const ctx = contextOf(req, conn);
      return hitLane(req, ctx) ?? handle(req, ctx);
    },
    async upgrade(req, conn) {
      const ctx = contextOf(req, conn);
      stats.begin(req.method);
      let res: Response;
      let upgraded: RawUpgrade | undefined;
      if (interceptor && conn.form === "absolute" && conn.secure) {
        // wss:// inside an intercepted tunnel: the CONNECT was admitted (ACL, auth, rate limit);
        // the URL still meets the filter and the address checks, like any forwarded request.
        const outcome = await interceptedUpgrade(req, ctx);
        if (outcome instanceof Response) res = outcome;
        else {
          upgraded = outcome;
          res = new Response(null, { status: 204 }); // never sent: the listener pipes `upgraded`
        }
      } else if (conn.form !== "origin" || config.backends.length === 0) {
        res = text(501, "upgrades pass through to BACKEND_SERVERS only (use CONNECT for tunnels)");
      } else if (aclForReverse && !acl.isAllowedClient(ctx.clientIp)) {
        res = text(403, `403 Forbidden: client ${ctx.clientIp} is not in ALLOWED_CLIENTS`);
      } else {
        rawUpgrades.set(ctx, (u) => upgraded = u);
        res = await balancer.handler(req, ctx).catch((err) => errorResponse(err, ctx));
      }
      // A Response cannot carry 101: the stats count a switched protocol as a success.
      if (upgraded) {
        finish(req, new Response(null, { status: 200 }), ctx, () => pathOf(req.url));
        return upgraded;
      }
      // finish() may wrap the body to count it: the wrapped response is the one to send.
      return finish(req, res, ctx, () => pathOf(req.url));
    },
    checkAddress,
    intercept: interceptor ? interceptor.takeTunnel.bind(interceptor) : undefined,
    admitTunnel: tunnelAdmission({
      isAllowedClient: acl.isAllowedClient,
      connectPorts: config.connectPorts,
      filter,
      checkHost,
      auth,
      rateLimiter,
    }),
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

/** Reads UPSTREAM_CA_FILE; a missing or non-PEM file stops start-up with one line. */
function readCaFile(path: string): string {
  let pem: string;
  try {
    pem = Deno.readTextFileSync(path);
  } catch (err) {
    throw new Error(`UPSTREAM_CA_FILE: cannot read "${path}": ${(err as Error).message}`);
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new Error(`UPSTREAM_CA_FILE: "${path}" holds no PEM certificate`);
  }
  return pem;
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
