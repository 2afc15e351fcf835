/**
 * The shape in which every module reports numbers for `/metrics`.
 * Rendering to Prometheus text happens in one place (src/stats/prometheus.ts).
 *
 * @module
 */

export type MetricType = "counter" | "gauge" | "summary" | "histogram";

export interface Sample {
  /** Label set; omitted for a metric without labels. */
  readonly labels?: Readonly<Record<string, string>>;
  readonly value: number;
  /** Suffix appended to the family name (e.g. "_sum", "_count", "_bucket"). */
  readonly suffix?: string;
}

export interface MetricFamily {
  /** Full name including the `proxy_` prefix, snake_case. Counters end in `_total`. */
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly samples: readonly Sample[];
}

/**
 * A module that reports statistics: a JSON section for `/proxy-stats`
 * and metric families for `/metrics`.
 */
export interface StatsSource {
  /** Key of this module's section in `/proxy-stats` (e.g. "cache", "backends"). */
  readonly name: string;
  /** JSON-serialisable snapshot. */
  snapshot(): unknown;
  /** Prometheus metric families. */
  metrics?(): MetricFamily[];
}

/** A counter family: one value, or labelled samples. */
export function counter(
  name: string,
  help: string,
  value: number | readonly Sample[],
): MetricFamily {
  return { name, help, type: "counter", samples: typeof value === "number" ? [{ value }] : value };
}

/** A gauge family with one value. */
export function gauge(name: string, help: string, value: number): MetricFamily {
  return { name, help, type: "gauge", samples: [{ value }] };
}
