/**
 * Response body framing (RFC 9112 §6, §7.1): Content-Length, chunked and
 * close-delimited bodies as pull streams with flat memory, plus the fast path
 * that hands back a small body already sitting in the read buffer.
 *
 * @module
 */

import type { UpstreamConn } from "./conn.ts";
import { UpstreamError } from "./errors.ts";

/** How the response body is delimited. */
export type Framing = "length" | "chunked" | "close";

/**
 * Called exactly once when a body ends: `ok` with the connection positioned
 * after the message (so it may be pooled), or not `ok` (it must be closed);
 * `error` is set when the upstream failed mid-body.
 */
export type BodyDone = (c: UpstreamConn, ok: boolean, error?: UpstreamError) => void;

const READ_SIZE = 64 * 1024;
/** Longest chunk-size line or trailer line accepted. */
const MAX_LINE = 8 * 1024;
/** Longest trailer section accepted (trailers are discarded). */
const MAX_TRAILERS = 64 * 1024;

function cut(): UpstreamError {
  return new UpstreamError("reset", "upstream closed the connection mid-body", true);
}
function badChunk(what: string): UpstreamError {
  return new UpstreamError("protocol", "upstream sent a malformed chunked body: " + what, true);
}

/** Hex chunk size at b[s, e) up to ';' or whitespace; -1 when malformed. */
function chunkSize(b: Uint8Array, s: number, e: number): number {
  let n = 0;
  let digits = 0;
  let i = s;
  for (; i < e; i++) {
    const ch = b[i];
    let v: number;
    if (ch >= 48 && ch <= 57) v = ch - 48;
    else if (ch >= 97 && ch <= 102) v = ch - 87;
    else if (ch >= 65 && ch <= 70) v = ch - 55;
    else break;
    if (++digits > 12) return -1;
    n = n * 16 + v;
  }
  if (digits === 0) return -1;
  // Only extensions (";...") or trailing whitespace may follow.
  for (; i < e; i++) {
    const ch = b[i];
    if (ch === 59) return n;
    if (ch !== 32 && ch !== 9 && ch !== 13) return -1;
  }
  return n;
}

/**
 * Decodes a complete chunked body that is already in the buffer and no larger
 * than `max`, consuming it. Returns undefined (consuming nothing) otherwise.
 */
export function takeChunkedFromBuffer(
  c: UpstreamConn,
  max: number,
): Uint8Array<ArrayBuffer> | undefined {
  const b = c.buf;
  const end = c.end;
  let pos = c.start;
  let pieces: number[] | undefined; // [start, end) pairs
  let total = 0;
  for (;;) {
    const lf = b.indexOf(10, pos);
    if (lf < 0 || lf >= end) return undefined;
    const size = chunkSize(b, pos, lf);
    if (size < 0) return undefined; // let the streaming path report it
    pos = lf + 1;
    if (size === 0) break;
    total += size;
    if (total > max || pos + size + 2 > end) return undefined;
    (pieces ??= []).push(pos, pos + size);
    pos += size;
    if (b[pos] === 13 && b[pos + 1] === 10) pos += 2;
    else if (b[pos] === 10) pos += 1;
    else return undefined;
  }
  // Trailer section up to the blank line.
  for (;;) {
    const lf = b.indexOf(10, pos);
    if (lf < 0 || lf >= end) return undefined;
    const blank = lf === pos || (lf === pos + 1 && b[pos] === 13);
    pos = lf + 1;
    if (blank) break;
  }
  const out = new Uint8Array(total);
  if (pieces !== undefined) {
    let o = 0;
    for (let i = 0; i < pieces.length; i += 2) {
      out.set(b.subarray(pieces[i], pieces[i + 1]), o);
      o += pieces[i + 1] - pieces[i];
    }
  }
  c.start = pos;
  return out;
}

/** Chunked decoder states. */
const State = { Size: 0, Data: 1, DataEnd: 2, Trailers: 3, Done: 4 } as const;
type State = typeof State[keyof typeof State];

/**
 * Pull source for a response body. Pulls are driven by the consumer, so memory
 * stays flat whatever the size; every read from the socket is bounded by
 * `readTimeoutMs` of silence.
 */
export class BodySource implements UnderlyingDefaultSource<Uint8Array> {
  #c: UpstreamConn;
  #framing: Framing;
  /** Bytes left (length framing, or of the current chunk). */
  #remaining: number;
  #state: State = State.Size;
  #trailerBytes = 0;
  #readTimeoutMs: number;
  #done: BodyDone;
  #finished = false;

  constructor(
    c: UpstreamConn,
    framing: Framing,
    length: number,
    readTimeoutMs: number,
    done: BodyDone,
  ) {
    this.#c = c;
    this.#framing = framing;
    this.#remaining = length;
    this.#readTimeoutMs = readTimeoutMs;
    this.#done = done;
  }

  async pull(ctrl: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    try {
      if (this.#framing === "chunked") await this.#pullChunked(ctrl);
      else await this.#pullRaw(ctrl);
    } catch (err) {
      const e = err instanceof UpstreamError
        ? err
        : this.#c.timedOut
        ? new UpstreamError("response-timeout", "upstream stalled mid-body", true)
        : new UpstreamError("reset", "upstream connection failed mid-body", true, { cause: err });
      this.#finish(false, e);
      ctrl.error(e);
    }
  }

  cancel(): void {
    // The consumer (client) went away: the rest of the body is unread, so the connection is lost.
    this.#finish(false);
  }

  #finish(ok: boolean, error?: UpstreamError): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#done(this.#c, ok, error);
  }

  /** Reads straight into a fresh chunk (no copy) when the buffer is empty. */
  async #readDirect(max: number): Promise<Uint8Array | null> {
    const c = this.#c;
    const chunk = new Uint8Array(Math.min(max, READ_SIZE));
    c.armTimer(this.#readTimeoutMs);
    const n = await c.conn.read(chunk);
    c.disarmTimer();
    if (n === null) return null;
    // A short read into a large chunk would pin the whole chunk; copy it out instead.
    return n < chunk.length >> 2 ? chunk.slice(0, n) : chunk.subarray(0, n);
  }

  async #fill(): Promise<boolean> {
    const c = this.#c;
    c.armTimer(this.#readTimeoutMs);
    const more = await c.fill();
    c.disarmTimer();
    return more;
  }

  async #pullRaw(ctrl: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    const c = this.#c;
    const close = this.#framing === "close";
    if (!close && this.#remaining === 0) {
      this.#finish(true);
      ctrl.close();
      return;
    }
    const want = close ? READ_SIZE : this.#remaining;
    let chunk: Uint8Array | null;
    if (c.start < c.end) {
      const n = Math.min(want, c.end - c.start);
      chunk = c.buf.slice(c.start, c.start + n);
      c.start += n;
    } else {
      chunk = await this.#readDirect(want);
    }
    if (chunk === null) {
      if (!close) throw cut();
      this.#finish(false);
      ctrl.close();
      return;
    }
    if (!close) this.#remaining -= chunk.length;
    if (!close && this.#remaining === 0) {
      // Release the connection before the consumer sees the end, so the next request can reuse it.
      this.#finish(c.start === c.end);
      ctrl.enqueue(chunk);
      ctrl.close();
      return;
    }
    ctrl.enqueue(chunk);
  }

  async #pullChunked(ctrl: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    const c = this.#c;
    for (;;) {
      switch (this.#state) {
        case State.Size: {
          const lf = c.buf.indexOf(10, c.start);
          if (lf < 0 || lf >= c.end) {
            if (c.end - c.start > MAX_LINE) throw badChunk("chunk-size line too long");
            if (!await this.#fill()) throw cut();
            continue;
          }
          const size = chunkSize(c.buf, c.start, lf);
          if (size < 0) throw badChunk("invalid chunk size");
          c.start = lf + 1;
          this.#remaining = size;
          this.#state = size === 0 ? State.Trailers : State.Data;
          continue;
        }
        case State.Data: {
          let chunk: Uint8Array | null;
          if (c.start < c.end) {
            const n = Math.min(this.#remaining, c.end - c.start);
            chunk = c.buf.slice(c.start, c.start + n);
            c.start += n;
          } else {
            chunk = await this.#readDirect(this.#remaining);
            if (chunk === null) throw cut();
          }
          this.#remaining -= chunk.length;
          if (this.#remaining === 0) this.#state = State.DataEnd;
          ctrl.enqueue(chunk);
          return;
        }
        case State.DataEnd: {
          if (c.end - c.start < 2) {
            if (c.end - c.start === 1 && c.buf[c.start] === 10) {
              c.start++;
              this.#state = State.Size;
              continue;
            }
            if (!await this.#fill()) throw cut();
            continue;
          }
          if (c.buf[c.start] === 13 && c.buf[c.start + 1] === 10) c.start += 2;
          else if (c.buf[c.start] === 10) c.start += 1;
          else throw badChunk("missing CRLF after chunk data");
          this.#state = State.Size;
          continue;
        }
        case State.Trailers: {
          const lf = c.buf.indexOf(10, c.start);
          if (lf < 0 || lf >= c.end) {
            if (c.end - c.start > MAX_LINE) throw badChunk("trailer line too long");
            if (!await this.#fill()) throw cut();
            continue;
          }
          const blank = lf === c.start || (lf === c.start + 1 && c.buf[c.start] === 13);
          this.#trailerBytes += lf + 1 - c.start;
          if (this.#trailerBytes > MAX_TRAILERS) throw badChunk("trailer section too large");
          c.start = lf + 1;
          if (blank) this.#state = State.Done;
          continue;
        }
        case State.Done:
          this.#finish(c.start === c.end);
          ctrl.close();
          return;
      }
    }
  }
}
