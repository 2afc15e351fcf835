/**
 * A LogTape sink that never drops a record: formatted lines are gathered in
 * memory and written together, blocking, at most `flushMs` after the first of
 * them, so a burst of access-log lines costs one syscall, not one each (a
 * write, or a setImmediate per event-loop turn, cost 9–12 µs each on a busy
 * machine here: more than formatting the line). When the gathered lines exceed
 * `maxBufferBytes` they are written at once, inside the call that logs (the
 * event loop waits for the disk or the pipe's reader: back-pressure, never
 * loss). LogTape's own non-blocking stream sink dropped records when
 * its buffer was full (issue 11: 1,622 lines for 28,830 requests).
 *
 * A write that fails (a full disk, a closed pipe) loses its lines; they are
 * counted in {@linkcode LineSink.failed} and reported once on stderr.
 *
 * @module
 */
import type { LogRecord, TextFormatter } from "@logtape/logtape";
import type { LineOutput } from "./outputs.ts";

export interface LineSinkOptions {
  /** Lines gathered beyond this many bytes (UTF-16 units, roughly) are written at once. */
  maxBufferBytes?: number;
  /** Longest a line waits before it is written (default 10 ms). */
  flushMs?: number;
}

const encoder = new TextEncoder();

export class LineSink {
  /** Lines written to the output. */
  written = 0;
  /** Lines lost because a write failed. */
  failed = 0;
  readonly #output: LineOutput;
  readonly #format: TextFormatter;
  readonly #maxBufferBytes: number;
  readonly #flushMs: number;
  #parts: string[] = [];
  #size = 0;
  #scheduled: ReturnType<typeof setTimeout> | undefined;
  #reportedFailure = false;

  /** True when lines are LogTape's JSON lines (the access log then formats them itself). */
  readonly json: boolean;

  constructor(
    output: LineOutput,
    format: TextFormatter,
    options: LineSinkOptions & { json?: boolean } = {},
  ) {
    this.#output = output;
    this.#format = format;
    this.json = options.json ?? false;
    this.#maxBufferBytes = options.maxBufferBytes ?? 256 * 1024;
    this.#flushMs = options.flushMs ?? 10;
  }

  get output(): LineOutput {
    return this.#output;
  }

  /** The LogTape sink function. */
  readonly sink = (record: LogRecord): void => {
    this.push(this.#format(record));
  };

  /** Formats a record the way this sink's formatter does (for lines that bypass LogTape). */
  format(record: LogRecord): string {
    return this.#format(record);
  }

  /** Queues one formatted line (ending in a newline). */
  push(line: string): void {
    this.#parts.push(line);
    this.#size += line.length;
    if (this.#size >= this.#maxBufferBytes) this.flush();
    else if (this.#scheduled === undefined) {
      this.#scheduled = setTimeout(this.#flushScheduled, this.#flushMs);
    }
  }

  readonly #flushScheduled = () => {
    this.#scheduled = undefined;
    this.flush();
  };

  /** Writes the gathered lines now (blocking). */
  flush(): void {
    if (this.#scheduled !== undefined) {
      clearTimeout(this.#scheduled);
      this.#scheduled = undefined;
    }
    if (this.#parts.length === 0) return;
    const parts = this.#parts;
    this.#parts = [];
    this.#size = 0;
    try {
      this.#output.write(encoder.encode(parts.length === 1 ? parts[0] : parts.join("")));
      this.written += parts.length;
    } catch (err) {
      this.failed += parts.length;
      if (!this.#reportedFailure) {
        this.#reportedFailure = true;
        // stderr, not the log: the log is what just failed. Once, not once per batch.
        console.error(
          `proxy: cannot write log lines to ${this.#output.name}: ${(err as Error).message} ` +
            `(lost lines are counted in /proxy-stats log.lines_failed)`,
        );
      }
    }
  }

  /** Writes what is left and closes the output (LogTape calls it on reset). */
  [Symbol.dispose](): void {
    this.flush();
    this.#output.close();
  }
}
