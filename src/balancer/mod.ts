/**
 * The backend pool of the reverse proxy: strategies (round robin, smooth
 * weighted round robin, least connections, consistent hashing by client IP
 * or URL), active health checks, passive ejection with back-off, and retries
 * of failed attempts on another backend.
 *
 * ```ts
 * const balancer = createBalancer({
 *   backends: [{ url: new URL("http://10.0.0.1:8000"), weight: 3 }],
 *   strategy: "weighted-round-robin",
 *   healthCheck: { path: "/healthz", intervalMs: 5000, timeoutMs: 2000, rise: 2, fall: 3 },
 *   passive: { maxFails: 3, failTimeoutMs: 10_000 },
 *   retries: 2,
 *   retryBodyLimit: 64 * 1024,
 *   send: (req, target) => forwarder.forward(req, target, info),
 * });
 * const res = await balancer.handler(req, ctx);
 * await balancer.close();
 * ```
 *
 * @module
 */

export {
  type BackendSnapshot,
  type BackendSpec,
  type Balancer,
  type BalancerLogger,
  type BalancerOptions,
  type BalancerSnapshot,
  createBalancer,
  type SendFn,
} from "./balancer.ts";
export type { BackendState, PassiveOptions } from "./backend.ts";
export type { HealthCheckOptions } from "./health.ts";
export { type SelectionPolicy, STRATEGIES, type Strategy, STRATEGY_NAMES } from "./strategy.ts";
export { IDEMPOTENT_METHODS } from "./body.ts";
