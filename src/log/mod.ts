/**
 * Logging through LogTape: one place configures levels, format (pretty on a
 * terminal, JSON lines otherwise) and outputs (stdout and/or `LOG_FILE`);
 * modules ask for a category logger. Lines are never dropped (see
 * line_sink.ts); `logStats` counts what was written and what could not be.
 *
 * @module
 */
import {
  configure,
  getAnsiColorFormatter,
  getJsonLinesFormatter,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogLevel,
  reset,
  type TextFormatter,
} from "@logtape/logtape";
import { counter, type Sample, type StatsSource } from "../stats/metric.ts";
import { type AccessLog, createAccessLog } from "./access.ts";
import { LineSink } from "./line_sink.ts";
import { FileOutput, stdoutOutput } from "./outputs.ts";

export type { AccessLog, Logger };

/** The logging settings (the `LOG_*` fields of the configuration). */
export interface LogOptions {
  logLevel: "debug" | "info" | "warn" | "error";
  logFormat: "auto" | "pretty" | "json";
  /** Also (or only, with `logStdout: false`) write to this file; "" = none. */
  logFile?: string;
  /** Write to standard output (default true). */
  logStdout?: boolean;
}

const LEVELS: Record<LogOptions["logLevel"], LogLevel> = {
  debug: "debug",
  info: "info",
  warn: "warning",
  error: "error",
};

/** Sinks of the current configuration, for flushing, reopening and statistics. */
let sinks: LineSink[] = [];
/** Counts of sinks replaced by a later `setupLogging`, so the counters never go back. */
const retired = new Map<string, { written: number; failed: number }>();
let reopenListener: (() => void) | undefined;
/** Access lines are info-level: off when LOG_LEVEL is warn or error. */
let accessEnabled = false;

/**
 * Configures the root `proxy` category. Safe to call again (reconfigures).
 * Throws an Error naming LOG_FILE when the file cannot be opened.
 */
export async function setupLogging(options: LogOptions): Promise<void> {
  const file = options.logFile ?? "";
  let fileOutput: FileOutput | undefined;
  if (file !== "") {
    try {
      fileOutput = new FileOutput(file);
    } catch (err) {
      throw new Error(`LOG_FILE: cannot open "${file}" for appending: ${(err as Error).message}`);
    }
  }
  const next: LineSink[] = [];
  if (options.logStdout ?? true) {
    const pretty = options.logFormat === "pretty" ||
      (options.logFormat === "auto" && Deno.stdout.isTerminal());
    next.push(
      pretty
        ? new LineSink(stdoutOutput(), prettyFormatter())
        : new LineSink(stdoutOutput(), getJsonLinesFormatter(), { json: true }),
    );
  }
  if (fileOutput) {
    // A file is read by tools more than by eyes: JSON unless plain text was asked for.
    next.push(
      options.logFormat === "pretty"
        ? new LineSink(
          fileOutput,
          getTextFormatter({ timestamp: "date-time-timezone", level: "ABBR", category: "." }),
        )
        : new LineSink(fileOutput, getJsonLinesFormatter(), { json: true }),
    );
  }

  for (const s of sinks) retire(s);
  sinks = next;
  accessEnabled = options.logLevel === "debug" || options.logLevel === "info";
  const names = sinks.map((_, i) => `out${i}`);
  await configure({
    reset: true,
    sinks: Object.fromEntries(sinks.map((s, i) => [
      names[i],
      Object.assign(s.sink, {
        [Symbol.dispose]: () => s[Symbol.dispose](),
      }),
    ])),
    loggers: [
      { category: ["proxy"], lowestLevel: LEVELS[options.logLevel], sinks: names },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: names },
    ],
  });
  watchReopenSignal(fileOutput !== undefined);
}

function prettyFormatter(): TextFormatter {
  return getAnsiColorFormatter({ timestamp: "time", level: "ABBR", category: "." });
}

function retire(s: LineSink): void {
  const r = retired.get(kindOf(s)) ?? { written: 0, failed: 0 };
  r.written += s.written;
  r.failed += s.failed;
  retired.set(kindOf(s), r);
}

const kindOf = (s: LineSink) => s.output.name === "stdout" ? "stdout" : "file";

/**
 * SIGUSR1 reopens LOG_FILE at its path (after logrotate renamed it), like
 * nginx's USR1. Every serving thread listens: each has its own handle.
 */
function watchReopenSignal(on: boolean): void {
  if (Deno.build.os === "windows") return;
  if (reopenListener) {
    Deno.removeSignalListener("SIGUSR1", reopenListener);
    reopenListener = undefined;
  }
  if (!on) return;
  reopenListener = () => {
    const err = reopenLogFile();
    if (err) logger("log").error("{error}", { error: err });
    else logger("log").info("log file reopened");
  };
  Deno.addSignalListener("SIGUSR1", reopenListener);
}

/**
 * Writes pending lines, then reopens LOG_FILE. Returns an error message when
 * the file cannot be reopened (the old handle is kept).
 */
export function reopenLogFile(): string | undefined {
  for (const s of sinks) {
    if (!(s.output instanceof FileOutput)) continue;
    s.flush();
    try {
      s.output.reopen();
    } catch (err) {
      return `LOG_FILE: cannot reopen "${s.output.name}", still writing to the old file: ${
        (err as Error).message
      }`;
    }
  }
  return undefined;
}

/** Writes every pending line now (before a plain stderr line that must come after them). */
export function flushLogs(): void {
  for (const s of sinks) s.flush();
}

/** Flushes buffered log records and closes the log file (before exit). */
export async function closeLogging(): Promise<void> {
  watchReopenSignal(false);
  for (const s of sinks) retire(s);
  sinks = [];
  await reset();
}

/**
 * The access log (category `proxy.access`): one line per request, written
 * straight to the outputs, bypassing LogTape's per-record cost (see access.ts).
 */
export function accessLogger(): AccessLog {
  return createAccessLog(() => sinks, () => accessEnabled);
}

/** A logger under the `proxy` category, e.g. `logger("serve")`. */
export function logger(...category: string[]): Logger {
  return getLogger(["proxy", ...category]);
}

function totals(): Map<string, { written: number; failed: number }> {
  const out = new Map<string, { written: number; failed: number }>();
  for (const [k, v] of retired) out.set(k, { ...v });
  for (const s of sinks) {
    const t = out.get(kindOf(s)) ?? { written: 0, failed: 0 };
    t.written += s.written;
    t.failed += s.failed;
    out.set(kindOf(s), t);
  }
  return out;
}

/** Log lines written and lost, for /proxy-stats (`log`) and /metrics. */
export const logStats: StatsSource = {
  name: "log",
  snapshot() {
    const t = totals();
    let written = 0;
    let failed = 0;
    for (const v of t.values()) {
      written += v.written;
      failed += v.failed;
    }
    return {
      lines_written: written,
      lines_failed: failed,
      outputs: Object.fromEntries(t),
      file: sinks.find((s) => s.output instanceof FileOutput)?.output.name ?? null,
    };
  },
  metrics() {
    const t = [...totals()];
    const samples = (field: "written" | "failed"): Sample[] =>
      t.map(([output, v]) => ({ labels: { output }, value: v[field] }));
    return [
      counter(
        "proxy_log_lines_written_total",
        "Log lines written, per output.",
        samples("written"),
      ),
      counter(
        "proxy_log_lines_failed_total",
        "Log lines lost because writing them failed (full disk, closed pipe), per output.",
        samples("failed"),
      ),
    ];
  },
};
