/**
 * Request-head parsing from bytes (RFC 9112 §2–§6), strict like llhttp:
 * every byte is checked once, the head is decoded to one string and its
 * pieces are slices of it.
 *
 * Refused (status in brackets): a method that is not a token [400], a
 * lowercase or unknown method [400/501], a control character, space or
 * non-ASCII byte in the request-target [400], a missing version (HTTP/0.9)
 * [400], another HTTP version [505], bare LF or CR, obs-fold, whitespace
 * before a colon, a header name that is not a token, a control character in
 * a value [400], more than MAX_HEADER_COUNT fields [431], HTTP/1.1 without
 * exactly one Host [400], Content-Length that is not one plain number,
 * repeated Content-Length, Transfer-Encoding other than a single
 * `chunked`, or both together [400] (request smuggling).
 *
 * @module
 */

/** A parsed request head. */
export interface RequestHead {
  readonly method: string;
  readonly target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: number;
  /** Field names as sent, values without surrounding whitespace. */
  readonly headers: [string, string][];
  readonly host: string | undefined;
  /** -1 when absent. */
  readonly contentLength: number;
  readonly chunked: boolean;
  /** The connection may serve another request after this one (before the response's say). */
  readonly keepAlive: boolean;
  readonly expectContinue: boolean;
  /** `Connection: upgrade` with an `Upgrade` field, on HTTP/1.1. */
  readonly upgrade: boolean;
}

/** A head that must be refused; the connection is closed after the answer. */
export interface HeadError {
  readonly status: number;
  readonly reason: string;
}

export interface HeadLimits {
  maxHeaderCount: number;
}

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;
const COLON = 58;

/** RFC 9110 §5.6.2 tchar. */
const TCHAR = new Uint8Array(256);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9!#$%&'*+\-.^_`|~]/.test(ch)) TCHAR[c] = 1;
}

/**
 * Methods served (llhttp's list plus PURGE and QUERY); others that are
 * upper-case tokens get 501, anything else 400.
 */
const METHODS = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "OPTIONS",
  "PATCH",
  "CONNECT",
  "TRACE",
  "PURGE",
  "QUERY",
  "PROPFIND",
  "PROPPATCH",
  "MKCOL",
  "COPY",
  "MOVE",
  "LOCK",
  "UNLOCK",
  "SEARCH",
  "REPORT",
  "MKACTIVITY",
  "CHECKOUT",
  "MERGE",
  "MKCALENDAR",
  "LINK",
  "UNLINK",
  "BIND",
  "REBIND",
  "UNBIND",
  "ACL",
]);

/** Longest method looked at; longer is refused before any lookup. */
export const MAX_METHOD_LENGTH = 32;

const ascii = new TextDecoder();

/** Bytes to a string of the same code units (latin1, byte for byte). */
function latin1(buf: Uint8Array, from: number, to: number, allAscii: boolean): string {
  if (allAscii) return ascii.decode(buf.subarray(from, to));
  let s = "";
  for (let i = from; i < to; i += 4096) {
    s += String.fromCharCode.apply(
      null,
      buf.subarray(i, Math.min(to, i + 4096)) as unknown as number[],
    );
  }
  return s;
}

function err(status: number, reason: string): HeadError {
  return { status, reason };
}

/**
 * Checks the request line `buf[from, lineEnd)` (without its CRLF) and returns
 * an error, or undefined when it is well-formed. Called as soon as the first
 * line is in, so an HTTP/0.9 line is refused at once, not at the header
 * timeout.
 */
export function checkRequestLine(
  buf: Uint8Array,
  from: number,
  lineEnd: number,
): HeadError | undefined {
  let i = from;
  let lower = false;
  while (i < lineEnd && buf[i] !== SP) {
    const c = buf[i];
    if (TCHAR[c] === 0) return err(400, "malformed method");
    if (c >= 97 && c <= 122) lower = true;
    i++;
  }
  const methodLength = i - from;
  if (methodLength === 0) return err(400, "malformed request line");
  if (methodLength > MAX_METHOD_LENGTH) return err(501, "method not implemented");
  if (i === lineEnd) return err(400, "malformed request line: no request-target");
  const targetStart = ++i;
  while (i < lineEnd && buf[i] !== SP) {
    const c = buf[i];
    if (c <= SP || c >= 127) return err(400, "malformed request-target");
    i++;
  }
  if (i === targetStart) return err(400, "malformed request line: empty request-target");
  if (i === lineEnd) {
    return err(400, "HTTP/0.9 request lines are not served: the HTTP version is missing");
  }
  i++; // version: HTTP/d.d and nothing after it
  if (
    lineEnd - i !== 8 || buf[i] !== 72 || buf[i + 1] !== 84 || buf[i + 2] !== 84 ||
    buf[i + 3] !== 80 || buf[i + 4] !== 47 || buf[i + 6] !== 46 ||
    !isDigit(buf[i + 5]) || !isDigit(buf[i + 7])
  ) {
    return err(400, "malformed request line: bad HTTP version");
  }
  if (buf[i + 5] !== 49 || (buf[i + 7] !== 48 && buf[i + 7] !== 49)) {
    return err(505, "HTTP version not supported: HTTP/1.0 and HTTP/1.1 are");
  }
  if (lower) return err(400, "malformed method: methods are case-sensitive (GET, not get)");
  return undefined;
}

/**
 * Checks the start of a request line still being received: bytes that
 * cannot begin a method (a TLS ClientHello, binary noise) are refused at
 * once instead of waiting for a line end that may never come.
 */
export function checkMethodPrefix(
  buf: Uint8Array,
  from: number,
  end: number,
): HeadError | undefined {
  const stop = Math.min(end, from + MAX_METHOD_LENGTH + 1);
  for (let i = from; i < stop; i++) {
    const c = buf[i];
    if (c === SP) return i === from ? err(400, "malformed request line") : undefined;
    if (c === CR && i > from) return undefined;
    if (TCHAR[c] === 0) return err(400, "malformed method");
  }
  if (stop - from > MAX_METHOD_LENGTH) return err(501, "method not implemented");
  return undefined;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** Case-insensitive comparison of a header name in `buf` with a lower-case ASCII name. */
function nameIs(buf: Uint8Array, from: number, length: number, lower: string): boolean {
  if (length !== lower.length) return false;
  for (let k = 0; k < length; k++) {
    if ((buf[from + k] | 0x20) !== lower.charCodeAt(k)) return false;
  }
  return true;
}

/** Comma-separated tokens, lower-cased and trimmed. */
function tokens(value: string): string[] {
  const out: string[] = [];
  for (const part of value.split(",")) {
    const t = part.trim().toLowerCase();
    if (t !== "") out.push(t);
  }
  return out;
}

/**
 * Parses a complete head: `buf[from, end)` holds the request line and the
 * fields, each line ending in CRLF, followed by the empty line (already
 * checked: every LF has its CR). `lineEnd` is the offset of the request
 * line's CR.
 */
export function parseHead(
  buf: Uint8Array,
  from: number,
  lineEnd: number,
  end: number,
  limits: HeadLimits,
): RequestHead | HeadError {
  const lineError = checkRequestLine(buf, from, lineEnd);
  if (lineError) return lineError;
  // One pass over the field lines: validate bytes, note where names and values are.
  let allAscii = true;
  const spans: number[] = []; // nameStart, nameEnd, valueStart, valueEnd per field
  let i = lineEnd + 2;
  const headEnd = end - 2; // the final empty line's CR
  while (i < headEnd) {
    const nameStart = i;
    const first = buf[i];
    if (first === SP || first === HT) return err(400, "obsolete line folding is not accepted");
    while (buf[i] !== COLON) {
      const c = buf[i];
      if (c === CR) return err(400, "malformed header field: no colon");
      if (c === SP || c === HT) return err(400, "whitespace before a header field's colon");
      if (TCHAR[c] === 0) return err(400, "malformed header field name");
      i++;
    }
    const nameEnd = i;
    if (nameEnd === nameStart) return err(400, "empty header field name");
    i++;
    while (buf[i] === SP || buf[i] === HT) i++;
    const valueStart = i;
    let valueEnd = i;
    while (true) {
      const c = buf[i];
      if (c === CR) {
        if (buf[i + 1] !== LF) return err(400, "bare CR in a header field");
        break;
      }
      if (c < SP) {
        if (c !== HT) return err(400, "control character in a header field value");
      } else if (c === 127) {
        return err(400, "control character in a header field value");
      } else {
        if (c > 127) allAscii = false;
        if (c !== SP) valueEnd = i + 1;
      }
      i++;
    }
    i += 2;
    spans.push(nameStart, nameEnd, valueStart, valueEnd);
    if (spans.length > limits.maxHeaderCount * 4) {
      return err(
        431,
        `Request Header Fields Too Large: more than ${limits.maxHeaderCount} header fields ` +
          `(MAX_HEADER_COUNT)`,
      );
    }
  }
  for (let k = from; k < lineEnd && allAscii; k++) if (buf[k] > 127) allAscii = false;
  const text = latin1(buf, from, headEnd, allAscii);
  // Offsets in `text` are offsets in `buf` minus `from`: one byte is one code unit.
  const sp1 = text.indexOf(" ");
  const sp2 = text.indexOf(" ", sp1 + 1);
  const method = text.slice(0, sp1);
  const target = text.slice(sp1 + 1, sp2);
  const minor = buf[lineEnd - 1] - 48;
  if (!METHODS.has(method)) return err(501, `method ${method} is not implemented`);

  const headers: [string, string][] = new Array(spans.length / 4);
  let host: string | undefined;
  let hosts = 0;
  let contentLength = -1;
  let transferEncoding: string | undefined;
  let connection: string | undefined;
  let expect: string | undefined;
  let upgradeField = false;
  for (let f = 0, h = 0; f < spans.length; f += 4, h++) {
    const ns = spans[f], ne = spans[f + 1];
    const name = text.slice(ns - from, ne - from);
    const value = text.slice(spans[f + 2] - from, spans[f + 3] - from);
    headers[h] = [name, value];
    const len = ne - ns;
    switch (len) {
      case 4:
        if (nameIs(buf, ns, len, "host")) {
          hosts++;
          host = value;
        }
        break;
      case 6:
        if (nameIs(buf, ns, len, "expect")) expect = value;
        break;
      case 7:
        if (nameIs(buf, ns, len, "upgrade")) upgradeField = true;
        break;
      case 10:
        if (nameIs(buf, ns, len, "connection")) {
          connection = connection === undefined ? value : `${connection}, ${value}`;
        }
        break;
      case 14:
        if (nameIs(buf, ns, len, "content-length")) {
          if (contentLength >= 0) return err(400, "more than one Content-Length");
          if (!/^\d{1,15}$/.test(value)) return err(400, "invalid Content-Length");
          contentLength = Number(value);
        }
        break;
      case 17:
        if (nameIs(buf, ns, len, "transfer-encoding")) {
          if (transferEncoding !== undefined) return err(400, "more than one Transfer-Encoding");
          transferEncoding = value;
        }
        break;
    }
  }
  if (hosts > 1) return err(400, "more than one Host header");
  // CONNECT carries its authority in the request-target; clients differ on sending Host with it.
  if (minor === 1 && hosts === 0 && method !== "CONNECT") {
    return err(400, "HTTP/1.1 request without a Host header");
  }
  let chunked = false;
  if (transferEncoding !== undefined) {
    if (contentLength >= 0) {
      return err(400, "both Content-Length and Transfer-Encoding (request smuggling)");
    }
    if (transferEncoding.toLowerCase() !== "chunked") {
      return err(400, `unsupported Transfer-Encoding "${transferEncoding.slice(0, 50)}"`);
    }
    if (minor === 0) return err(400, "Transfer-Encoding in an HTTP/1.0 request");
    chunked = true;
  }
  let close = false;
  let keepAliveAsked = false;
  let upgrade = false;
  if (connection !== undefined) {
    for (const t of tokens(connection)) {
      if (t === "close") close = true;
      else if (t === "keep-alive") keepAliveAsked = true;
      else if (t === "upgrade") upgrade = upgradeField && minor === 1;
    }
  }
  // HTTP/1.0 keeps the connection only when asked to; Connection: close always wins.
  const keepAlive = !close && (minor === 1 || keepAliveAsked);
  const expectContinue = expect !== undefined && expect.toLowerCase() === "100-continue" &&
    minor === 1;
  return {
    method,
    target,
    minor,
    headers,
    host,
    contentLength,
    chunked,
    keepAlive,
    expectContinue,
    upgrade,
  };
}

/** True when `x` is a {@linkcode HeadError}. */
export function isHeadError(x: RequestHead | HeadError): x is HeadError {
  return (x as HeadError).status !== undefined;
}
