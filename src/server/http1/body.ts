/**
 * Request bodies: Content-Length and chunked (RFC 9112 §6–§7), read
 * straight from the connection in pieces of at most 64 KiB, either whole
 * before the app sees the request (bodies up to REQUEST_BUFFER_SIZE) or as
 * a stream the app pulls (back-pressure: nothing is read until asked for).
 *
 * @module
 */
import { BODY_PIECE, type ConnReader } from "./reader.ts";

/** A body the client framed wrongly, sent too slowly or left unfinished. */
export class BodyError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Pieces of one request body. */
export interface BodySource {
  /** The next piece (a fresh array the caller may keep), or null after the last. */
  next(): Promise<Uint8Array | null>;
  /** Every byte of the body has been read off the connection. */
  readonly done: boolean;
}

const CR = 13;
const LF = 10;
const incomplete = () =>
  new BodyError(400, "the client closed before the request body was complete");

/** A body of `length` bytes. */
export class FixedBody implements BodySource {
  #left: number;
  constructor(readonly reader: ConnReader, length: number) {
    this.#left = length;
  }

  get done(): boolean {
    return this.#left === 0;
  }

  async next(): Promise<Uint8Array | null> {
    if (this.#left === 0) return null;
    const r = this.reader;
    if (r.buffered > 0) {
      const piece = r.take(Math.min(this.#left, BODY_PIECE));
      this.#left -= piece.length;
      return piece;
    }
    const piece = new Uint8Array(Math.min(this.#left, BODY_PIECE));
    const n = await r.readDirect(piece);
    if (n === null) throw incomplete();
    this.#left -= n;
    return n === piece.length ? piece : piece.subarray(0, n);
  }

  /** Reads the whole body into one array (its length is known). */
  async readAll(): Promise<Uint8Array> {
    const out = new Uint8Array(this.#left);
    const r = this.reader;
    let off = 0;
    if (r.buffered > 0) {
      const k = Math.min(r.buffered, this.#left);
      out.set(r.buf.subarray(r.start, r.start + k));
      r.consume(k);
      off = k;
    }
    while (off < out.length) {
      const n = await r.readDirect(out.subarray(off));
      if (n === null) throw incomplete();
      off += n;
    }
    this.#left = 0;
    return out;
  }
}

const enum Chunk {
  Size,
  Data,
  DataEnd,
  Trailers,
  Done,
}

/** Longest chunk-size line (with extensions) and longest trailer section. */
const MAX_CHUNK_LINE = 4096;
const MAX_TRAILERS = 16 * 1024;

/** A chunked body: sizes, extensions and trailers checked, data handed on. */
export class ChunkedBody implements BodySource {
  #state = Chunk.Size;
  #left = 0;
  #trailerBytes = 0;

  constructor(readonly reader: ConnReader) {}

  get done(): boolean {
    return this.#state === Chunk.Done;
  }

  /** Offset of the next line's LF in the buffer, reading more as needed; checks for bare LF. */
  async #line(max: number): Promise<number> {
    const r = this.reader;
    let scanned = 0;
    while (true) {
      const lf = r.buf.indexOf(LF, r.start + scanned);
      if (lf >= 0 && lf < r.end) {
        if (lf === r.start || r.buf[lf - 1] !== CR) {
          throw new BodyError(400, "bare LF in the chunked body");
        }
        return lf;
      }
      scanned = r.buffered;
      if (scanned > max) throw new BodyError(400, "chunk-size line too long");
      if (!(await r.fill(Math.max(r.buf.length, max + 2)))) throw incomplete();
    }
  }

  async next(): Promise<Uint8Array | null> {
    const r = this.reader;
    while (true) {
      switch (this.#state) {
        case Chunk.Size: {
          const lf = await this.#line(MAX_CHUNK_LINE);
          this.#left = parseChunkSize(r.buf, r.start, lf - 1);
          r.consume(lf + 1 - r.start);
          this.#state = this.#left === 0 ? Chunk.Trailers : Chunk.Data;
          break;
        }
        case Chunk.Data: {
          if (r.buffered > 0) {
            const piece = r.take(Math.min(this.#left, BODY_PIECE));
            this.#left -= piece.length;
            if (this.#left === 0) this.#state = Chunk.DataEnd;
            return piece;
          }
          const piece = new Uint8Array(Math.min(this.#left, BODY_PIECE));
          const n = await r.readDirect(piece);
          if (n === null) throw incomplete();
          this.#left -= n;
          if (this.#left === 0) this.#state = Chunk.DataEnd;
          return n === piece.length ? piece : piece.subarray(0, n);
        }
        case Chunk.DataEnd: {
          while (r.buffered < 2) if (!(await r.fill())) throw incomplete();
          if (r.buf[r.start] !== CR || r.buf[r.start + 1] !== LF) {
            throw new BodyError(400, "chunk data not followed by CRLF");
          }
          r.consume(2);
          this.#state = Chunk.Size;
          break;
        }
        case Chunk.Trailers: {
          const lf = await this.#line(MAX_TRAILERS);
          const length = lf + 1 - r.start;
          this.#trailerBytes += length;
          if (this.#trailerBytes > MAX_TRAILERS) {
            throw new BodyError(431, "chunked trailer section too large");
          }
          checkTrailer(r.buf, r.start, lf - 1);
          r.consume(length);
          if (length === 2) this.#state = Chunk.Done;
          break;
        }
        case Chunk.Done:
          return null;
      }
    }
  }
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  if (l >= 97 && l <= 102) return l - 87;
  return -1;
}

/** chunk-size [ chunk-ext ] in `buf[from, to)`: at most 15 hex digits (fits a double exactly). */
function parseChunkSize(buf: Uint8Array, from: number, to: number): number {
  let size = 0;
  let i = from;
  for (; i < to; i++) {
    const v = hexValue(buf[i]);
    if (v < 0) break;
    if (i - from >= 15) throw new BodyError(400, "chunk size too large");
    size = size * 16 + v;
  }
  if (i === from) throw new BodyError(400, "invalid chunk size");
  // Extensions (ignored): `;name[=value]`, optionally after whitespace; no control bytes.
  for (; i < to; i++) {
    const c = buf[i];
    if (c === 32 || c === 9) continue;
    if (c !== 59) throw new BodyError(400, "invalid chunk size");
    break;
  }
  for (; i < to; i++) {
    const c = buf[i];
    if ((c < 32 && c !== 9) || c === 127) throw new BodyError(400, "invalid chunk extension");
  }
  return size;
}

function checkTrailer(buf: Uint8Array, from: number, to: number): void {
  if (from === to) return;
  const first = buf[from];
  if (first === 32 || first === 9) throw new BodyError(400, "obsolete line folding in trailers");
  for (let i = from; i < to; i++) {
    const c = buf[i];
    if ((c < 32 && c !== 9) || c === 127) throw new BodyError(400, "invalid trailer field");
  }
}

/** A body that ends when the connection does (a response without length or chunking). */
export class UntilCloseBody implements BodySource {
  #done = false;
  constructor(readonly reader: ConnReader) {}

  get done(): boolean {
    return this.#done;
  }

  async next(): Promise<Uint8Array | null> {
    if (this.#done) return null;
    const r = this.reader;
    if (r.buffered > 0) return r.take(BODY_PIECE);
    const piece = new Uint8Array(BODY_PIECE);
    const n = await r.readDirect(piece);
    if (n === null) {
      this.#done = true;
      return null;
    }
    return piece.subarray(0, n);
  }
}

/**
 * Reads a body up to `limit` bytes. Returns the whole body when it ends
 * within the limit, else the pieces read so far (the rest is to be streamed).
 */
export async function readUpTo(
  source: BodySource,
  limit: number,
): Promise<{ whole: Uint8Array } | { pieces: Uint8Array[] }> {
  const pieces: Uint8Array[] = [];
  let total = 0;
  while (total <= limit) {
    const piece = await source.next();
    if (piece === null) return { whole: concat(pieces, total) };
    pieces.push(piece);
    total += piece.length;
  }
  return { pieces };
}

function concat(pieces: Uint8Array[], total: number): Uint8Array {
  if (pieces.length === 1) return pieces[0];
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of pieces) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * The body as a stream the app pulls: nothing is read from the client until
 * asked for (back-pressure), `first` pieces (already read) come first.
 * `onError` learns of a framing error or timeout so the server can answer it.
 */
export function bodyStream(
  source: BodySource,
  first: Uint8Array[],
  onError: (err: BodyError) => void,
  beforeFirstRead?: () => Promise<void>,
): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (beforeFirstRead) {
        const before = beforeFirstRead;
        beforeFirstRead = undefined;
        await before();
      }
      if (i < first.length) {
        controller.enqueue(first[i]);
        first[i++] = EMPTY;
        return;
      }
      try {
        const piece = await source.next();
        if (piece === null) controller.close();
        else controller.enqueue(piece);
      } catch (err) {
        const e = err instanceof BodyError ? err : new BodyError(400, String(err));
        onError(e);
        controller.error(e);
      }
    },
    // Two pieces read ahead keep the client's and the upstream's sockets both busy; none before
    // the first read when that read sends 100 Continue.
  }, { highWaterMark: beforeFirstRead ? 0 : 2 });
}

const EMPTY = new Uint8Array(0);
