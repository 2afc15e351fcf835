/**
 * Composes the proxy: the phases of a request, in Pingora's order, and the
 * listeners' entry points. Every kind of request is driven from the one list
 * in src/pipeline/phases.ts:
 *
 *   hygiene → client ACL → proxy auth → body limit → rate limit → filter → target
 *   → cache (a fresh hit ends here) → admission → compression
 *   → route (absolute-form: the destination; origin-form: the balancer → forwarder)
 *
 * around which every request gets its context and, at the end, X-Request-Id,
 * stats and the access-log line (src/pipeline/entry.ts). Each section is built
 * by its module from the configuration; Hono serves only the admin surface.
 *
 * @module
 */
import { createAdmin, isAdminPath, monitorCheck } from "./admin/mod.ts";
import { cacheFromConfig } from "./cache/from_config.ts";
import { purgeRoutes } from "./cache/mod.ts";
import { workerPoolFromConfig } from "./compress/from_config.ts";
import { type LoadedConfig, SCHEMA, type SettingKey } from "./config/mod.ts";
import type { ConnInfo, HitFetch } from "./context/mod.ts";
import { upstreamFromConfig } from "./forward/from_config.ts";
import { accessLogger, logger, logStats } from "./log/mod.ts";
import type { Interceptor } from "./intercept/mod.ts";
import { entryPoints } from "./pipeline/entry.ts";
import { buildSections, type FixedParts, liveSources, needsRestart } from "./pipeline/sections.ts";
import { rateLimitRedis } from "./ratelimit/from_config.ts";
import { addressPolicyFromConfig } from "./security/from_config.ts";
import type { Refusal, TunnelRequest } from "./server/tunnel.ts";
import type { UpgradeFetch } from "./server/types.ts";
import { ProxyStats, StatsCluster, type StatsSource } from "./stats/mod.ts";
import { VERSION } from "./version.ts";
import { redisTopology } from "./redis/settings.ts";
import { prepare } from "./cache/entry.ts";
import { CacheReplicas, Fanout, type ThreadGroup } from "./threads/mod.ts";
import { compactHeap, compactWhenIdle, fixMmapThreshold } from "./heap/mod.ts";

/** Everything `serve` needs from the composed proxy. */
export interface Proxy {
  /** The app, for every listener. */
  fetch(req: Request, conn: ConnInfo): Response | Promise<Response>;
  /** `fetch` for a plain fresh cache hit, written by the listener without a Request or Response. */
  hit: HitFetch;
  /** Upgrade requests on a listener that hands out raw sockets (WebSocket to a backend). */
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
  /** SIGHUP / POST /proxy-reload: every setting that needs no new listener, at once, or none. */
  reload(): Promise<void>;
  close(): Promise<void>;
}

/** Which of the serving threads this proxy is (SERVE_THREADS > 1 runs one per thread). */
export interface ThreadInfo {
  thread: number;
  threads: number;
  /** Reads the configuration again for a reload (without it: lists and users only); may throw. */
  readConfig?: () => LoadedConfig;
  /** With several threads: the group they coordinate in (cache, limits, stats, reloads). */
  group?: ThreadGroup;
}

/**
 * How long a thread other than thread 0 waits for a reload it passed on: thread 0's own part
 * (URL lists take up to 15 s to fetch) and the other threads' (Fanout: 30 s at most).
 */
const RELOAD_ASK_MS = 120_000;

export async function createProxy(
  loaded: LoadedConfig,
  threadInfo: ThreadInfo = { thread: 0, threads: 1 },
): Promise<Proxy> {
  const { config, mode } = loaded;
  fixMmapThreshold(); // before the filter's buffers come and go (src/heap says why)
  // Every mode is served by the HTTP/1.1 listener of src/server/http1 (upgrades through
  // `upgrade`, never through `fetch`).
  const listener: string = "http1";
  const stats = new ProxyStats({ mode, listener });
  stats.add(logStats);
  const log = logger("app");
  const instance = crypto.randomUUID().slice(0, 8);
  const closers: (() => unknown)[] = [];
  /** Registers a part: its numbers in /proxy-stats and /metrics, its close at shutdown. */
  const own = <T extends { close(): unknown }>(part: T): T => {
    if (typeof (part as { metrics?: unknown }).metrics === "function") {
      stats.add(part as unknown as StatsSource);
    }
    closers.push(() => part.close());
    return part;
  };

  // ── TLS interception: first, so a missing CA stops start-up before anything opens ──
  // Imported only when on: its X.509 library is ~10 MiB of heap and code per serving thread.
  const interceptor = config.tlsIntercept === "on"
    ? await (await import("./intercept/mod.ts")).createInterceptor({
      caDir: config.tlsInterceptCaDir,
      bypass: config.tlsInterceptBypass,
      handshakeTimeoutMs: config.headerTimeout,
      log: (message) => logger("intercept").info(message),
      warn: (message) => logger("intercept").warn(message),
    })
    : undefined;
  if (interceptor) stats.add(interceptor);

  // ── what lives as long as the process: pools, cache, Redis, workers ──
  // FORWARD_ALLOW_PRIVATE needs a restart: the forward pool checks addresses with it.
  const checkAddress = addressPolicyFromConfig(config);
  const upstream = own(upstreamFromConfig(config, { via: `1.1 proxy-${instance}`, checkAddress }));
  const rateRedis = rateLimitRedis(config);
  const group = threadInfo.group;
  const heuristic = { mode: config.cacheHeuristic, maxSec: config.cacheExpiration };
  // Each thread's memory cache is a replica of one cache (src/threads/cache_replicas.ts).
  const cache = own(
    await cacheFromConfig(
      config,
      rateRedis,
      group && {
        count: group.threads,
        replicas: (memory) =>
          own(new CacheReplicas({ group, memory, prepare: (s) => prepare(s, heuristic) })),
      },
    ),
  );
  if (rateRedis) closers.push(() => rateRedis.close());
  // THREAD_POOL_SIZE is the process's: each serving thread keeps its share of the workers.
  const poolShare = Math.max(1, Math.ceil(config.threadPoolSize / threadInfo.threads));
  const pool = own(workerPoolFromConfig({ ...config, threadPoolSize: poolShare }));
  const fixed: FixedParts = {
    listener,
    upstream,
    cache,
    pool,
    stats,
    log,
    accessLog: accessLogger(),
    instance,
    rateRedis,
    threads: group,
    route: {},
    intercepting: interceptor !== undefined,
    onUpstreamVerificationFailed: interceptor && (() => interceptor.upstreamVerificationFailed()),
  };

  // ── what a reload rebuilds: the sections and the phase list over them ──
  let live = await buildSections(loaded, fixed).catch(async (err) => {
    // A missing list stops start-up: end the workers and connections opened so far.
    for (const close of closers.reverse()) await close();
    throw err;
  });
  fixed.route.current = live.route;
  closers.push(() => live.close());
  for (const source of liveSources(() => live)) stats.add(source);

  // ── the admin surface ───────────────────────────────────────────────
  // With several serving threads, any of them may be asked: it gathers every thread's numbers.
  const cluster = group ? new StatsCluster(stats, group) : undefined;
  if (cluster) closers.push(() => cluster.close());
  const admin = createAdmin({
    stats,
    cluster,
    health: () => ({
      mode,
      listener,
      version: VERSION,
      threads: threadInfo.threads,
      backends: live.loaded.config.backends.length,
      cache: cache.status(),
      redis: rateRedis || cache.backendName === "redis" ? redisTopology(config) : "none",
    }),
    purger: purgeRoutes(cache),
    guard: (c, next) => live.security.guardAdmin(c, next),
    reload: () => proxy.reload(),
    // The running unit's balancer: drains reach whichever one serves now.
    backends: config.backends.length > 0
      ? {
        snapshot: () => live.balancer.snapshot(),
        setDrained: (id, drained) => live.balancer.setDrained(id, drained),
      }
      : undefined,
    group,
  });
  closers.push(() => admin.close());
  // A reload asked of any thread (SIGHUP reaches thread 0, POST /proxy-reload any) runs on all.
  // Thread 0 runs every reload, itself first: the others then take the filter tables it has
  // just compiled (src/filter/share.ts) instead of compiling their own.
  const reloads = group && new Fanout<null>(group, "reload", () => reloadHere());
  if (reloads) closers.push(() => reloads.close());
  if (group?.thread === 0) closers.push(group.handle("reload", () => proxy.reload()));

  /** Applies a new configuration: a complete new unit of sections, or none and one log line. */
  async function reconfigure(next: LoadedConfig): Promise<void> {
    if (next.mode !== mode) {
      throw new Error(`the mode would change from ${mode} to ${next.mode}: restart to apply`);
    }
    const restart = needsRestart(live.loaded.config, next.config);
    const applied = { ...next, config: { ...next.config } };
    // Settings that need a restart keep their running values, so the new unit is coherent.
    for (const key of Object.keys(SCHEMA) as SettingKey[]) {
      if (restart.includes(SCHEMA[key].env)) {
        (applied.config as Record<string, unknown>)[key] = live.loaded.config[key];
      }
    }
    const previous = live;
    const built = await buildSections(applied, fixed, previous);
    fixed.route.current = built.route;
    live = built;
    await previous.close(built);
    if (built.security.auth && built.security === previous.security) built.security.auth.reload();
    if (built.filter === previous.filter) await built.filter.reload();
    if (restart.length > 0) {
      log.warn("reloaded; these settings need a restart and keep their running values: {keys}", {
        keys: restart.join(", "),
      });
    }
  }

  const proxy: Proxy = {
    ...entryPoints({
      live: () => live,
      admin,
      isAdminPath,
      isMonitor: monitorCheck(config.adminToken),
      forwardProxying: mode !== "reverse",
    }),
    checkAddress,
    intercept: interceptor ? interceptor.takeTunnel.bind(interceptor) : undefined,
    stats,
    mode,
    async reload() {
      if (reloads === undefined) return await reloadHere();
      if (group!.thread !== 0) return await group!.ask<void>("reload", null, RELOAD_ASK_MS);
      const failed = await reloads.all(null);
      if (failed.length > 0) {
        throw new Error(`reloaded here, but not on every serving thread: ${failed.join("; ")}`);
      }
    },
    async close() {
      for (const close of closers.reverse()) await close();
    },
  };

  /** This thread's part of a reload. */
  async function reloadHere(): Promise<void> {
    {
      if (threadInfo.readConfig !== undefined) {
        try {
          await reconfigure(threadInfo.readConfig());
        } catch (err) {
          // The caller logs this one line (SIGHUP) or answers it (POST /proxy-reload).
          throw new Error(
            `reload refused, the running configuration stays: ${(err as Error).message}`,
          );
        }
        compactHeap(); // the previous unit and the new lists' compile
        log.info("reloaded");
        return;
      }
      try {
        live.security.auth?.reload();
      } catch (err) {
        // A broken users file must not stop the other reloads; the previous users stay.
        log.error("proxy users not reloaded, keeping the previous ones: {error}", {
          error: String(err),
        });
      }
      await live.filter.reload();
      compactHeap();
      log.info("reloaded");
    }
  }
  // Start-up's garbage (module set-up, the filter's compile) goes now, a burst's once quiet.
  compactHeap();
  const compaction = compactWhenIdle(() => stats.requestsTotal + stats.tunnelsTotal);
  closers.push(() => compaction.close());
  return proxy;
}
