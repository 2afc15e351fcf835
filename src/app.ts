/**
 * Composes the proxy: the phases of a request, in Pingora's order, and the
 * listeners' entry points. Every kind of request is driven from the one list
 * in src/pipeline/phases.ts:
 *
 *   hygiene → client ACL → proxy auth → body limit → rate limit → filter → target
 *   → cache (a fresh hit ends here) → admission → compression
 *   → route (absolute-form: the destination; origin-form: the balancer → forwarder)
 *
 * around which every request gets its context (request id, client address)
 * and, at the end, X-Request-Id, stats and the access-log line. Each section
 * is built by its module from the configuration; Hono serves only the admin surface.
 *
 * @module
 */
import { ADMIN_PATHS, createAdmin } from "./admin/mod.ts";
import { admissionPhase, createAdmission } from "./admission/mod.ts";
import { balancerFromConfig } from "./balancer/from_config.ts";
import { cacheFromConfig } from "./cache/from_config.ts";
import { purgeRoutes } from "./cache/mod.ts";
import { compressionFromConfig, workerPoolFromConfig } from "./compress/from_config.ts";
import type { LoadedConfig } from "./config/mod.ts";
import type { ConnInfo } from "./context/mod.ts";
import { filterFromConfig } from "./filter/from_config.ts";
import { upstreamFromConfig } from "./forward/from_config.ts";
import { logger } from "./log/mod.ts";
import { createBookkeeping } from "./pipeline/bookkeeping.ts";
import { entryPoints } from "./pipeline/entry.ts";
import { buildPipeline } from "./pipeline/phases.ts";
import * as phase from "./pipeline/request_filters.ts";
import { cachePhase, routePhase } from "./pipeline/upstream_phases.ts";
import { rateLimiterFromConfig } from "./ratelimit/from_config.ts";
import { securityFromConfig } from "./security/from_config.ts";
import type { Refusal, TunnelRequest } from "./server/tunnel.ts";
import type { UpgradeFetch } from "./server/types.ts";
import { ProxyStats, StatsCluster, type StatsSource } from "./stats/mod.ts";
import { VERSION } from "./version.ts";

/** Everything `serve` needs from the composed proxy. */
export interface Proxy {
  /** The app, for every listener. */
  fetch(req: Request, conn: ConnInfo): Response | Promise<Response>;
  /** Upgrade requests on a listener that hands out raw sockets (WebSocket to a backend). */
  upgrade: UpgradeFetch;
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
  const listener = mode === "reverse" ? "deno.serve" : "node:http";
  const stats = new ProxyStats({ mode, listener });
  const log = logger("app");
  const instance = crypto.randomUUID().slice(0, 8);
  const closers: (() => unknown)[] = [];
  /** Registers a section: its numbers in /proxy-stats and /metrics, its close at shutdown. */
  const own = <T extends { close(): unknown }>(part: T): T => {
    if (typeof (part as { metrics?: unknown }).metrics === "function") {
      stats.add(part as unknown as StatsSource);
    }
    closers.push(() => part.close());
    return part;
  };

  // ── the sections, each built by its module ──────────────────────────
  const security = securityFromConfig(loaded);
  if (security.auth) own(security.auth);
  const limits = own(rateLimiterFromConfig(config));
  stats.add(limits.limiter);
  const upstream = own(upstreamFromConfig(config, {
    via: `1.1 proxy-${instance}`,
    checkAddress: security.checkAddress,
  }));
  const route = routePhase({ config, listener, upstream, trusted: security.trusted });
  const balancer = own(balancerFromConfig(config, {
    send: route.send,
    caCerts: upstream.caCerts,
    connectionStats: () => upstream.reverse.snapshot().origins,
  }));
  route.useBalancer(balancer);
  const cache = own(await cacheFromConfig(config, limits.redis));
  const pool = own(workerPoolFromConfig(config));
  const compression = compressionFromConfig(config, pool);
  stats.add(compression);
  const admission = own(createAdmission({
    maxConcurrency: config.maxConcurrency,
    queueSize: config.requestQueueSize,
    queueTimeoutMs: config.queueTimeout,
  }));
  const filter = own(
    await filterFromConfig(config, pool).catch(async (err) => {
      // A missing list stops start-up: end the workers and connections opened so far.
      for (const close of closers.reverse()) await close();
      throw err;
    }),
  );
  const forwardProxying = mode !== "reverse";

  // ── the phases this configuration runs, by name (their order is PHASES') ──
  const pipeline = buildPipeline({
    hygiene: phase.hygiene({
      maxHeaderCount: config.maxHeaderCount,
      maxHeaderSize: config.maxHeaderSize,
    }),
    "client-acl": forwardProxying || security.aclForReverse
      ? phase.clientAcl(security.acl.isAllowedClient, security.aclForReverse)
      : undefined,
    auth: security.auth && phase.auth(security.auth),
    "body-limit": phase.bodyLimit(config.maxBodySize),
    "rate-limit": phase.rateLimit(limits.limiter, config.rateLimitRequests > 0),
    filter: config.requestFilters.length > 0 || config.filterLists.length > 0
      ? phase.filter(filter)
      : undefined,
    target: phase.target({
      via: upstream.via,
      checkHost: security.checkHost,
      connectPorts: config.connectPorts,
    }),
    cache: cachePhase(cache),
    admission: { wrap: admissionPhase(admission) },
    compression: { wrap: compression.wrap },
    route,
  });

  const book = createBookkeeping({
    stats,
    accessLog: config.accessLog ? logger("access") : undefined,
    log,
    trusted: security.trusted,
    instance,
  });

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
    }),
    purger: purgeRoutes(cache),
    guard: security.guardAdmin,
    reload: () => proxy.reload(),
  });

  const proxy: Proxy = {
    ...entryPoints({ pipeline, book, admin, adminPaths: ADMIN_PATHS, forwardProxying, listener }),
    checkAddress: security.checkAddress,
    stats,
    mode,
    async reload() {
      try {
        security.auth?.reload();
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
