/**
 * The cache as the configuration asks for it: CACHE_BACKEND over the memory
 * LRU and Redis (sharing the rate limiter's connection when both use it).
 *
 * @module
 */
import type { Config } from "../config/mod.ts";
import { logger } from "../log/mod.ts";
import { connectRedis, type RedisHandle } from "../redis/mod.ts";
import { redisOptionsFromConfig } from "../ratelimit/from_config.ts";
import { type Cache, type CacheOptions, createCache } from "./mod.ts";

/**
 * The cache; its `close` also ends a Redis connection of its own. With `threads`, the memory
 * store is this serving thread's replica (CACHE_MEMORY_SIZE is shared by all of them).
 */
export async function cacheFromConfig(
  config: Config,
  shared?: RedisHandle,
  threads?: { count: number; replicas: CacheOptions["replicas"] },
): Promise<Cache> {
  const wantsRedis = config.cacheBackend === "auto" || config.cacheBackend === "redis";
  const redis = wantsRedis
    ? shared ?? connectRedis({ ...redisOptionsFromConfig(config), name: "proxy-cache" })
    : undefined;
  const cache = await createCache({
    backend: config.cacheBackend,
    memoryBytes: Math.floor(config.cacheMemorySize / (threads?.count ?? 1)),
    maxObjectBytes: config.cacheMaxObjectSize,
    heuristic: { mode: config.cacheHeuristic, maxSec: config.cacheExpiration },
    prefix: config.cachePrefix,
    redis,
    logger: (level, msg) => logger("cache")[level](msg),
    replicas: threads?.replicas,
  });
  const own = redis !== undefined && redis !== shared ? redis : undefined;
  if (own === undefined) return cache;
  if (cache.backendName !== "redis") {
    await own.close(); // auto fell back to memory: stop reconnecting
    return cache;
  }
  const close = cache.close;
  return Object.assign(cache, {
    async close() {
      await close.call(cache);
      await own.close();
    },
  });
}
