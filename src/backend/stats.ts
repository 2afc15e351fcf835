/**
 * Request counters of one test origin, read through `GET /__stats`.
 *
 * `paths` counts by concrete path without the query (`/bytes/1024`,
 * `/cache/60`), so a test can tell exactly which URL reached the origin;
 * `routes` counts by route pattern (`/bytes/:n`). Requests to `/__stats` and
 * `/__stats/reset` are not counted, so reading the counters does not change
 * them. After {@link MAX_DISTINCT_PATHS} distinct paths, further new paths
 * are counted under `"(other)"` so a load test with random URLs cannot grow
 * the map without bound.
 *
 * @module
 */

/** Cap on distinct keys in `paths`. */
export const MAX_DISTINCT_PATHS = 10_000;

/** What `GET /__stats` returns. */
export interface BackendStatsSnapshot {
  name: string;
  requests_total: number;
  /** Requests per concrete path (query removed). */
  paths: Record<string, number>;
  /** Requests per route pattern, e.g. `"/bytes/:n"`; unknown paths count as `"(not found)"`. */
  routes: Record<string, number>;
}

export class BackendStats {
  #total = 0;
  #paths = new Map<string, number>();
  #routes = new Map<string, number>();

  constructor(readonly name: string) {}

  record(path: string, route: string): void {
    this.#total++;
    const n = this.#paths.get(path);
    if (n !== undefined) this.#paths.set(path, n + 1);
    else if (this.#paths.size < MAX_DISTINCT_PATHS) this.#paths.set(path, 1);
    else this.#paths.set("(other)", (this.#paths.get("(other)") ?? 0) + 1);
    this.#routes.set(route, (this.#routes.get(route) ?? 0) + 1);
  }

  reset(): void {
    this.#total = 0;
    this.#paths.clear();
    this.#routes.clear();
  }

  snapshot(): BackendStatsSnapshot {
    return {
      name: this.name,
      requests_total: this.#total,
      paths: Object.fromEntries(this.#paths),
      routes: Object.fromEntries(this.#routes),
    };
  }
}
