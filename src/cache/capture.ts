/**
 * Streams a response body to the client while keeping a copy for the cache.
 *
 * Unlike `ReadableStream.tee()`, nothing is buffered for a slow reader: the
 * client side pulls, and each chunk it pulls is also appended to the copy.
 * Past `maxBytes` the copy is dropped and the body keeps streaming untouched.
 * If the client goes away while the copy is still wanted, the rest of the body
 * is read in the background so the object is still stored (and waiting
 * requests coalesced on it get it).
 *
 * @module
 */

export interface Capture {
  /** The body for the client. */
  readonly stream: ReadableStream<Uint8Array>;
  /** The whole body, or null when it exceeded the cap or failed. */
  readonly done: Promise<Uint8Array<ArrayBuffer> | null>;
}

export function capture(body: ReadableStream<Uint8Array>, maxBytes: number): Capture {
  const reader = body.getReader();
  let chunks: Uint8Array<ArrayBuffer>[] | null = [];
  let size = 0;
  let settle!: (bytes: Uint8Array<ArrayBuffer> | null) => void;
  const done = new Promise<Uint8Array<ArrayBuffer> | null>((r) => settle = r);
  let settled = false;
  const finish = (ok: boolean) => {
    if (settled) return;
    settled = true;
    settle(ok && chunks ? concat(chunks, size) : null);
    chunks = null;
  };
  const read = async (): Promise<ReadableStreamReadResult<Uint8Array>> => {
    let r: ReadableStreamReadResult<Uint8Array>;
    try {
      r = await reader.read();
    } catch (err) {
      finish(false);
      throw err;
    }
    if (r.done) {
      finish(true);
    } else if (chunks !== null) {
      size += r.value.byteLength;
      if (size > maxBytes) finish(false);
      // Copy: the client side may hand the chunk's buffer to the network layer.
      else chunks.push(r.value.slice());
    }
    return r;
  };
  const drain = async () => {
    try {
      while (chunks !== null) {
        const r = await read();
        if (r.done) return;
      }
      await reader.cancel();
    } catch {
      finish(false);
    }
  };
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const r = await read();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      } catch (err) {
        controller.error(err);
      }
    },
    cancel(reason) {
      if (!settled && chunks !== null) {
        drain();
      } else {
        finish(false);
        reader.cancel(reason).catch(() => {/* upstream already gone */});
      }
    },
  }, { highWaterMark: 0 });
  return { stream, done };
}

function concat(chunks: Uint8Array<ArrayBuffer>[], size: number): Uint8Array<ArrayBuffer> {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}
