/**
 * The compression phase: a {@linkcode Wrapper} that encodes the response of the phase it
 * wraps when the client accepts it and the response is worth it.
 *
 * Where the work runs (see `INLINE_MAX_BYTES` in src/workers for the measurement):
 * - known length ≤ `inlineMaxBytes`: one-shot node:zlib on the main thread (cheaper than a
 *   worker round trip);
 * - known length above that (up to `maxBufferBytes`): buffered and compressed in the worker
 *   pool, so the event loop keeps serving small requests meanwhile; if the pool refuses or
 *   fails the task, it is streamed through a compressor here instead, so the request still
 *   answers;
 * - unknown length, larger bodies, or no pool: streamed through a compressor
 *   (node:zlib streams, flushed when the body pauses so slow streams reach the client live).
 *
 * The cache phase wraps *outside* this one, so it stores the encoded variant produced here
 * with `Vary: Accept-Encoding`, and hits are never recompressed.
 *
 * @module
 */
import type { Handler, RequestContext, Wrapper } from "../context/mod.ts";
import type { MetricFamily, StatsSource } from "../stats/metric.ts";
import { INLINE_MAX_BYTES, type WorkerPool } from "../workers/mod.ts";
import { compressStream, compressSync, type Encoding, SUPPORTED_ENCODINGS } from "./codec.ts";
import { hasNoTransform, isCompressible, mergeVary, negotiate, weakenEtag } from "./negotiate.ts";

export interface CompressionOptions {
  /** ENABLE_COMPRESSION; when false the wrapper passes responses through untouched. */
  enabled: boolean;
  /** COMPRESSION_ENCODINGS, in server preference order. Codings this build lacks are dropped. */
  encodings: readonly Encoding[];
  /** COMPRESSION_MIN_SIZE: smaller known-length bodies are sent as they are. Default 1024. */
  minSize?: number;
  /** Pool for large bodies; without one they are streamed on the main thread. */
  pool?: WorkerPool;
  /** Known-length bodies up to this many bytes compress inline. Default INLINE_MAX_BYTES. */
  inlineMaxBytes?: number;
  /** Known-length bodies above this are streamed rather than buffered. Default 16 MiB. */
  maxBufferBytes?: number;
}

/** Why a response was sent without compression. */
export type SkipReason =
  | "head"
  | "status"
  | "no-body"
  | "already-encoded"
  | "no-transform"
  | "type"
  | "too-small"
  | "not-accepted"
  | "no-gain";

export interface CompressionSnapshot {
  enabled: boolean;
  encodings: Encoding[];
  compressed: Record<Encoding, number>;
  bytes_in: number;
  bytes_out: number;
  /** bytes_out / bytes_in over compressed responses (0 when none yet). */
  ratio: number;
  inline: number;
  pooled: number;
  streamed: number;
  pool_fallbacks: number;
  skipped: Record<SkipReason, number>;
}

export interface Compression extends StatsSource {
  readonly wrap: Wrapper;
  /** The codings actually negotiated (COMPRESSION_ENCODINGS minus unavailable ones). */
  readonly encodings: readonly Encoding[];
  snapshot(): CompressionSnapshot;
  metrics(): MetricFamily[];
}

const NO_BODY_STATUS = new Set([204, 206, 304]);

/** A stream over `bytes` in slices of `size`. */
function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.byteLength) return controller.close();
      controller.enqueue(bytes.subarray(offset, offset + size));
      offset += size;
    },
  });
}

function concat(chunks: Uint8Array[], size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

export function createCompression(options: CompressionOptions): Compression {
  const encodings = options.encodings.filter((e) => SUPPORTED_ENCODINGS.includes(e));
  const minSize = options.minSize ?? 1024;
  const inlineMax = options.inlineMaxBytes ?? INLINE_MAX_BYTES;
  const maxBuffer = options.maxBufferBytes ?? 16 * 1024 * 1024;
  const pool = options.pool;

  const compressed: Record<Encoding, number> = { br: 0, zstd: 0, gzip: 0, deflate: 0 };
  const skipped: Record<SkipReason, number> = {
    "head": 0,
    "status": 0,
    "no-body": 0,
    "already-encoded": 0,
    "no-transform": 0,
    "type": 0,
    "too-small": 0,
    "not-accepted": 0,
    "no-gain": 0,
  };
  const paths = { inline: 0, pooled: 0, streamed: 0, pool_fallbacks: 0 };
  let bytesIn = 0;
  let bytesOut = 0;

  /** Returns the response with new headers (fetch responses have immutable ones). */
  function withHeaders(res: Response, body: BodyInit | null, headers: Headers): Response {
    return new Response(body, { status: res.status, statusText: res.statusText, headers });
  }

  function skip(res: Response, reason: SkipReason, vary: boolean): Response {
    skipped[reason]++;
    if (!vary) return res;
    const headers = new Headers(res.headers);
    const merged = mergeVary(headers.get("vary"));
    if (merged === headers.get("vary")) return res;
    headers.set("vary", merged);
    return withHeaders(res, res.body, headers);
  }

  function encodedHeaders(res: Response, encoding: Encoding): Headers {
    const headers = new Headers(res.headers);
    headers.set("content-encoding", encoding);
    headers.set("vary", mergeVary(headers.get("vary")));
    const etag = weakenEtag(headers.get("etag"));
    if (etag) headers.set("etag", etag);
    // Byte ranges of the identity body do not apply to the encoded one.
    headers.delete("accept-ranges");
    return headers;
  }

  async function compressBuffered(
    res: Response,
    encoding: Encoding,
    input: ArrayBuffer,
  ): Promise<Response> {
    let output: Uint8Array<ArrayBuffer>;
    if (pool && input.byteLength > inlineMax) {
      try {
        // Idempotent: the pool copies the input, so a failed task leaves it for the fallback.
        const out = await pool.run<ArrayBuffer>(
          { kind: "compress", encoding, data: input, idempotent: true },
          [input],
        );
        output = new Uint8Array(out);
        paths.pooled++;
      } catch {
        // Pool full, or the task failed twice: stream it here rather than hold the event
        // loop for the whole body at once (the compressor yields between 64 KiB chunks).
        paths.pool_fallbacks++;
        return compressStreaming(res, encoding, chunked(new Uint8Array(input), 64 * 1024));
      }
    } else {
      output = compressSync(encoding, new Uint8Array(input));
      paths.inline++;
    }
    if (output.byteLength >= input.byteLength) {
      // Incompressible content: the identity body is smaller; the choice still varied.
      const headers = new Headers(res.headers);
      headers.set("vary", mergeVary(headers.get("vary")));
      skipped["no-gain"]++;
      return withHeaders(res, input, headers);
    }
    compressed[encoding]++;
    bytesIn += input.byteLength;
    bytesOut += output.byteLength;
    const headers = encodedHeaders(res, encoding);
    headers.set("content-length", String(output.byteLength));
    return withHeaders(res, output, headers);
  }

  /**
   * A body of unknown length: reads up to `minSize` bytes first. If it ends there it is too
   * small (sent as is); if it ends within `inlineMax` it is compressed in one go; otherwise it
   * is streamed, starting with the bytes already read.
   */
  async function compressUnknownLength(res: Response, encoding: Encoding): Promise<Response> {
    const reader = res.body!.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    let done = false;
    while (size < minSize) {
      const r = await reader.read();
      if (r.done) {
        done = true;
        break;
      }
      chunks.push(r.value);
      size += r.value.byteLength;
    }
    if (done) {
      const bytes = concat(chunks, size);
      if (size < minSize) {
        skipped["too-small"]++;
        const headers = new Headers(res.headers);
        headers.set("vary", mergeVary(headers.get("vary")));
        headers.set("content-length", String(size));
        return withHeaders(res, bytes, headers);
      }
      return compressBuffered(res, encoding, bytes.buffer);
    }
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const c of chunks) controller.enqueue(c);
      },
      async pull(controller) {
        const r = await reader.read();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    });
    return compressStreaming(res, encoding, body);
  }

  function compressStreaming(
    res: Response,
    encoding: Encoding,
    source: ReadableStream<Uint8Array> = res.body!,
  ): Response {
    compressed[encoding]++;
    paths.streamed++;
    const headers = encodedHeaders(res, encoding);
    headers.delete("content-length");
    const countIn = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, c) {
        bytesIn += chunk.byteLength;
        c.enqueue(chunk);
      },
    });
    const countOut = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, c) {
        bytesOut += chunk.byteLength;
        c.enqueue(chunk);
      },
    });
    const body = source.pipeThrough(countIn).pipeThrough(compressStream(encoding))
      .pipeThrough(countOut);
    return withHeaders(res, body, headers);
  }

  function decide(req: Request, res: Response): Promise<Response> | Response {
    const h = res.headers;
    if (NO_BODY_STATUS.has(res.status) || res.status < 200 || h.has("content-range")) {
      return skip(res, "status", false);
    }
    const ce = h.get("content-encoding");
    if (ce && ce.trim().toLowerCase() !== "identity") return skip(res, "already-encoded", false);
    if (!isCompressible(h.get("content-type"))) return skip(res, "type", false);
    if (hasNoTransform(h.get("cache-control"))) return skip(res, "no-transform", false);
    const lengthHeader = h.get("content-length");
    const length = lengthHeader === null ? undefined : Number(lengthHeader);
    if (length !== undefined && length < minSize) return skip(res, "too-small", false);
    // From here on the outcome depends on Accept-Encoding: caches must know (Vary).
    if (req.method === "HEAD") return skip(res, "head", true);
    if (!res.body) return skip(res, "no-body", true);
    const encoding = negotiate(req.headers.get("accept-encoding"), encodings);
    if (!encoding) return skip(res, "not-accepted", true);
    if (length === undefined || !Number.isFinite(length)) {
      return compressUnknownLength(res, encoding);
    }
    if (length <= inlineMax || (pool && length <= maxBuffer)) {
      return res.arrayBuffer().then((input) => compressBuffered(res, encoding, input));
    }
    return compressStreaming(res, encoding);
  }

  const wrap: Wrapper = (next: Handler): Handler => {
    if (!options.enabled || encodings.length === 0) return next;
    return async (req: Request, ctx: RequestContext) => decide(req, await next(req, ctx));
  };

  return {
    name: "compression",
    encodings,
    wrap,
    snapshot(): CompressionSnapshot {
      return {
        enabled: options.enabled,
        encodings: [...encodings],
        compressed: { ...compressed },
        bytes_in: bytesIn,
        bytes_out: bytesOut,
        ratio: bytesIn === 0 ? 0 : Math.round((bytesOut / bytesIn) * 10_000) / 10_000,
        ...paths,
        skipped: { ...skipped },
      };
    },
    metrics(): MetricFamily[] {
      return [
        {
          name: "proxy_compression_responses_total",
          help: "Responses compressed, by coding.",
          type: "counter",
          samples: encodings.map((e) => ({ labels: { encoding: e }, value: compressed[e] })),
        },
        {
          name: "proxy_compression_skipped_total",
          help: "Responses sent uncompressed, by reason.",
          type: "counter",
          samples: (Object.keys(skipped) as SkipReason[]).map((r) => ({
            labels: { reason: r },
            value: skipped[r],
          })),
        },
        {
          name: "proxy_compression_bytes_in_total",
          help: "Bytes before compression.",
          type: "counter",
          samples: [{ value: bytesIn }],
        },
        {
          name: "proxy_compression_bytes_out_total",
          help: "Bytes after compression.",
          type: "counter",
          samples: [{ value: bytesOut }],
        },
      ];
    },
  };
}
