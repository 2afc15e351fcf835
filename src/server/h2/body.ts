/**
 * A request body off an HTTP/2 stream: whole when it fits
 * REQUEST_BUFFER_SIZE (the app, admission and upstream never wait on the
 * client, as on HTTP/1.1), else a `ReadableStream` that pauses the node
 * stream while nobody reads, so the stream's window holds the client back.
 *
 * @module
 */
import http2 from "node:http2";

/** Resolves with the whole body, or with a stream of it once more than `limit` bytes came. */
export function requestBody(
  stream: http2.ServerHttp2Stream,
  limit: number,
): Promise<Uint8Array | ReadableStream<Uint8Array>> {
  return new Promise((resolve) => {
    const pieces: Uint8Array[] = [];
    let size = 0;
    const onData = (chunk: Uint8Array) => {
      pieces.push(chunk);
      size += chunk.length;
      if (size > limit) {
        off();
        stream.pause();
        resolve(streamed(stream, pieces));
      }
    };
    const onEnd = () => {
      off();
      resolve(concat(pieces, size));
    };
    const onClose = () => {
      off();
      // Reset before the body ended: the caller sees the stream destroyed and stops.
      resolve(concat(pieces, size));
    };
    const off = () => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("close", onClose);
    };
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.on("close", onClose);
  });
}

function concat(pieces: Uint8Array[], size: number): Uint8Array {
  if (pieces.length === 1) return pieces[0];
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of pieces) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** The rest of the body as a pull stream: the first `head` pieces, then what the client sends. */
function streamed(stream: http2.ServerHttp2Stream, head: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const p of head) controller.enqueue(p);
      stream.on("data", (chunk: Uint8Array) => {
        controller.enqueue(chunk);
        if ((controller.desiredSize ?? 0) <= 0) stream.pause();
      });
      stream.once("end", () => controller.close());
      stream.once("close", () => {
        if (!stream.readableEnded) {
          controller.error(new Error("the client reset the stream before the body ended"));
        }
      });
    },
    pull() {
      stream.resume();
    },
    cancel() {
      // The app refused the body: stop the client sending it.
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
    },
  }, { highWaterMark: 4, size: () => 1 });
}
