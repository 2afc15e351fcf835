/**
 * Where log lines go: standard output, or a file (`LOG_FILE`) that can be
 * reopened at its path after logrotate renamed it (SIGUSR1). Writes are
 * blocking and complete, or they throw.
 *
 * @module
 */

export interface LineOutput {
  /** "stdout" or the file's path, for messages and metrics. */
  readonly name: string;
  /** Writes every byte (whole lines), blocking until done; throws when it cannot. */
  write(bytes: Uint8Array): void;
  close(): void;
}

/**
 * Writes at most this much per call where other threads write too: a pipe
 * keeps a write of up to PIPE_BUF (4096 on Linux) bytes in one piece, so
 * lines of several serving threads never interleave mid-line.
 */
const PIPE_BUF = 4096;
const NEWLINE = 10;

/** Writes `bytes` in pieces of at most `limit` bytes that end at a line end. */
function writeLines(write: (b: Uint8Array) => number, bytes: Uint8Array, limit: number): void {
  let at = 0;
  while (at < bytes.length) {
    let end = bytes.length;
    if (end - at > limit) {
      // The last line end within the limit; a single longer line goes whole.
      const cut = bytes.lastIndexOf(NEWLINE, at + limit - 1);
      end = cut >= at ? cut + 1 : Math.max(bytes.indexOf(NEWLINE, at) + 1, at + limit);
    }
    writeAll(write, bytes.subarray(at, end));
    at = end;
  }
}

function writeAll(write: (b: Uint8Array) => number, bytes: Uint8Array): void {
  let at = 0;
  while (at < bytes.length) at += write(bytes.subarray(at));
}

/** Standard output; the proxy never closes it. */
export function stdoutOutput(): LineOutput {
  return {
    name: "stdout",
    write: (bytes) => writeLines((b) => Deno.stdout.writeSync(b), bytes, PIPE_BUF),
    close() {},
  };
}

/** A log file opened for appending (created with mode 0640 when missing). */
export class FileOutput implements LineOutput {
  readonly name: string;
  #file: Deno.FsFile;

  /** Throws when the file cannot be opened for appending. */
  constructor(path: string) {
    this.name = path;
    this.#file = FileOutput.#open(path);
  }

  static #open(path: string): Deno.FsFile {
    return Deno.openSync(path, { append: true, create: true, mode: 0o640 });
  }

  write(bytes: Uint8Array): void {
    // O_APPEND: each write lands at the end in one piece, whichever thread makes it.
    writeAll((b) => this.#file.writeSync(b), bytes);
  }

  /**
   * Opens the path again (logrotate moved the old file away) and closes the
   * old handle. On failure the old handle stays and the error is thrown.
   */
  reopen(): void {
    const next = FileOutput.#open(this.name);
    const old = this.#file;
    this.#file = next;
    try {
      old.close();
    } catch { /* already closed */ }
  }

  close(): void {
    try {
      this.#file.close();
    } catch { /* already closed */ }
  }
}
