/**
 * The admission phase: at most MAX_CONCURRENCY requests do upstream work at
 * once, the rest wait FIFO or get 503 with Retry-After. It runs after the
 * cache lookup (Pingora's order), so a hit never takes a slot. A slot is held
 * until the response has been sent, not just its head.
 *
 * @module
 */
import type { Handler, Wrapper } from "../context/mod.ts";
import { plainText } from "../respond/mod.ts";
import { type Admission, AdmissionRejected } from "./admission.ts";

/** Admits, queues or answers 503 with Retry-After. */
export function admissionPhase(admission: Admission): Wrapper {
  return (next: Handler): Handler => async (req, ctx) => {
    let release: () => void;
    try {
      // A free slot does not touch the request's AbortSignal, which Deno creates lazily.
      release = admission.tryGrant() ?? await admission.acquire(req.signal);
    } catch (err) {
      if (!(err instanceof AdmissionRejected)) throw err;
      return plainText(503, err.message, { "retry-after": String(err.retryAfter) });
    }
    let res: Response;
    try {
      res = await next(req, ctx);
    } catch (err) {
      release();
      throw err;
    }
    if (ctx.kind === "upgrade") {
      // The handshake is done: a WebSocket lives for hours and is not upstream *work*.
      release();
      return res;
    }
    const completed = ctx.conn.completed;
    if (completed !== undefined) {
      completed.then(release, release);
      return res;
    }
    return releaseWhenSent(req, res, release);
  };
}

/**
 * Without the listener's `completed`, the body is wrapped and the slot released
 * once it has been read to the end, cancelled or failed.
 */
function releaseWhenSent(req: Request, res: Response, release: () => void): Response {
  const source = res.body;
  // A HEAD response body is never read: a wrapper would never finish and the slot would leak.
  if (source === null || req.method === "HEAD") {
    release();
    return res;
  }
  const reader = source.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await reader.read();
        if (done) {
          release();
          controller.close();
        } else {
          controller.enqueue(value);
        }
      } catch (err) {
        release();
        controller.error(err);
      }
    },
    cancel(reason) {
      release();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return new Response(body, {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
  });
}
