/**
 * The load test report: its JSON shape and its text rendering.
 *
 * @module
 */
import type { LatencySummary } from "../stats/histogram.ts";

/** One second of the run, for charts. */
export interface TimelinePoint {
  /** Seconds since the start (0 = the first second). */
  second: number;
  /** Responses completed in this second. */
  requests: number;
  errors: number;
  /** Responses per second over this second (partial last second scaled). */
  rps: number;
  p50_ms: number;
  p99_ms: number;
}

/** Everything a run measured. Field names are snake_case because they are printed as JSON. */
export interface Report {
  url: string;
  method: string;
  proxy: string | null;
  mode: "requests" | "duration";
  concurrency: number;
  /** Target rate (requests/s) when --rate was given. */
  rate: number | null;
  started_at: string;
  /** Wall-clock seconds the run took. */
  duration_s: number;
  /** The run was stopped early (signal). */
  aborted: boolean;
  /** Responses received (any status). */
  requests: number;
  /** Requests that got no response. */
  errors_total: number;
  /** Responses per second. */
  rps: number;
  /** Latency in milliseconds (from the intended send time when rate is set). */
  latency_ms: LatencySummary;
  /** Responses by status code. */
  status: Record<string, number>;
  /** Failed requests by kind (connect, proxy, tls, timeout, read, write, parse). */
  errors: Record<string, number>;
  /** First message seen for each error kind. */
  error_samples: Record<string, string>;
  bytes_received: number;
  bytes_sent: number;
  /** Received bytes per second. */
  throughput_bytes_per_s: number;
  /** A rate limit shaped the results (429s, or RateLimit-Remaining: 0). */
  rate_limited: boolean;
  rate_limited_responses: number;
  /**
   * CPU the load generator's own process used during the run (Deno's
   * process CPU usage: user and system seconds) and as a share of one core
   * over the run's duration. Near 100 % (one core: the tool runs its
   * connections on one thread) the numbers show the load generator's limit,
   * not the target's.
   */
  loadgen_cpu: LoadgenCpu;
  /** Human-readable warnings (rate limit, errors, missed rate, a saturated load generator). */
  warnings: string[];
  timeline: TimelinePoint[];
  /** Latency by percentile (p from 0 to 100), for a percentile chart. */
  latency_percentiles: { p: number; ms: number }[];
}

const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/** Formats a byte count with a binary unit. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return `${u === 0 ? n : n.toFixed(1)} ${units[u]}`;
}

export interface LoadgenCpu {
  user_s: number;
  system_s: number;
  /** (user + system) / duration × 100: 100 is one core busy all the time. */
  core_percent: number;
  /** Threads that sent requests (1: every connection on one thread, like `wrk -t1`). */
  threads: number;
}

/** At or above this share of its one core, the load generator is called the likely limit. */
export const LOADGEN_SATURATED_PERCENT = 85;

/** The report as text for a terminal. */
export function formatReport(r: Report): string {
  const lines: string[] = [];
  const via = r.proxy ? ` via ${r.proxy}` : "";
  const bound = r.rate ? `, rate ${r.rate}/s` : "";
  lines.push(
    `Target     ${r.method} ${r.url}${via} (${r.concurrency} connections${bound}, ${
      r.duration_s.toFixed(2)
    } s${r.aborted ? ", stopped early" : ""})`,
  );
  lines.push(
    `Requests   ${r.requests} responses, ${r.errors_total} errors, ${r.rps.toFixed(1)} requests/s`,
  );
  lines.push(
    `Transfer   ${formatBytes(r.bytes_received)} received (${
      formatBytes(r.throughput_bytes_per_s)
    }/s), ${formatBytes(r.bytes_sent)} sent`,
  );
  const l = r.latency_ms;
  lines.push(
    `Latency    min ${ms(l.min)}  mean ${ms(l.mean)}  p50 ${ms(l.p50)}  p90 ${ms(l.p90)}  p99 ${
      ms(l.p99)
    }  p99.9 ${ms(l.p999)}  max ${ms(l.max)}  (ms${r.rate ? ", from intended send time" : ""})`,
  );
  const statuses = Object.entries(r.status).sort(([a], [b]) => a.localeCompare(b));
  lines.push(`Status     ${statuses.map(([k, v]) => `${k}: ${v}`).join("  ") || "none"}`);
  const errors = Object.entries(r.errors);
  if (errors.length) {
    lines.push(`Errors     ${errors.map(([k, v]) => `${k}: ${v}`).join("  ")}`);
    for (const [k, msg] of Object.entries(r.error_samples)) lines.push(`  ${k}: ${msg}`);
  }
  const cpu = r.loadgen_cpu;
  lines.push(
    `Load gen   ${cpu.core_percent.toFixed(0)} % of one CPU core (user ${
      cpu.user_s.toFixed(2)
    } s, system ${cpu.system_s.toFixed(2)} s, ${cpu.threads} thread${cpu.threads > 1 ? "s" : ""})`,
  );
  for (const w of r.warnings) lines.push(`WARNING: ${w}`);
  return lines.join("\n");
}
