/**
 * Sliding-window-log limiter in Redis: one atomic Lua script per decision
 * (sent once, then run by SHA via ioredis `defineCommand`), so any number of
 * proxy instances on one Redis enforce one limit. The script reads Redis's own
 * clock, so instances whose clocks disagree still agree on the window.
 * @module
 */
import type { Cluster, Redis } from "ioredis";
import type { Decision } from "./decision.ts";

/**
 * KEYS[1] = the client's sorted set; ARGV = window ms, limit, unique member.
 * Returns {allowed 0|1, remaining, ms until the oldest entry leaves the window}.
 */
export const SLIDING_WINDOW_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  count = count + 1
  allowed = 1
end
if count > 0 then redis.call('PEXPIRE', KEYS[1], window) end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = window
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {allowed, limit - count, reset}
`;

const COMMAND = "proxyRateLimitSlidingWindow";

type ScriptClient = (Redis | Cluster) & {
  [COMMAND](
    key: string,
    windowMs: number,
    limit: number,
    member: string,
  ): Promise<[number, number, number]>;
};

export interface RedisWindowOptions {
  readonly client: Redis | Cluster;
  readonly limit: number;
  readonly windowMs: number;
  /** Key prefix, e.g. "proxy:rl:". */
  readonly prefix: string;
}

export class RedisSlidingWindow {
  readonly #client: ScriptClient;
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #prefix: string;
  // Members of the sorted set must be unique across instances and requests.
  readonly #instance = crypto.randomUUID().slice(0, 8);
  #seq = 0;

  constructor(options: RedisWindowOptions) {
    const client = options.client as ScriptClient;
    if (typeof client[COMMAND] !== "function") {
      client.defineCommand(COMMAND, { numberOfKeys: 1, lua: SLIDING_WINDOW_LUA });
    }
    this.#client = client;
    this.#limit = options.limit;
    this.#windowMs = options.windowMs;
    this.#prefix = options.prefix;
  }

  /** Redis key for a client key. */
  keyFor(key: string): string {
    return `${this.#prefix}${key}`;
  }

  async check(key: string): Promise<Decision> {
    const member = `${this.#instance}:${(this.#seq = (this.#seq + 1) % Number.MAX_SAFE_INTEGER)}`;
    const [allowed, remaining, reset] = await this.#client[COMMAND](
      this.keyFor(key),
      this.#windowMs,
      this.#limit,
      member,
    );
    return {
      allowed: allowed === 1,
      limit: this.#limit,
      remaining: Math.max(0, remaining),
      resetMs: Math.max(0, reset),
      store: "redis",
    };
  }
}
