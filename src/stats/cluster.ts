/**
 * Statistics of a proxy that serves from several threads (SERVE_THREADS):
 * each thread keeps its own counters; the one asked for `/proxy-stats` or
 * `/metrics` collects every thread's report over a BroadcastChannel and
 * merges them. Counters add up exactly; latency percentiles come from the
 * merged histograms; each module's section is listed per thread.
 *
 * @module
 */
import { Histogram } from "./histogram.ts";
import type { MetricFamily } from "./metric.ts";
import type { Sample } from "./metric.ts";
import type { ProxyStats, ThreadReport } from "./proxy_stats.ts";
import type { ThreadGroup } from "../threads/group.ts";

type Message =
  | { kind: "ask"; id: string }
  | { kind: "answer"; id: string; report: ThreadReport };

/** Top-level counters that add up across threads. */
const SUMMED = [
  "requests_total",
  "requests_success",
  "requests_error",
  "bytes_transferred",
  "cache_hits",
  "cache_misses",
  "active_connections",
  "in_flight_requests",
  "client_connections",
  "client_connections_rejected",
  "header_timeouts",
  "body_timeouts",
  "rate_limited_requests",
  "open_tunnels",
  "open_websockets",
];
/** Top-level objects whose numeric fields add up. */
const SUMMED_OBJECTS = ["request_methods", "status_codes", "tunnels", "websockets"];
/** Where threads disagree on a word, the one that says something is wrong. */
const WORST: Record<string, readonly string[]> = {
  store: ["local", "redis"],
  status: ["degraded", "ok", "off"],
};

/**
 * Every module section (cache, rate_limit, admission, filter, compression, workers, upstream,
 * log…) is merged into one over the threads: numbers add up, except those every thread
 * reports the same — settings, list sizes, counts the threads share through Atomics (listed
 * here per section) — and ratios, durations and percentiles (matched by name), which take the
 * largest thread's; words and lists are the first thread's (see WORST). `backends` has its own
 * merge (mergeBackends).
 */
const SAME_IN_EVERY_THREAD: Record<string, readonly string[]> = {
  rate_limit: ["limit", "window_sec"],
  admission: ["in_flight", "queued", "max_concurrency", "queue_size", "queue_timeout_ms"],
  filter: ["rules", "allow_rules", "ignored_lines", "reloads", "errors"],
};
const LARGEST = /ratio$|_ms$|^latency|^wait|^p\d+$|^max$/;

export class StatsCluster {
  readonly #stats: ProxyStats;
  readonly #thread: number;
  readonly #threads: number;
  readonly #channel: BroadcastChannel;
  readonly #waiting = new Map<string, (r: ThreadReport) => void>();

  constructor(stats: ProxyStats, group: ThreadGroup) {
    const thread = group.thread;
    this.#stats = stats;
    this.#thread = thread;
    this.#threads = group.threads;
    this.#channel = group.channel("stats");
    this.#channel.onmessage = (e: MessageEvent<Message>) => {
      const m = e.data;
      if (m.kind === "ask") {
        this.#channel.postMessage({ kind: "answer", id: m.id, report: stats.report(thread) });
      } else {
        this.#waiting.get(m.id)?.(m.report);
      }
    };
  }

  /** Every thread's report (this one's first); threads that do not answer in time are left out. */
  async collect(timeoutMs = 500): Promise<ThreadReport[]> {
    const reports = [this.#stats.report(this.#thread)];
    const id = crypto.randomUUID();
    const others = this.#threads - 1;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#waiting.set(id, (r) => {
        reports.push(r);
        if (reports.length > others) {
          clearTimeout(timer);
          resolve();
        }
      });
      this.#channel.postMessage({ kind: "ask", id });
    });
    this.#waiting.delete(id);
    return reports.sort((a, b) => a.thread - b.thread);
  }

  /** The merged `/proxy-stats` document. */
  async snapshot(): Promise<Record<string, unknown>> {
    return mergeReports(await this.collect());
  }

  /** The metric families of the process: every thread's samples combined (see {@linkcode sumFamilies}). */
  async metrics(): Promise<MetricFamily[]> {
    return sumFamilies((await this.collect()).map((r) => r.metrics));
  }

  close(): void {
    // The group closes its channels.
  }
}

/**
 * Gauges every thread reports with the same process-wide value (counted through Atomics, or
 * settings and lists every thread loads): the value once, not once per thread.
 */
const SHARED_GAUGES = new Set([
  "proxy_admission_in_flight",
  "proxy_admission_queued",
  "proxy_admission_max_concurrency",
  "proxy_admission_queue_size",
  "proxy_filter_rules",
  "proxy_filter_list_errors",
  "proxy_uptime_seconds",
]);
/** 1-or-0 states: down on any thread is down for the process. */
const STATE_GAUGES = new Set([
  "proxy_backend_up",
  "proxy_cache_up",
  "proxy_rate_limit_store_redis",
]);

/**
 * One set of metric families from every thread's, as one proxy would report them: samples of
 * the same name, suffix and labels add up (counters, gauges, histogram buckets, summary sums
 * and counts), except process-wide gauges and summary quantiles (the largest thread's).
 */
export function sumFamilies(threads: MetricFamily[][]): MetricFamily[] {
  const out = new Map<string, { family: MetricFamily; samples: Map<string, Sample> }>();
  for (const families of threads) {
    for (const f of families) {
      let merged = out.get(f.name);
      if (merged === undefined) {
        merged = { family: f, samples: new Map() };
        out.set(f.name, merged);
      }
      const largest = SHARED_GAUGES.has(f.name);
      const smallest = STATE_GAUGES.has(f.name);
      for (const s of f.samples) {
        const key = `${s.suffix ?? ""}${JSON.stringify(s.labels ?? {})}`;
        const seen = merged.samples.get(key);
        const quantile = f.type === "summary" && s.labels?.quantile !== undefined;
        merged.samples.set(
          key,
          seen === undefined ? s : {
            ...s,
            value: smallest
              ? Math.min(seen.value, s.value)
              : largest || quantile
              ? Math.max(seen.value, s.value)
              : seen.value + s.value,
          },
        );
      }
    }
  }
  return [...out.values()].map(({ family, samples }) => ({
    ...family,
    samples: [...samples.values()],
  }));
}

/** One `/proxy-stats` document from every thread's report. */
export function mergeReports(reports: ThreadReport[]): Record<string, unknown> {
  const first = reports[0].doc;
  const core = new Set([...SUMMED, ...SUMMED_OBJECTS]);
  const doc: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(first)) {
    if (typeof v !== "object" || v === null || core.has(k)) doc[k] = v;
  }
  for (const key of SUMMED) {
    doc[key] = reports.reduce((n, r) => n + Number(r.doc[key] ?? 0), 0);
  }
  for (const key of SUMMED_OBJECTS) {
    const sum: Record<string, number> = {};
    for (const r of reports) {
      for (const [k, v] of Object.entries((r.doc[key] ?? {}) as Record<string, number>)) {
        sum[k] = (sum[k] ?? 0) + Number(v);
      }
    }
    doc[key] = sum;
  }
  const hits = Number(doc.cache_hits);
  const misses = Number(doc.cache_misses);
  doc.cache_hit_ratio = hits + misses === 0
    ? 0
    : Math.round((hits / (hits + misses)) * 10000) / 10000;
  const latency = new Histogram();
  const recent = new Histogram();
  for (const r of reports) {
    latency.merge(Histogram.fromState(r.latency));
    recent.merge(Histogram.fromState(r.recent));
  }
  doc.latency_ms = latency.summary();
  doc.latency_recent_ms = recent.summary();
  for (const [name, value] of Object.entries(first)) {
    if (!isRecord(value) || core.has(name) || name.startsWith("latency") || name === "backends") {
      continue;
    }
    const sections = reports.map((r) => r.doc[name]).filter(isRecord);
    doc[name] = mergeSection(sections, new Set(SAME_IN_EVERY_THREAD[name] ?? []));
  }
  const backends = mergeBackends(reports.map((r) => r.doc.backends).filter(isRecord));
  if (backends) doc.backends = backends;
  const cache = doc.cache as Record<string, number> | undefined;
  if (cache && typeof cache.cache_hits === "number") {
    const all = cache.cache_hits + cache.cache_misses;
    cache.cache_hit_ratio = all === 0 ? 0 : cache.cache_hits / all;
  }
  doc.serve_threads = reports.length;
  // Module sections (cache, backends, admission…) belong to one thread each.
  doc.threads = reports.map((r) => {
    const sections: Record<string, unknown> = { thread: r.thread };
    for (const [k, v] of Object.entries(r.doc)) {
      if (typeof v === "object" && v !== null && !core.has(k) && !k.startsWith("latency")) {
        sections[k] = v;
      }
    }
    sections.requests_total = r.doc.requests_total;
    return sections;
  });
  return doc;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** One section from every thread's (see SAME_IN_EVERY_THREAD); `largest` for all numbers. */
function mergeSection(
  sections: Record<string, unknown>[],
  same: ReadonlySet<string>,
  largest = false,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  // Every thread's keys: a category blocked, a codec used only on another thread counts too.
  const keys = new Set(sections.flatMap((s) => Object.keys(s)));
  for (const k of keys) {
    const values = sections.map((s) => s[k]).filter((v) => v !== undefined);
    const first = values[0];
    const max = largest || same.has(k) || LARGEST.test(k);
    if (typeof first === "number") {
      const nums = values.filter((v): v is number => typeof v === "number");
      out[k] = max ? Math.max(...nums) : nums.reduce((a, b) => a + b, 0);
    } else if (isRecord(first)) {
      out[k] = mergeSection(values.filter(isRecord), new Set(), max);
    } else if (typeof first === "string" && WORST[k]) {
      const order = WORST[k];
      const rank = (v: unknown) => {
        const i = order.indexOf(v as string);
        return i < 0 ? order.length : i;
      };
      out[k] = values.reduce((a, b) => rank(b) < rank(a) ? b : a, first);
    } else {
      out[k] = first;
    }
  }
  return out;
}

/**
 * The balancer section: every thread balances over the same backends in the same order, so
 * thread 0's view with the request counts of all threads added (health as thread 0 sees it).
 */
export function mergeBackends(
  all: (Record<string, unknown> | undefined)[],
): Record<string, unknown> | undefined {
  const sections = all.filter(isRecord);
  if (sections.length === 0) return undefined;
  const out = structuredClone(sections[0]);
  for (const k of ["retries", "unavailable", "failed"]) {
    if (typeof out[k] === "number") {
      out[k] = sections.reduce((n, s) => n + Number(s[k] ?? 0), 0);
    }
  }
  const list = out.backends;
  if (!Array.isArray(list)) return out;
  list.forEach((b: Record<string, unknown>, i: number) => {
    // Taken out (ejected, down, drained) on any thread: shown as that thread sees it.
    const out = sections
      .map((s) => (s.backends as Record<string, unknown>[] | undefined)?.[i])
      .find((o) => o !== undefined && o.url === b.url && o.state !== "up");
    if (out !== undefined) {
      for (const k of ["state", "ejected_until", "consecutive_failures", "health"]) b[k] = out[k];
    }
    for (const k of ["requests", "errors", "in_flight", "ejections"]) {
      if (typeof b[k] !== "number") continue;
      b[k] = sections.reduce((n, s) => {
        const other = (s.backends as Record<string, unknown>[] | undefined)?.[i];
        return n + Number(other !== undefined && other.url === b.url ? other[k] ?? 0 : 0);
      }, 0);
    }
  });
  return out;
}
