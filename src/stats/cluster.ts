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
import { mergeFamilies, withLabels } from "./prometheus.ts";
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
/**
 * Module sections merged into one over the threads: numbers add up, except those every
 * thread reports the same (settings, and counts the threads already share through Atomics);
 * nested numbers (percentiles) take the largest; anything else is the first thread's.
 */
const MERGED_SECTIONS: Record<string, readonly string[]> = {
  cache: ["cache_hit_ratio"],
  rate_limit: ["limit", "window_sec"],
  admission: ["in_flight", "queued", "max_concurrency", "queue_size", "queue_timeout_ms"],
};

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

  /** Every thread's metric families, labelled `thread`. */
  async metrics(): Promise<MetricFamily[]> {
    const reports = await this.collect();
    return mergeFamilies(
      reports.flatMap((r) => withLabels(r.metrics, { thread: String(r.thread) })),
    );
  }

  close(): void {
    // The group closes its channels.
  }
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
  for (const [name, same] of Object.entries(MERGED_SECTIONS)) {
    const sections = reports.map((r) => r.doc[name]).filter(isRecord);
    if (sections.length > 0) doc[name] = mergeSection(sections, new Set(same));
  }
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

/** One section from every thread's (see MERGED_SECTIONS). */
function mergeSection(
  sections: Record<string, unknown>[],
  same: ReadonlySet<string>,
  nested = false,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, first] of Object.entries(sections[0])) {
    const values = sections.map((s) => s[k]);
    if (typeof first === "number" && !same.has(k)) {
      const nums = values.filter((v): v is number => typeof v === "number");
      out[k] = nested ? Math.max(...nums) : nums.reduce((a, b) => a + b, 0);
    } else if (isRecord(first)) {
      out[k] = mergeSection(values.filter(isRecord), same, true);
    } else {
      out[k] = first;
    }
  }
  return out;
}
