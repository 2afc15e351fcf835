/**
 * Writing a Web `Response` as HTTP/1.1: the head and a small body of known
 * length in one write, larger or unknown bodies streamed (chunked when no
 * Content-Length), no body for HEAD, 1xx, 204 and 304.
 *
 * @module
 */

export const STATUS_TEXT: Record<number, string> = {
  100: "Continue",
  101: "Switching Protocols",
  200: "OK",
  201: "Created",
  202: "Accepted",
  203: "Non-Authoritative Information",
  204: "No Content",
  205: "Reset Content",
  206: "Partial Content",
  207: "Multi-Status",
  300: "Multiple Choices",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  421: "Misdirected Request",
  422: "Unprocessable Content",
  425: "Too Early",
  426: "Upgrade Required",
  428: "Precondition Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  451: "Unavailable For Legal Reasons",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/** Bodies of known length up to this size go out with the head in one write. */
export const SMALL_BODY = 64 * 1024;

let dateValue = "";
let dateAt = 0;
/** The Date header value, recomputed at most once a second. */
function httpDate(): string {
  const now = Date.now();
  if (now - dateAt >= 1000) {
    dateAt = now - (now % 1000);
    dateValue = new Date(dateAt).toUTCString();
  }
  return dateValue;
}

const encoder = new TextEncoder();

/**
 * `head` (a latin1 string: header values are byte strings) followed by
 * `body`, in one new array.
 */
export function encodeHead(head: string, body?: Uint8Array, crlfAfter = false): Uint8Array {
  const bodyLength = body ? body.length : 0;
  const out = new Uint8Array(head.length + bodyLength + (crlfAfter ? 2 : 0));
  const { read, written } = encoder.encodeInto(head, out);
  if (read !== head.length || written !== head.length) {
    // Some byte ≥ 0x80 in a header value: copy code units one by one.
    for (let i = 0; i < head.length; i++) out[i] = head.charCodeAt(i) & 0xff;
  }
  if (body && bodyLength > 0) out.set(body, head.length);
  if (crlfAfter) {
    out[out.length - 2] = 13;
    out[out.length - 1] = 10;
  }
  return out;
}

/**
 * A header field as written to the client: "" for the fields the server
 * frames itself (hop-by-hop fields, a Content-Length that is not a number).
 */
function fieldLine(name: string, value: string): string {
  switch (name) {
    case "content-length": {
      const n = Number(value);
      if (value === "" || !Number.isSafeInteger(n) || n < 0) return "";
      break;
    }
    case "connection":
    case "keep-alive":
    case "transfer-encoding":
    case "proxy-connection":
      return "";
  }
  return name + ": " + value + "\r\n";
}

/** The status line {@linkcode writeResponse} writes. */
function statusLine(status: number, statusText: string): string {
  return "HTTP/1.1 " + status + " " + (statusText || STATUS_TEXT[status] || "") + "\r\n";
}

/**
 * A response head serialised once, exactly as {@linkcode writeResponse}
 * writes a Response with these status and headers plus an `age` and an
 * `x-request-id` field (sorted by name, repeats combined, hop-by-hop fields
 * dropped, Date added when missing): only those two values and the
 * connection's fate are filled in per response. For a cache entry answered
 * many times: the fields are walked once at store time, not per hit.
 */
export class HeadTemplate {
  /** Status line and the fields sorted before `age`. */
  readonly #beforeAge: string;
  /** Fields between `age` and `x-request-id`. */
  readonly #beforeId: string;
  /** Fields after `x-request-id`. */
  readonly #rest: string;
  readonly #hasDate: boolean;

  private constructor(beforeAge: string, beforeId: string, rest: string, hasDate: boolean) {
    this.#beforeAge = beforeAge;
    this.#beforeId = beforeId;
    this.#rest = rest;
    this.#hasDate = hasDate;
  }

  /**
   * The template of a response with `headers`; undefined when they carry an
   * `age` (appending another would combine the two, which a slot cannot say).
   * A stored `x-request-id` is replaced by the slot, as setting it would.
   */
  static of(status: number, headers: Headers): HeadTemplate | undefined {
    if (headers.has("age")) return undefined;
    const parts = [statusLine(status, ""), "", ""];
    let date = false;
    headers.forEach((value, name) => {
      if (name === "x-request-id") return;
      if (name === "date") date = true;
      parts[name < "age" ? 0 : name < "x-request-id" ? 1 : 2] += fieldLine(name, value);
    });
    return new HeadTemplate(parts[0], parts[1], parts[2], date);
  }

  /** The head (with its blank line) for these values; a latin1 string for {@linkcode encodeHead}. */
  render(age: string, requestId: string, keepAlive: boolean): string {
    return this.#beforeAge + "age: " + age + "\r\n" + this.#beforeId + "x-request-id: " +
      requestId + "\r\n" + this.#rest + (this.#hasDate ? "" : "date: " + httpDate() + "\r\n") +
      (keepAlive ? "\r\n" : "connection: close\r\n\r\n");
  }
}

/** How the server writes to the client (with its own timeouts and byte counts). */
export interface ResponseSink {
  /** Writes every byte of `p`; false when the client is gone. */
  write(p: Uint8Array): Promise<boolean>;
}

export interface WriteOptions {
  /** The request was HEAD: no body, whatever the headers say. */
  head: boolean;
  /** HTTP/1.x minor version of the request. */
  minor: number;
  /** The connection stays open after this response. */
  keepAlive: boolean;
}

export interface WriteResult {
  /** Every byte of the response was written. */
  ok: boolean;
  /** The response's framing allows another request on the connection. */
  keepAlive: boolean;
  /** Body bytes written. */
  bytes: number;
}

/** Writes `res` to the client; never throws. */
export async function writeResponse(
  sink: ResponseSink,
  res: Response,
  o: WriteOptions,
): Promise<WriteResult> {
  const status = res.status;
  let keepAlive = o.keepAlive;
  let head = statusLine(status, res.statusText);
  let length = -1;
  let date = false;
  // forEach, not for…of: Deno's Headers iterator costs several times more per response.
  res.headers.forEach((value, name) => {
    const line = fieldLine(name, value);
    if (line === "") return;
    if (name === "content-length") length = Number(value);
    else if (name === "date") date = true;
    head += line;
  });
  if (!date) head += "date: " + httpDate() + "\r\n";
  const bodiless = o.head || status < 200 || status === 204 || status === 304;
  if (bodiless) {
    const body = res.body;
    if (body) body.cancel().catch(() => {});
    if (length < 0 && !o.head && status >= 200 && status !== 204 && status !== 304) {
      head += "content-length: 0\r\n";
    }
    head += keepAlive ? "\r\n" : "connection: close\r\n\r\n";
    return { ok: await sink.write(encodeHead(head)), keepAlive, bytes: 0 };
  }
  if (length >= 0 && length <= SMALL_BODY) {
    // bytes() before any look at `res.body`: reading that getter makes Deno build a stream
    // that bytes() then drains (~3 µs of a proxied 1 KiB response); untouched, a body given
    // as bytes is handed over as it is.
    let bytes: Uint8Array;
    try {
      bytes = await res.bytes();
    } catch {
      return { ok: false, keepAlive: false, bytes: 0 };
    }
    if (bytes.length === 0 && res.body === null) {
      // No body at all: headers that promise bytes can never be kept.
      if (length > 0) keepAlive = false;
      head += keepAlive ? "\r\n" : "connection: close\r\n\r\n";
      return { ok: await sink.write(encodeHead(head)), keepAlive, bytes: 0 };
    }
    if (bytes.length !== length) {
      // The body disagrees with its Content-Length: never pass a short or long body off as
      // complete; the client sees a failed transfer.
      return { ok: false, keepAlive: false, bytes: 0 };
    }
    head += keepAlive ? "\r\n" : "connection: close\r\n\r\n";
    const ok = await sink.write(encodeHead(head, bytes));
    return { ok, keepAlive, bytes: ok ? length : 0 };
  }
  const body = res.body;
  if (body === null) {
    if (length < 0) head += "content-length: 0\r\n";
    else if (length > 0) keepAlive = false; // headers promise bytes that will never come
    head += keepAlive ? "\r\n" : "connection: close\r\n\r\n";
    return { ok: await sink.write(encodeHead(head)), keepAlive, bytes: 0 };
  }
  const chunked = length < 0 && o.minor === 1;
  if (length < 0 && !chunked) keepAlive = false; // HTTP/1.0: the end of the body is the close
  if (chunked) head += "transfer-encoding: chunked\r\n";
  head += keepAlive ? "\r\n" : "connection: close\r\n\r\n";
  const reader = body.getReader();
  let sent = 0;
  let first = true;
  try {
    while (true) {
      const r = await reader.read();
      if (r.done) {
        if (first) {
          const ok = await sink.write(
            encodeHead(chunked ? head + "0\r\n\r\n" : head),
          );
          if (!ok) return { ok: false, keepAlive: false, bytes: sent };
        } else if (chunked && !(await sink.write(LAST_CHUNK))) {
          return { ok: false, keepAlive: false, bytes: sent };
        }
        break;
      }
      const piece = r.value;
      if (piece.length === 0) continue;
      if (length >= 0 && sent + piece.length > length) {
        // Longer than announced: the rest would desynchronise the client.
        await reader.cancel().catch(() => {});
        return { ok: false, keepAlive: false, bytes: sent };
      }
      let out: Uint8Array;
      if (chunked) {
        const size = piece.length.toString(16) + "\r\n";
        out = encodeHead(first ? head + size : size, piece, true);
      } else {
        out = first ? encodeHead(head, piece) : piece;
      }
      first = false;
      if (!(await sink.write(out))) {
        await reader.cancel().catch(() => {});
        return { ok: false, keepAlive: false, bytes: sent };
      }
      sent += piece.length;
    }
  } catch {
    // The body failed mid-way (upstream gone): cut the connection so the client sees a
    // failed transfer, never a short body passed off as complete.
    return { ok: false, keepAlive: false, bytes: sent };
  }
  if (length >= 0 && sent !== length) return { ok: false, keepAlive: false, bytes: sent };
  return { ok: true, keepAlive, bytes: sent };
}

const LAST_CHUNK = new TextEncoder().encode("0\r\n\r\n");

/** A plain-text answer of the server's own (parse errors, timeouts), closing the connection. */
export function plainResponse(status: number, reason: string, close = true): Uint8Array {
  const body = reason + "\n";
  const bytes = encoder.encode(body);
  return encodeHead(
    `HTTP/1.1 ${status} ${
      STATUS_TEXT[status] ?? ""
    }\r\ncontent-type: text/plain; charset=utf-8\r\n` +
      `content-length: ${bytes.length}\r\ndate: ${httpDate()}\r\n` +
      (close ? "connection: close\r\n\r\n" : "\r\n"),
    bytes,
  );
}
