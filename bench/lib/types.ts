/**
 * The contract between the orchestrator (bench/run.ts) and scenario files
 * (bench/scenarios/<name>.ts). A scenario default-exports or exports
 * `scenario` of type {@link Scenario}.
 *
 * @module
 */

/** One measured (or skipped/failed) target of a scenario, e.g. "nginx". */
export interface TargetRow {
  target: string;
  status: "ok" | "skipped" | "failed";
  /** Median requests/s over the rounds. */
  rps?: number;
  /** Median latency percentiles over the rounds, in milliseconds. */
  p50Ms?: number;
  p99Ms?: number;
  /** Socket errors plus non-2xx/3xx responses summed over all rounds. */
  errors?: number;
  /** Requests wrk completed over all rounds. */
  requests?: number;
  /** Requests that reached the origin during the rounds (when the scenario counts them). */
  originRequests?: number;
  /** Requests/s of each round, in order. */
  roundsRps?: number[];
  /** Why it was skipped or failed, or a remark (e.g. error counts). */
  note?: string;
}

/** A named quotient, e.g. "proxy/nginx rps". */
export interface Ratio {
  label: string;
  value: number;
}

export interface ScenarioResult {
  rows: TargetRow[];
  ratios: Ratio[];
  /** Free-form facts worth keeping with the numbers (versions, settings). */
  notes?: string[];
}

/** Options shared by every scenario, from the command line. */
export interface BenchOptions {
  /** wrk duration per round in seconds. */
  durationSec: number;
  connections: number;
  threads: number;
  rounds: number;
  /** Warm-up run per target before the rounds, in seconds (0 = none). */
  warmupSec: number;
}

export interface BenchContext extends BenchOptions {
  /** Absolute path of the repository root (no trailing slash). */
  root: string;
  /** A private temp directory for this scenario; removed afterwards. */
  tmpDir: string;
  /** Tools found on PATH (wrk, nginx, haproxy, node, npm). */
  tools: Record<string, boolean>;
  /** Progress line on stderr (kept out of the result table). */
  log(msg: string): void;
  /** Registers cleanup that runs after the scenario, even when it throws (last in, first out). */
  defer(fn: () => Promise<void> | void): void;
}

export interface Scenario {
  name: string;
  description: string;
  run(ctx: BenchContext): Promise<ScenarioResult>;
}
