/**
 * A consistent-hash ring: each backend owns many points ("virtual nodes") on
 * a 32-bit circle, and a key belongs to the first point at or after its hash.
 * Removing a backend (down or ejected) hands only its own keys to the next
 * points clockwise, so about 1/N of the keys move and every other key keeps
 * its backend.
 *
 * @module
 */

import { hash32 } from "./hash.ts";

/** Virtual nodes per weight unit (after dividing all weights by their GCD). */
export const VNODES_PER_WEIGHT = 160;
/** Upper bound on ring points, so weights like 997 and 1000 do not build a huge ring. */
export const MAX_RING_POINTS = 200_000;

export interface RingMember {
  /** Stable identity hashed into the point labels (the backend URL). */
  readonly id: string;
  readonly weight: number;
}

export class HashRing {
  readonly #points: Uint32Array;
  /** Member index owning each point, parallel to #points. */
  readonly #owners: Uint32Array;

  constructor(members: readonly RingMember[]) {
    const g = members.reduce((acc, m) => gcd(acc, m.weight), 0) || 1;
    const units = members.map((m) => m.weight / g);
    const total = units.reduce((a, b) => a + b, 0) * VNODES_PER_WEIGHT;
    const scale = total > MAX_RING_POINTS ? MAX_RING_POINTS / total : 1;
    const pairs: [number, number][] = [];
    members.forEach((m, owner) => {
      const count = Math.max(1, Math.round(units[owner] * VNODES_PER_WEIGHT * scale));
      for (let i = 0; i < count; i++) pairs.push([hash32(`${m.id}#${i}`), owner]);
    });
    // Ties (hash collisions) are broken by owner so the ring is deterministic.
    pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    this.#points = Uint32Array.from(pairs, (p) => p[0]);
    this.#owners = Uint32Array.from(pairs, (p) => p[1]);
  }

  get size(): number {
    return this.#points.length;
  }

  /**
   * The index of the member owning `key`, skipping members for which
   * `usable(index)` is false; -1 when the ring is empty or none is usable.
   * The caller should check that some member is usable first: with none the
   * walk visits every point.
   */
  lookup(key: string, usable: (owner: number) => boolean): number {
    const n = this.#points.length;
    if (n === 0) return -1;
    const h = hash32(key);
    let lo = 0, hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#points[mid] < h) lo = mid + 1;
      else hi = mid;
    }
    for (let step = 0; step < n; step++) {
      const owner = this.#owners[(lo + step) % n];
      if (usable(owner)) return owner;
    }
    return -1;
  }
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
