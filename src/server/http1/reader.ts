/**
 * A buffered reader over a byte connection, with the bookkeeping the
 * body timeouts need (is a read pending, since when, how long the client
 * has made us wait in total).
 *
 * @module
 */
import type { ByteConn } from "../types.ts";

/** Bytes read per direct body read (and the largest body piece handed on). */
export const BODY_PIECE = 256 * 1024;

const FALSE = Promise.resolve(false);

export class ConnReader {
  buf: Uint8Array;
  start = 0;
  end = 0;
  /** A read is waiting for the client (set only while a request body is read). */
  pending = false;
  /** `Date.now()` when the pending read started or last delivered bytes. */
  lastProgress = 0;
  /** Milliseconds spent waiting for body bytes (finished waits). */
  waitedMs = 0;
  /** Body bytes received for the current request. */
  bodyBytes = 0;
  /** Body bytes are being read: waits count for BODY_TIMEOUT and BODY_MIN_RATE. */
  bodyMode = false;
  #eof = false;

  constructor(readonly conn: ByteConn, size: number) {
    this.buf = new Uint8Array(size);
  }

  get buffered(): number {
    return this.end - this.start;
  }

  get eof(): boolean {
    return this.#eof;
  }

  /**
   * Reads more bytes into the buffer, growing it up to `max`; false at end of stream.
   *
   * Written with `then` and handlers made once per reader rather than as async functions:
   * an idle keep-alive connection waits here, and each suspended async frame would keep a
   * generator, a promise and a context alive per connection (~0.5 KiB each).
   */
  fill(max = this.buf.length): Promise<boolean> {
    if (this.#eof) return FALSE;
    try {
      if (this.start > 0 && (this.start === this.end || this.buf.length - this.end < 2048)) {
        this.buf.copyWithin(0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      }
      if (this.end === this.buf.length) {
        if (this.buf.length >= max) throw new RangeError("read buffer full");
        const bigger = new Uint8Array(Math.min(max, this.buf.length * 2));
        bigger.set(this.buf.subarray(this.start, this.end));
        this.end -= this.start;
        this.start = 0;
        this.buf = bigger;
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#read(this.buf.subarray(this.end)).then(this.#filled);
  }

  #filled = (n: number | null): boolean => {
    if (n === null) return false;
    this.end += n;
    return true;
  };

  /** Reads straight into `p` (body bytes, nothing buffered); null at end of stream. */
  readDirect(p: Uint8Array): Promise<number | null> {
    return this.#read(p);
  }

  #read(p: Uint8Array): Promise<number | null> {
    if (this.bodyMode) return this.#readBody(p);
    return this.conn.read(p).then(this.#got, this.#failed);
  }

  #got = (n: number | null): number | null => {
    if (n === null) this.#eof = true;
    return n;
  };

  #failed = (): null => {
    this.#eof = true;
    return null;
  };

  async #readBody(p: Uint8Array): Promise<number | null> {
    let n: number | null;
    const t0 = Date.now();
    this.lastProgress = t0;
    this.pending = true;
    try {
      n = await this.conn.read(p);
    } catch {
      n = null;
    } finally {
      this.pending = false;
      this.waitedMs += Date.now() - t0;
    }
    if (n !== null) this.bodyBytes += n;
    else this.#eof = true;
    return n;
  }

  consume(n: number): void {
    this.start += n;
    if (this.start === this.end) this.start = this.end = 0;
  }

  /** Copies out and consumes up to `n` buffered bytes. */
  take(n: number): Uint8Array {
    const k = Math.min(n, this.buffered);
    const out = this.buf.slice(this.start, this.start + k);
    this.consume(k);
    return out;
  }

  /** Hands over the buffered bytes (for a tunnel or an upgrade) and empties the buffer. */
  drain(): Uint8Array {
    return this.take(this.buffered);
  }

  /** Starts counting a new request body's waits and bytes. */
  startBody(): void {
    this.bodyMode = true;
    this.waitedMs = 0;
    this.bodyBytes = 0;
  }

  endBody(): void {
    this.bodyMode = false;
  }
}
