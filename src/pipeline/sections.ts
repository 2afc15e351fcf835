/**
 * The sections of the proxy that a reload may rebuild — security, rate
 * limits, backends, admission, filter, compression — and the phase list over
 * them, built from one configuration as one unit. A reload builds the next
 * unit beside the running one (reusing every section whose settings did not
 * change, so health state, rate-limit windows and verified users survive),
 * and only a complete unit replaces the running one: a bad configuration
 * fails the build and the old unit stays in force.
 *
 * What a reload cannot change without a new listener, connection pools or
 * cache is named by {@linkcode needsRestart}.
 *
 * @module
 */
import { type Admission, admissionPhase, createAdmission } from "../admission/mod.ts";
import type { Balancer } from "../balancer/mod.ts";
import { balancerFromConfig } from "../balancer/from_config.ts";
import type { Cache } from "../cache/mod.ts";
import type { Compression } from "../compress/compression.ts";
import { compressionFromConfig } from "../compress/from_config.ts";
import { type Config, type LoadedConfig, SCHEMA, type SettingKey } from "../config/mod.ts";
import type { Filter } from "../filter/mod.ts";
import { filterFromConfig } from "../filter/from_config.ts";
import type { Upstream } from "../forward/from_config.ts";
import type { accessLogger, logger as makeLogger } from "../log/mod.ts";
import { rateLimiterFromConfig, type RateLimitSection } from "../ratelimit/from_config.ts";
import { type Security, securityFromConfig } from "../security/from_config.ts";
import type { RedisHandle } from "../redis/mod.ts";
import type { ProxyStats, StatsSource } from "../stats/mod.ts";
import type { WorkerPool } from "../workers/mod.ts";
import { sharedAdmission, sharedTurns, type ThreadGroup } from "../threads/mod.ts";
import { type Bookkeeping, createBookkeeping } from "./bookkeeping.ts";
import { buildPipeline, type Pipeline } from "./phases.ts";
import * as phase from "./request_filters.ts";
import { cachePhase, type RoutePhase, routePhase } from "./upstream_phases.ts";

/** The settings each rebuildable section is made from. */
const SECTION_SETTINGS = {
  security: ["allowedClients", "trustedProxies", "proxyAuthFile", "adminToken"],
  limits: ["rateLimitRequests", "rateLimitWindow", "rateLimitBy", "rateLimitExempt"],
  balancer: [
    "backends",
    "lbStrategy",
    "healthCheckPath",
    "healthCheckInterval",
    "healthCheckTimeout",
    "healthCheckRise",
    "healthCheckFall",
    "maxFails",
    "failTimeout",
    "retryAttempts",
    "retryBodyLimit",
  ],
  admission: ["maxConcurrency", "requestQueueSize", "queueTimeout"],
  filter: ["requestFilters", "filterLists", "filterAllow"],
  compression: ["enableCompression", "compressionEncodings", "compressionMinSize"],
  // Read by the phases and the bookkeeping, rebuilt on every reload.
  phases: ["maxHeaderCount", "maxHeaderSize", "maxBodySize", "connectPorts", "accessLog"],
} as const satisfies Record<string, readonly SettingKey[]>;

type SectionName = keyof typeof SECTION_SETTINGS;

/** Certificates are re-read from their files on every reload by the listener. */
const RELOADED_ELSEWHERE: readonly SettingKey[] = [];

const RELOADABLE = new Set<SettingKey>([
  ...Object.values(SECTION_SETTINGS).flat(),
  ...RELOADED_ELSEWHERE,
]);

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Settings whose new value a reload cannot apply (listener, pools, cache, Redis …), by env name. */
export function needsRestart(running: Config, next: Config): string[] {
  return (Object.keys(SCHEMA) as SettingKey[])
    .filter((k) => !RELOADABLE.has(k) && !same(running[k], next[k]))
    .map((k) => SCHEMA[k].env);
}

/** What stays for the life of the process: the parts a reload does not rebuild. */
export interface FixedParts {
  listener: string;
  upstream: Upstream;
  /** TLS interception is on: upgrades inside intercepted tunnels go to their origin. */
  intercepting?: boolean;
  /** An origin's certificate did not verify (counted by the interceptor). */
  onUpstreamVerificationFailed?: () => void;
  cache: Cache;
  pool: WorkerPool;
  stats: ProxyStats;
  log: ReturnType<typeof makeLogger>;
  accessLog: ReturnType<typeof accessLogger>;
  instance: string;
  /** The rate limiter's Redis connection (REDIS_URL), shared with the cache. */
  rateRedis?: RedisHandle;
  /** The serving threads (SERVE_THREADS > 1): rate limits and admission count over all. */
  threads?: ThreadGroup;
  /** The route the balancers send through (a reused balancer must reach the new route). */
  route: { current?: RoutePhase };
}

/** One configuration's sections and the phase list over them. */
export interface Sections {
  readonly loaded: LoadedConfig;
  readonly security: Security;
  readonly limits: RateLimitSection;
  readonly balancer: Balancer;
  readonly route: RoutePhase;
  readonly admission: Admission;
  readonly filter: Filter;
  readonly compression: Compression;
  readonly pipeline: Pipeline;
  readonly book: Bookkeeping;
  /** Closes what `successor` does not reuse (all of it without one). */
  close(successor?: Sections): Promise<void>;
}

/**
 * Builds the sections for `loaded`, reusing from `running` every section whose
 * settings are unchanged. Throws (after closing what it opened) when one
 * cannot be built: a missing list, a bad users file, an unknown strategy.
 */
export async function buildSections(
  loaded: LoadedConfig,
  fixed: FixedParts,
  running?: Sections,
): Promise<Sections> {
  const { config } = loaded;
  const keep = (s: SectionName) =>
    running !== undefined &&
    SECTION_SETTINGS[s].every((k) => same(running.loaded.config[k], config[k]));
  const opened: { close(): unknown }[] = [];
  const open = <T extends { close(): unknown }>(part: T): T => (opened.push(part), part);
  try {
    const security = keep("security") ? running!.security : securityFromConfig(loaded, fixed.pool);
    if (security !== running?.security && security.auth) open(security.auth);
    const limits = keep("limits")
      ? running!.limits
      : open(rateLimiterFromConfig(config, fixed.rateRedis, fixed.threads));
    const balancer = keep("balancer") ? running!.balancer : open(balancerFromConfig(config, {
      send: (req, target, ctx) => fixed.route.current!.send(req, target, ctx),
      caCerts: fixed.upstream.caCerts,
      connectionStats: () => fixed.upstream.reverse.snapshot().origins,
      turns: fixed.threads && sharedTurns(fixed.threads),
    }));
    const route = routePhase({
      config,
      intercepting: fixed.intercepting,
      checkHost: security.checkHost,
      upstream: fixed.upstream,
      trusted: security.trusted,
    });
    route.useBalancer(balancer);
    const admission = keep("admission") ? running!.admission : open(createAdmission({
      maxConcurrency: config.maxConcurrency,
      queueSize: config.requestQueueSize,
      queueTimeoutMs: config.queueTimeout,
      shared: fixed.threads && sharedAdmission(fixed.threads),
    }));
    const filter = keep("filter")
      ? running!.filter
      : open(await filterFromConfig(config, fixed.threads));
    const compression = keep("compression")
      ? running!.compression
      : compressionFromConfig(config, fixed.pool);
    const forwardProxying = loaded.mode !== "reverse";

    // The phases this configuration runs, by name (their order is PHASES').
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
        via: fixed.upstream.via,
        checkHost: security.checkHost,
        connectPorts: config.connectPorts,
      }),
      cache: cachePhase(fixed.cache),
      admission: { wrap: admissionPhase(admission) },
      compression: { wrap: compression.wrap },
      route,
    });
    const book = createBookkeeping({
      stats: fixed.stats,
      accessLog: config.accessLog ? fixed.accessLog : undefined,
      log: fixed.log,
      trusted: security.trusted,
      instance: fixed.instance,
      onUpstreamVerificationFailed: fixed.onUpstreamVerificationFailed,
    });
    const parts = { security, limits, balancer, admission, filter };
    return {
      loaded,
      ...parts,
      route,
      compression,
      pipeline,
      book,
      async close(successor) {
        const reused = new Set<unknown>(successor ? Object.values(successor) : []);
        if (security.auth && !reused.has(security)) await security.auth.close();
        for (const part of [limits, balancer, admission, filter]) {
          if (!reused.has(part)) await part.close();
        }
      },
    };
  } catch (err) {
    for (const part of opened.reverse()) await part.close();
    throw err;
  }
}

/**
 * Stats sections that always report the running unit's parts, so /proxy-stats
 * and /metrics follow a reload.
 */
export function liveSources(live: () => Sections): StatsSource[] {
  const parts: (() => StatsSource | undefined)[] = [
    () => live().security.auth,
    () => live().limits.limiter,
    () => live().balancer,
    () => live().admission,
    () => live().filter,
    () => live().compression,
  ];
  return parts.flatMap((current) => {
    const first = current();
    if (first === undefined) return [];
    return [{
      name: first.name,
      snapshot: () => current()?.snapshot() ?? {},
      metrics: () => current()?.metrics?.() ?? [],
    }];
  });
}
