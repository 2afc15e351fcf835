/**
 * A byte-level guard in front of node:http2 in Deno 2.9: rewrites the
 * last-stream-id of every GOAWAY the client sends to 2^31-2.
 *
 * Why: Deno's node:http2 (nghttp2 inside) aborts the whole process on a
 * client GOAWAY that arrives while it still holds closed streams
 * (`nghttp2_session.c: find_stream_on_goaway_func: Assertion
 * 'stream->closed_next == NULL' failed`); clients send GOAWAY with
 * last-stream-id 0 when they are done (nghttp, curl). A client's
 * last-stream-id names the server-initiated streams it will still
 * process; this server never initiates one (push is off), so the
 * highest even id says the same thing and makes nghttp2 skip that code
 * path.
 *
 * The guard follows the frame boundaries of the client's byte stream
 * (the 24-byte preface, then 9-byte frame headers with their lengths)
 * and copies nothing: a GOAWAY's four id bytes are patched in place.
 *
 * @module
 */
import { Duplex } from "node:stream";

const PREFACE_LENGTH = 24;
const FRAME_HEADER = 9;
const GOAWAY = 0x7;
/** The id written: the highest a server-initiated (even) stream can have. */
const LAST_ID_BYTES = [0x7f, 0xff, 0xff, 0xfe];

/** Tracks frame boundaries across reads and patches GOAWAY frames in place. */
export class GoawayRewriter {
  /** Bytes still to skip: the preface, then each frame's payload. */
  #skip = PREFACE_LENGTH;
  /** A frame header split across reads. */
  #header = new Uint8Array(FRAME_HEADER);
  #headerFill = 0;
  /** Bytes of the current GOAWAY's last-stream-id still to overwrite (0 = not in one). */
  #patch = 0;

  /** Patches `chunk` (in place) and returns it. */
  rewrite(chunk: Uint8Array): Uint8Array {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.#skip > 0) {
        const take = Math.min(this.#skip, n - i);
        if (this.#patch > 0) {
          const p = Math.min(this.#patch, take);
          for (let k = 0; k < p; k++) {
            // 2^31-2, reserved bit clear: even, as the id of a server-initiated stream must be
            // (nghttp2 fails the session with PROTOCOL_ERROR on an odd one).
            chunk[i + k] = LAST_ID_BYTES[4 - (this.#patch - k)];
          }
          this.#patch -= p;
        }
        this.#skip -= take;
        i += take;
        continue;
      }
      const take = Math.min(FRAME_HEADER - this.#headerFill, n - i);
      this.#header.set(chunk.subarray(i, i + take), this.#headerFill);
      this.#headerFill += take;
      i += take;
      if (this.#headerFill < FRAME_HEADER) break;
      this.#headerFill = 0;
      const h = this.#header;
      this.#skip = (h[0] << 16) | (h[1] << 8) | h[2];
      this.#patch = h[3] === GOAWAY && this.#skip >= 8 ? 4 : 0;
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
    if (!guarded.push(rewriter.rewrite(chunk))) socket.pause();
  });
  // node:http2 destroys the socket with its session's error ("Protocol error"); unheard, that
  // 'error' event would be an uncaught exception.
  guarded.on("error", () => {});
  socket.on("end", () => guarded.push(null));
  socket.on("close", () => guarded.destroy());
  socket.on("error", (err) => guarded.destroy(err));
  return guarded;
}
