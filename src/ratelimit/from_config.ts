/**
 * The rate limiter as the configuration asks for it: per client, shared
 * through Redis when REDIS_URL is set, local otherwise. The Redis connection
 * is made apart (`rateLimitRedis`): it lives as long as the process (the
 * cache may share it), while a reload may replace the limiter.
 *
 * @module
 */
import type { Config } from "../config/mod.ts";
import { logger } from "../log/mod.ts";
import {
  connectRedis,
  redisConfigured,
  type RedisConnectOptions,
  redisConnectOptions,
  type RedisHandle,
} from "../redis/mod.ts";
import { parseCidrList } from "../security/mod.ts";
import { createRateLimiter, type RateLimiter } from "./limiter.ts";
import type { ThreadGroup } from "../threads/group.ts";

export interface RateLimitSection {
  limiter: RateLimiter;
  close(): Promise<void>;
}

/** One set of Redis options (single server, Sentinel or Cluster) feeds every connection. */
export function redisOptionsFromConfig(config: Config): RedisConnectOptions {
  return {
    ...redisConnectOptions(config),
    logger: (level: "info" | "warn" | "error", msg: string) => logger("redis")[level](msg),
  };
}

/** The connection the limiter decides in, when a Redis is configured (URL, Sentinel, Cluster). */
export function rateLimitRedis(config: Config): RedisHandle | undefined {
  return redisConfigured(config)
    ? connectRedis({ ...redisOptionsFromConfig(config), name: "proxy-ratelimit" })
    : undefined;
}

export function rateLimiterFromConfig(
  config: Config,
  redis?: RedisHandle,
  threads?: ThreadGroup,
): RateLimitSection {
  const limiter = createRateLimiter({
    limit: config.rateLimitRequests,
    windowSec: config.rateLimitWindow,
    redis,
    prefix: `${config.cachePrefix}rl:`,
    keyBy: config.rateLimitBy,
    exempt: parseCidrList(config.rateLimitExempt.map((c) => c.text)),
    redisTimeoutMs: config.redisTimeout,
    logger: logger("ratelimit"),
    threads,
  });
  return { limiter, close: async () => await limiter.close() };
}
