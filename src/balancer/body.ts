/**
 * Request-body handling for retries and response-body tracking for
 * in-flight counts.
 *
 * @module
 */

/** Methods RFC 9110 §9.2.2 calls idempotent: safe to send again after a failure. */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set([
  "GET",
  "HEAD",
  "OPTIONS",
  "PUT",
  "DELETE",
  "TRACE",
]);

/**
 * A request body made ready for (possibly) several attempts.
 * - `none`: no body; every attempt can reuse the request.
 * - `kept`: the whole body is in memory (at most the retry body limit), so
 *   any attempt can resend it.
 * - `stream`: too large (or of unknown length and longer than the limit) to
 *   keep; it goes out once and is never replayed.
 */
export type PreparedBody =
  | { kind: "none" }
  | { kind: "kept"; bytes: Uint8Array<ArrayBuffer> }
  | { kind: "stream"; body: ReadableStream<Uint8Array> };

/**
 * Keeps a request body of up to `limit` bytes in memory so a retry can send
 * it again. A Content-Length above the limit streams straight through
 * without reading anything; a body of unknown length (chunked) is read up to
 * the limit: when it ends before, it is kept, otherwise the bytes read so far
 * are sent first and the rest streams after them.
 */
export async function prepareBody(req: Request, limit: number): Promise<PreparedBody> {
  if (req.body === null) return { kind: "none" };
  const declared = req.headers.get("content-length");
  if (declared !== null) {
    const length = Number(declared);
    if (length === 0) {
      await req.body.cancel();
      return { kind: "kept", bytes: new Uint8Array(0) };
    }
    if (!(length <= limit)) return { kind: "stream", body: req.body };
    return { kind: "kept", bytes: new Uint8Array(await req.arrayBuffer()) };
  }
  const reader = req.body.getReader();
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  let size = 0;
  while (size <= limit) {
    const { value, done } = await reader.read();
    if (done) return { kind: "kept", bytes: concat(chunks, size) };
    chunks.push(value);
    size += value.byteLength;
  }
  // Over the limit: replay what was read, then the rest of the stream.
  const head = chunks;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const chunk = head.shift();
      if (chunk) return controller.enqueue(chunk);
      const { value, done } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return { kind: "stream", body };
}

function concat(chunks: Uint8Array<ArrayBuffer>[], size: number): Uint8Array<ArrayBuffer> {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** How a tracked response body ended. */
export type BodyEnd = "done" | "cancel" | "error";

/**
 * Returns `res` with a body that calls `onEnd` exactly once when it has been
 * read to the end, cancelled by the client, or failed upstream — so an
 * in-flight count covers the whole transfer, not just the headers. A
 * response without a body ends immediately.
 */
export function trackBody(res: Response, onEnd: (how: BodyEnd, err?: unknown) => void): Response {
  const source = res.body;
  if (source === null) {
    onEnd("done");
    return res;
  }
  const reader = source.getReader();
  let ended = false;
  const end = (how: BodyEnd, err?: unknown) => {
    if (ended) return;
    ended = true;
    onEnd(how, err);
  };
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (err) {
        end("error", err);
        controller.error(err);
        return;
      }
      if (chunk.done) {
        end("done");
        controller.close();
      } else {
        controller.enqueue(chunk.value);
      }
    },
    cancel(reason) {
      end("cancel");
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return new Response(body, {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
  });
}
