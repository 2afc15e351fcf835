/**
 * A byte-level guard in front of node:http2 in Deno 2.9: the GOAWAY
 * frames a client sends are turned into a frame type nobody uses, which
 * nghttp2 ignores (RFC 9113 §5.5).
 *
 * Why: Deno's node:http2 (nghttp2 inside) aborts the whole process when
 * a session handles a client's GOAWAY while it still holds closed
 * streams (`nghttp2_session.c: find_stream_on_goaway_func: Assertion
 * 'stream->closed_next == NULL' failed`), and clients send GOAWAY when
 * they are done (nghttp, curl, h2load). Rewriting its last-stream-id was
 * not enough (an even id still aborted; an odd one is a protocol error).
 * What the server loses is the notice: the client closes the connection
 * after its GOAWAY, and the session ends with the socket.
 *
 * The guard follows the frame boundaries of the client's byte stream
 * (the 24-byte preface, then 9-byte frame headers with their lengths)
 * and copies nothing except a frame header split across two reads,
 * which waits for the rest before it is passed on.
 *
 * @module
 */
import { Duplex } from "node:stream";

const PREFACE_LENGTH = 24;
const FRAME_HEADER = 9;
const GOAWAY = 0x7;
/** A frame type no extension uses: receivers must ignore unknown types (RFC 9113 §5.5). */
const IGNORED_TYPE = 0xfa;

/** Tracks frame boundaries across reads and turns GOAWAY frames into ignored ones, in place. */
export class GoawayRewriter {
  /** Bytes still to pass before the next frame header: the preface, then each frame's payload. */
  #skip = PREFACE_LENGTH;
  /** The start of a frame header that a read cut off, passed on with the next read. */
  #partial: Uint8Array | undefined;

  /**
   * Patches `chunk` and returns what may be passed on now: everything except the start of a
   * frame header the read cut off (it comes back in front of the next chunk, so the type byte
   * is always patched before anything reads it).
   */
  rewrite(input: Uint8Array): Uint8Array {
    let chunk = input;
    if (this.#partial) {
      chunk = new Uint8Array(this.#partial.length + input.length);
      chunk.set(this.#partial);
      chunk.set(input, this.#partial.length);
      this.#partial = undefined;
    }
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.#skip > 0) {
        const take = Math.min(this.#skip, n - i);
        this.#skip -= take;
        i += take;
        continue;
      }
      if (n - i < FRAME_HEADER) {
        this.#partial = chunk.slice(i);
        return chunk.subarray(0, i);
      }
      if (chunk[i + 3] === GOAWAY) chunk[i + 3] = IGNORED_TYPE;
      this.#skip = (chunk[i] << 16) | (chunk[i + 1] << 8) | chunk[i + 2];
      i += FRAME_HEADER;
    }
    return chunk;
  }
}

/**
 * The socket as node:http2 should see it: reads pass through the rewriter,
 * writes go straight to the socket.
 */
export function guardGoaway(socket: Duplex): Duplex {
  const rewriter = new GoawayRewriter();
  const guarded = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk, encoding, callback) {
      socket.write(chunk, encoding, callback);
    },
    writev(chunks, callback) {
      socket.cork();
      for (let i = 0; i < chunks.length - 1; i++) socket.write(chunks[i].chunk);
      socket.write(chunks[chunks.length - 1].chunk, callback);
      socket.uncork();
    },
    final(callback) {
      socket.end(callback);
    },
    destroy(err, callback) {
      socket.destroy(err ?? undefined);
      callback(err);
    },
  });
  socket.on("data", (chunk: Uint8Array) => {
    const ready = rewriter.rewrite(chunk);
    if (ready.length > 0 && !guarded.push(ready)) socket.pause();
  });
  // node:http2 destroys the socket with its session's error ("Protocol error"); unheard, that
  // 'error' event would be an uncaught exception.
  guarded.on("error", () => {});
  socket.on("end", () => guarded.push(null));
  socket.on("close", () => guarded.destroy());
  socket.on("error", (err) => guarded.destroy(err));
  return guarded;
}
