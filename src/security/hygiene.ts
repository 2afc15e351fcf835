/**
 * Request hygiene: body size (413), header count and size (431), and framing
 * that two parsers could read differently (request smuggling, 400).
 *
 * The node:http listener enforces the byte size of the header block itself
 * (`maxHeaderSize`) and the time to receive it (`headersTimeout`); these
 * helpers cover what a listener does not, and work for both listeners.
 *
 * @module
 */
import type { HeaderView, Wrapper } from "../context/mod.ts";
import { plainText } from "../respond/mod.ts";

/** Default MAX_HEADER_SIZE: bytes of the whole header block (node:http's default). */
export const DEFAULT_MAX_HEADER_SIZE = 16 * 1024;
/** Default MAX_HEADER_COUNT. */
export const DEFAULT_MAX_HEADER_COUNT = 100;
/** Default MAX_BODY_SIZE: 10 MiB. */
export const DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024;

/** Thrown into a request body stream that grows past MAX_BODY_SIZE. */
export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body exceeds MAX_BODY_SIZE (${limit} bytes)`);
    this.name = "BodyTooLargeError";
  }
}

/** The refusals here close the connection: what follows a bad head cannot be trusted. */
const text = (status: number, body: string, extra?: Record<string, string>) =>
  plainText(status, body, { connection: "close", ...extra });

/**
 * 431 when a request has more than `max` header fields, else undefined.
 * Accepts a Headers object, node's `rawHeaders` array (name, value, name, value...)
 * or a field count.
 */
export function checkHeaderCount(
  headers: Headers | readonly string[] | number,
  max: number,
): Response | undefined {
  let count: number;
  if (typeof headers === "number") count = headers;
  else if (Array.isArray(headers)) count = headers.length / 2;
  else {
    count = 0;
    for (const _ of headers as Headers) count++;
  }
  if (count <= max) return undefined;
  return text(
    431,
    `431 Request Header Fields Too Large: ${count} header fields, at most ${max} (MAX_HEADER_COUNT)`,
  );
}

/** 431 when the header block (names, values, ": " and CRLF) exceeds `maxBytes`, else undefined. */
export function checkHeaderSize(headers: HeaderView, maxBytes: number): Response | undefined {
  let size = 0;
  headers.forEach((v, k) => size += k.length + v.length + 4);
  if (size <= maxBytes) return undefined;
  return text(
    431,
    `431 Request Header Fields Too Large: ${size} bytes of headers, at most ${maxBytes} (MAX_HEADER_SIZE)`,
  );
}

/**
 * 400 for framing two HTTP parsers might disagree on: Content-Length together
 * with Transfer-Encoding, several different Content-Length values, a
 * Content-Length that is not a number, or a Transfer-Encoding whose last coding
 * is not chunked. Undefined when the framing is unambiguous.
 */
export function checkFraming(headers: Pick<HeaderView, "get">): Response | undefined {
  const cl = headers.get("content-length");
  const te = headers.get("transfer-encoding");
  if (cl !== null && te !== null) {
    return text(
      400,
      "400 Bad Request: both Content-Length and Transfer-Encoding (request smuggling attempt?)",
    );
  }
  if (cl !== null) {
    const values = cl.split(",").map((v) => v.trim());
    if (!values.every((v) => /^[0-9]{1,15}$/.test(v)) || new Set(values).size !== 1) {
      return text(400, `400 Bad Request: invalid Content-Length "${cl}"`);
    }
  }
  if (te !== null) {
    const codings = te.toLowerCase().split(",").map((v) => v.trim());
    if (codings.at(-1) !== "chunked" || codings.indexOf("chunked") !== codings.length - 1) {
      return text(400, `400 Bad Request: unsupported Transfer-Encoding "${te}"`);
    }
  }
  return undefined;
}

export interface RequestHygieneOptions {
  /**
   * Most header fields (default 100). `false` skips the count and size pass, for a
   * listener that already checks them on its raw header list: iterating a Headers
   * object costs about 1.5 µs per request.
   */
  readonly maxHeaderCount?: number | false;
  readonly maxHeaderSize?: number;
}

/**
 * Header count/size (431), two Host fields and ambiguous framing (400): the
 * refusal for these header fields, or undefined when they pass.
 */
export function hygieneCheck(
  options: RequestHygieneOptions = {},
): (h: HeaderView) => Response | undefined {
  const counting = options.maxHeaderCount !== false;
  const maxCount = options.maxHeaderCount || DEFAULT_MAX_HEADER_COUNT;
  const maxSize = options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE;
  return (h) => {
    // One pass for both limits: this runs on every request. forEach, not for…of: Deno's
    // Headers iterator costs several times more (both visit the fields combined, sorted).
    let count = 0, size = 0;
    if (counting) {
      h.forEach((v, k) => {
        count++;
        size += k.length + v.length + 4;
      });
    }
    // RFC 9112 §3.2: more than one Host field is a 400 (Headers joins repeats with ", ").
    if (h.get("host")?.includes(",")) {
      return text(400, "400 Bad Request: more than one Host header");
    }
    return (count > maxCount ? checkHeaderCount(count, maxCount) : undefined) ??
      (size > maxSize ? checkHeaderSize(h, maxSize) : undefined) ??
      (h.has("content-length") || h.has("transfer-encoding") ? checkFraming(h) : undefined);
  };
}

/** Header count/size (431), two Host fields and ambiguous framing (400), as a phase. */
export function requestHygienePhase(options: RequestHygieneOptions = {}): Wrapper {
  const refusalOf = hygieneCheck(options);
  return (next) => (req, ctx) => {
    const refusal = refusalOf(req.headers);
    return refusal ? Promise.resolve(refusal) : next(req, ctx);
  };
}

/**
 * Wraps a body stream so that it errors with {@linkcode BodyTooLargeError} once
 * more than `maxBytes` have passed; `onExceeded` runs when that happens.
 */
export function limitStream(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
  onExceeded: () => void,
): ReadableStream<Uint8Array> {
  let seen = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > maxBytes) {
          onExceeded();
          controller.error(new BodyTooLargeError(maxBytes));
          return;
        }
        controller.enqueue(chunk);
      },
    }),
  );
}

const tooLarge = (max: number) =>
  text(413, `413 Content Too Large: request body exceeds ${max} bytes (MAX_BODY_SIZE)`);

/**
 * A phase: 413 when Content-Length exceeds `maxBytes`; a body without a
 * length (chunked) is wrapped so that it errors once it crosses the limit, and
 * whatever the later phases answered is then replaced by 413. `maxBytes` 0
 * disables the check.
 */
export function bodyLimitPhase(maxBytes: number): Wrapper {
  return (next) => {
    if (maxBytes <= 0) return next;
    return async (req, ctx) => {
      const cl = req.headers.get("content-length");
      if (cl !== null) {
        // The listener delivers exactly Content-Length bytes.
        return Number(cl.split(",")[0]) > maxBytes ? tooLarge(maxBytes) : await next(req, ctx);
      }
      if (req.body === null) return await next(req, ctx);
      let exceeded = false;
      const body = limitStream(req.body, maxBytes, () => (exceeded = true));
      const limited = new Request(req, { body, duplex: "half" } as RequestInit);
      let res: Response;
      try {
        res = await next(limited, ctx);
      } catch (err) {
        if (!exceeded) throw err;
        return tooLarge(maxBytes);
      }
      if (!exceeded) return res;
      // Whatever the forwarder made of the aborted upload (usually a 502) is not the client's answer.
      await res.body?.cancel().catch(() => {});
      return tooLarge(maxBytes);
    };
  };
}
