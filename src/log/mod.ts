/**
 * Logging through LogTape: one place configures levels and format (pretty
 * on a terminal, JSON lines otherwise); modules ask for a category logger.
 *
 * @module
 */
import {
  configure,
  getAnsiColorFormatter,
  getJsonLinesFormatter,
  getLogger,
  getStreamSink,
  type Logger,
  type LogLevel,
  reset,
} from "@logtape/logtape";

export type { Logger };

export interface LogOptions {
  level: "debug" | "info" | "warn" | "error";
  format: "auto" | "pretty" | "json";
}

const LEVELS: Record<LogOptions["level"], LogLevel> = {
  debug: "debug",
  info: "info",
  warn: "warning",
  error: "error",
};

/** Configures the root `proxy` category. Safe to call again (reconfigures). */
export async function setupLogging(options: LogOptions): Promise<void> {
  const pretty = options.format === "pretty" ||
    (options.format === "auto" && Deno.stdout.isTerminal());
  const formatter = pretty
    ? getAnsiColorFormatter({ timestamp: "time", level: "ABBR", category: "." })
    : getJsonLinesFormatter();
  await configure({
    reset: true,
    sinks: {
      // Buffered so that an access-log line per request does not cost a write syscall each.
      stdout: getStreamSink(Deno.stdout.writable, {
        formatter,
        closeStream: false,
        nonBlocking: { bufferSize: 256, flushInterval: 50 },
      }),
    },
    loggers: [
      { category: ["proxy"], lowestLevel: LEVELS[options.level], sinks: ["stdout"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stdout"] },
    ],
  });
}

/** Flushes buffered log records (before exit). */
export async function closeLogging(): Promise<void> {
  await reset();
}

/** A logger under the `proxy` category, e.g. `logger("access")`. */
export function logger(...category: string[]): Logger {
  return getLogger(["proxy", ...category]);
}
