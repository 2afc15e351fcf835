/**
 * One coarse timer for every connection's deadline: a sweep every
 * `tick` ms looks at each open connection, instead of a timer armed and
 * cleared per read on the hot path. A deadline fires up to one tick late.
 *
 * @module
 */

/** Something with deadlines the sweep checks. */
export interface Swept {
  /** Called every tick with `Date.now()`. */
  sweep(now: number): void;
}

export class Sweeper {
  readonly #items = new Set<Swept>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(readonly tickMs: number) {}

  add(item: Swept): void {
    this.#items.add(item);
    if (this.#timer === undefined) {
      const timer = setInterval(() => this.#sweep(), this.tickMs);
      // Deadlines alone never keep the process alive.
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
  }

  delete(item: Swept): void {
    this.#items.delete(item);
    if (this.#items.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  get size(): number {
    return this.#items.size;
  }

  #sweep(): void {
    const now = Date.now();
    for (const item of this.#items) {
      try {
        item.sweep(now);
      } catch { /* one connection's failure is its own */ }
    }
  }
}

/** A tick fine enough for the shortest timeout: a quarter of it, 50 ms to 1 s. */
export function tickFor(...timeoutsMs: number[]): number {
  const shortest = Math.min(...timeoutsMs.filter((t) => t > 0));
  return Math.max(50, Math.min(1000, Math.floor(shortest / 4)));
}
