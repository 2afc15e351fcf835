/**
 * Backend selection strategies, as a registry (Caddy's selection policies):
 * each is a small factory over the pool whose `pick(backends, req, ctx,
 * usable)` chooses among the backends that are available now and not yet
 * tried for this request, so a retry lands on another backend and a down or
 * ejected one gets no traffic. A hash strategy derives its own key from the
 * request. LB_STRATEGY's accepted values and the `Strategy` type come from
 * {@linkcode STRATEGIES}; adding one here is all a new strategy takes.
 *
 * @module
 */

import type { RequestContext } from "../context/mod.ts";
import type { Backend } from "./backend.ts";
import { HashRing } from "./ring.ts";

/** Whether a backend may take this attempt (available, not tried yet). */
export type Usable = (b: Backend) => boolean;

/** A selection policy built for one pool. */
export interface SelectionPolicy {
  /** A backend for this request among the usable ones; undefined when none is. */
  pick(
    backends: readonly Backend[],
    req: Request,
    ctx: RequestContext,
    usable: Usable,
  ): Backend | undefined;
}

/** Every strategy by its LB_STRATEGY name. */
export const STRATEGIES = {
  "round-robin": roundRobin,
  "weighted-round-robin": smoothWeighted,
  "least-connections": leastConnections,
  /** The client's address (after TRUSTED_PROXIES) keeps a client on one backend. */
  "ip-hash": (backends: readonly Backend[]) =>
    consistentHash(backends, (_req, ctx) => ctx.clientIp),
  /** Path and query keep a URL on one backend (better cache locality behind the proxy). */
  "url-hash": (backends: readonly Backend[]) =>
    consistentHash(backends, (req) => pathAndQueryOf(req.url)),
} as const satisfies Record<
  string,
  (backends: readonly Backend[], turns?: () => number) => SelectionPolicy
>;

export type Strategy = keyof typeof STRATEGIES;

/** LB_STRATEGY's accepted values, in the registry's order. */
export const STRATEGY_NAMES = Object.keys(STRATEGIES) as readonly Strategy[];

/**
 * The policy `strategy` names, over `backends`; throws naming LB_STRATEGY for an unknown one.
 * `turns`, a counter the serving threads share, makes rotations rotate for the process.
 */
export function createPolicy(
  strategy: Strategy,
  backends: readonly Backend[],
  turns?: () => number,
): SelectionPolicy {
  const make = Object.hasOwn(STRATEGIES, strategy) ? STRATEGIES[strategy] : undefined;
  if (make === undefined) {
    throw new Error(
      `LB_STRATEGY: unknown strategy "${strategy}" (use ${STRATEGY_NAMES.join(", ")})`,
    );
  }
  return make(backends, turns);
}

/** "/path?query" of a serialised URL without parsing it again (hot path). */
export function pathAndQueryOf(url: string): string {
  const slash = url.indexOf("/", url.indexOf("//") + 2);
  if (slash < 0) return "/";
  const hash = url.indexOf("#", slash);
  return hash < 0 ? url.slice(slash) : url.slice(slash, hash);
}

/** Each usable backend in turn, ignoring weights. */
function roundRobin(_pool: readonly Backend[], turns?: () => number): SelectionPolicy {
  let next = 0;
  return {
    pick(backends, _req, _ctx, usable) {
      const n = backends.length;
      const start = turns === undefined ? next : turns() % n;
      for (let i = 0; i < n; i++) {
        const b = backends[(start + i) % n];
        if (usable(b)) {
          next = (b.index + 1) % n;
          return b;
        }
      }
      return undefined;
    },
  };
}

/**
 * nginx's smooth weighted round robin: every pick adds each candidate's
 * weight to its running weight, takes the largest, and subtracts the total
 * from the winner. Weights 5:1:1 give a b a c a a a … — interleaved rather
 * than five in a row — and the shares are exact over each cycle.
 */
function smoothWeighted(_pool: readonly Backend[], turns?: () => number): SelectionPolicy {
  if (turns !== undefined) return sharedSmoothWeighted(turns);
  return {
    pick(backends, _req, _ctx, usable) {
      let best: Backend | undefined;
      let total = 0;
      for (const b of backends) {
        if (!usable(b)) continue;
        b.currentWeight += b.weight;
        total += b.weight;
        if (!best || b.currentWeight > best.currentWeight) best = b;
      }
      if (best) best.currentWeight -= total;
      return best;
    },
  };
}

/** Longest smooth-WRR cycle kept as a schedule (the sum of the usable backends' weights). */
const MAX_SCHEDULE = 1 << 16;

/**
 * Smooth weighted round robin whose turns come from a counter every serving thread shares:
 * the cycle for the usable backends is computed once (the same interleaving as above) and
 * turn t takes its entry t mod the cycle's length, so the threads together follow one cycle.
 */
function sharedSmoothWeighted(turns: () => number): SelectionPolicy {
  let key = "";
  let schedule: number[] = [];
  return {
    pick(backends, _req, _ctx, usable) {
      const candidates = backends.filter(usable);
      if (candidates.length === 0) return undefined;
      const k = candidates.map((b) => `${b.index}:${b.weight}`).join(",");
      if (k !== key) {
        key = k;
        schedule = smoothCycle(candidates.map((b) => b.weight));
      }
      if (schedule.length === 0) return candidates[turns() % candidates.length];
      return candidates[schedule[turns() % schedule.length]];
    },
  };
}

/** One cycle of smooth WRR over `weights` (indexes into them); empty when it would be too long. */
function smoothCycle(weights: readonly number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  if (total <= 0 || total > MAX_SCHEDULE) return [];
  const current = weights.map(() => 0);
  const cycle: number[] = [];
  for (let t = 0; t < total; t++) {
    let best = 0;
    for (let i = 0; i < weights.length; i++) {
      current[i] += weights[i];
      if (current[i] > current[best]) best = i;
    }
    current[best] -= total;
    cycle.push(best);
  }
  return cycle;
}

/**
 * Fewest in-flight requests per unit of weight. Ties rotate, so an idle pool
 * is still spread evenly rather than always starting with the first backend.
 */
function leastConnections(_pool: readonly Backend[], turns?: () => number): SelectionPolicy {
  let start = 0;
  return {
    pick(backends, _req, _ctx, usable) {
      const n = backends.length;
      if (turns !== undefined && n > 0) start = turns() % n;
      let best: Backend | undefined;
      let bestLoad = Infinity;
      for (let i = 0; i < n; i++) {
        const b = backends[(start + i) % n];
        if (!usable(b)) continue;
        const load = b.inFlight / b.weight;
        if (load < bestLoad) {
          best = b;
          bestLoad = load;
        }
      }
      start = (start + 1) % Math.max(n, 1);
      return best;
    },
  };
}

/**
 * A consistent-hash ring over all configured backends, keyed by what `keyOf`
 * takes from the request; unusable ones are skipped clockwise.
 */
function consistentHash(
  pool: readonly Backend[],
  keyOf: (req: Request, ctx: RequestContext) => string,
): SelectionPolicy {
  const ring = new HashRing(pool.map((b) => ({ id: b.url.href, weight: b.weight })));
  return {
    pick(backends, req, ctx, usable) {
      if (!backends.some(usable)) return undefined;
      const i = ring.lookup(keyOf(req, ctx), (owner) => usable(backends[owner]));
      return i < 0 ? undefined : backends[i];
    },
  };
}
