/**
 * The load generator, as a library (the dashboard runs it) and as the
 * `proxy loadtest` command.
 *
 * @example
 * ```ts
 * import { loadtest } from "./src/loadtest/mod.ts";
 * const report = await loadtest({ url: "http://127.0.0.1:8080/", requests: 1000, concurrency: 20 });
 * console.log(report.rps, report.latency_ms.p99);
 * ```
 *
 * @module
 */
export { loadtest, type LoadtestHooks, type Progress } from "./runner.ts";
export {
  DEFAULT_CONCURRENCY,
  DEFAULT_DURATION,
  DEFAULT_REQUESTS,
  type LoadtestOptions,
  MAX_CONCURRENCY,
  OptionsError,
  parseCliArgs,
  resolveOptions,
  USAGE,
} from "./options.ts";
export {
  formatBytes,
  formatReport,
  type LoadgenCpu,
  type Report,
  type TimelinePoint,
} from "./report.ts";
export { progressLine, runLoadtest } from "./cli.ts";
export type { ErrorKind } from "./http1.ts";
