/**
 * Rate limiting: a sliding-window log per client in Redis (shared by every
 * instance) with an in-process fallback, exposed as the rate-limit phase.
 * @module
 */
export {
  createRateLimiter,
  DEFAULT_RATE_LIMIT_EXEMPT,
  DEFAULT_RATE_LIMIT_REQUESTS,
  DEFAULT_RATE_LIMIT_WINDOW_SEC,
  type KeyBy,
  type RateLimiter,
  type RateLimiterOptions,
  type RateLimitSnapshot,
  type RedisHandle,
} from "./limiter.ts";
export { type Decision, type DecisionStore, rateLimitHeaders } from "./decision.ts";
export { LocalSlidingWindow } from "./local.ts";
export { RedisSlidingWindow, SLIDING_WINDOW_LUA } from "./redis_store.ts";
