/**
 * Backend selection strategies. Each picks among the backends that are
 * available now and not yet tried for this request, so a retry lands on
 * another backend and a down or ejected one gets no traffic.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import { HashRing } from "./ring.ts";

export type Strategy =
  | "round-robin"
  | "weighted-round-robin"
  | "least-connections"
  | "ip-hash"
  | "url-hash";

export const STRATEGIES: readonly Strategy[] = [
  "round-robin",
  "weighted-round-robin",
  "least-connections",
  "ip-hash",
  "url-hash",
];

/** Picks a backend for a request; undefined when none is usable. */
export type Picker = (
  key: string,
  usable: (b: Backend) => boolean,
) => Backend | undefined;

export function createPicker(strategy: Strategy, backends: readonly Backend[]): Picker {
  switch (strategy) {
    case "round-robin":
      return roundRobin(backends);
    case "weighted-round-robin":
      return smoothWeighted(backends);
    case "least-connections":
      return leastConnections(backends);
    case "ip-hash":
    case "url-hash":
      return consistentHash(backends);
    default:
      throw new Error(`unknown balancing strategy "${strategy}"`);
  }
}

/** Each usable backend in turn, ignoring weights. */
function roundRobin(backends: readonly Backend[]): Picker {
  let next = 0;
  return (_key, usable) => {
    const n = backends.length;
    for (let i = 0; i < n; i++) {
      const b = backends[(next + i) % n];
      if (usable(b)) {
        next = (b.index + 1) % n;
        return b;
      }
    }
    return undefined;
  };
}

/**
 * nginx's smooth weighted round robin: every pick adds each candidate's
 * weight to its running weight, takes the largest, and subtracts the total
 * from the winner. Weights 5:1:1 give a b a c a a a … — interleaved rather
 * than five in a row — and the shares are exact over each cycle.
 */
function smoothWeighted(backends: readonly Backend[]): Picker {
  return (_key, usable) => {
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
  };
}

/**
 * Fewest in-flight requests per unit of weight. Ties rotate, so an idle pool
 * is still spread evenly rather than always starting with the first backend.
 */
function leastConnections(backends: readonly Backend[]): Picker {
  let start = 0;
  return (_key, usable) => {
    const n = backends.length;
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
  };
}

/** A consistent-hash ring over all configured backends; unusable ones are skipped clockwise. */
function consistentHash(backends: readonly Backend[]): Picker {
  const ring = new HashRing(backends.map((b) => ({ id: b.url.href, weight: b.weight })));
  return (key, usable) => {
    if (!backends.some(usable)) return undefined;
    const i = ring.lookup(key, (owner) => usable(backends[owner]));
    return i < 0 ? undefined : backends[i];
  };
}
