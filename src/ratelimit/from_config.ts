/**
 * The rate limiter as the configuration asks for it: per client, shared
 * through Redis when REDIS_URL is set, local otherwise.
 *
 * @module
 */
import type { Config } from "../config/mod.ts";
import { logger } from "../log/mod.ts";
import { connectRedis, type RedisHandle } from "../redis/mod.ts";
import { parseCidrList } from "../security/mod.ts";
import { createRateLimiter, type RateLimiter } from "./limiter.ts";

export interface RateLimitSection {
  limiter: RateLimiter;
  /** The Redis connection the limiter uses (the cache may share it), when REDIS_URL is set. */
  redis?: RedisHandle;
  close(): Promise<void>;
}

export function rateLimiterFromConfig(config: Config): RateLimitSection {
  const redis = config.redisUrl
    ? connectRedis({
      url: config.redisUrl,
      commandTimeoutMs: config.redisTimeout,
      name: "proxy-ratelimit",
      logger: (level, msg) => logger("redis")[level](msg),
    })
    : undefined;
  const limiter = createRateLimiter({
    limit: config.rateLimitRequests,
    windowSec: config.rateLimitWindow,
    redis,
    prefix: `${config.cachePrefix}rl:`,
    keyBy: config.rateLimitBy,
    exempt: parseCidrList(config.rateLimitExempt.map((c) => c.text)),
    redisTimeoutMs: config.redisTimeout,
    logger: logger("ratelimit"),
  });
  return {
    limiter,
    redis,
    async close() {
      await limiter.close();
      await redis?.close();
    },
  };
}
