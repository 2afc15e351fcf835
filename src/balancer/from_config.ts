/**
 * The balancer as the configuration asks for it: BACKEND_SERVERS with their
 * weights, LB_STRATEGY, health checks, passive ejection and retries.
 *
 * @module
 */
import type { Config } from "../config/mod.ts";
import { logger } from "../log/mod.ts";
import { type Balancer, type ConnectionCounters, createBalancer, type SendFn } from "./balancer.ts";

export function balancerFromConfig(
  config: Config,
  o: {
    send: SendFn;
    caCerts?: string[];
    connectionStats?: () => Readonly<Record<string, ConnectionCounters>>;
    turns?: () => number;
  },
): Balancer {
  return createBalancer({
    backends: config.backends,
    strategy: config.lbStrategy,
    healthCheck: {
      path: config.healthCheckPath,
      intervalMs: config.healthCheckInterval,
      timeoutMs: config.healthCheckTimeout,
      rise: config.healthCheckRise,
      fall: config.healthCheckFall,
      caCerts: o.caCerts,
    },
    passive: { maxFails: config.maxFails, failTimeoutMs: config.failTimeout },
    retries: config.retryAttempts,
    retryBodyLimit: config.retryBodyLimit,
    send: o.send,
    logger: logger("balancer"),
    connectionStats: o.connectionStats,
    turns: o.turns,
  });
}
