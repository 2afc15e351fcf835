/**
 * Header hygiene for the upstream hop: hop-by-hop stripping (RFC 9110 §7.6.1),
 * X-Forwarded-* and Via, and the request head the forwarder writes.
 *
 * @module
 */

/** Headers that describe one connection, never forwarded (plus whatever `Connection` names). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Lower-cased, trimmed tokens of a comma-separated header value (`Connection: close, X-Foo`). */
export function headerTokens(value: string): string[] {
  const out: string[] = [];
  for (const part of value.split(",")) {
    const t = part.trim().toLowerCase();
    if (t !== "") out.push(t);
  }
  return out;
}

/** What the forwarder adds about the client (mirrors ForwardRequestInfo). */
export interface ForwardingFacts {
  clientIp: string;
  forwardedFor?: string;
  proto: "http" | "https";
  host: string;
  preserveHost: boolean;
  /** X-Request-Id to send, replacing the client's (the request's id in this proxy). */
  requestId?: string;
}

/**
 * Builds the request head sent upstream: origin-form request-target, Host, the
 * client's end-to-end headers, X-Forwarded-*, Via and the body framing.
 *
 * `bodyLength` >= 0 sends Content-Length, -1 sends `Transfer-Encoding: chunked`,
 * -2 sends no framing header (no body). With `upgrade`, the client's
 * `Upgrade` header and `Connection: upgrade` are kept (WebSocket pass-through).
 */
export function buildRequestHead(
  req: Request,
  target: URL,
  facts: ForwardingFacts,
  via: string,
  bodyLength: number,
  upgrade: boolean,
): string {
  const host = facts.preserveHost && facts.host !== "" ? facts.host : target.host;
  const fields = endToEndFields(req.headers, facts.requestId !== undefined);
  let head = req.method + " " + target.pathname + target.search + " HTTP/1.1\r\nhost: " + host +
    "\r\n" + fields.text;
  const xff = fields.xff;
  const forwardedFor = facts.forwardedFor ??
    (xff !== undefined && xff !== "" ? xff + ", " + facts.clientIp : facts.clientIp);
  head += "x-forwarded-for: " + forwardedFor + "\r\nx-forwarded-proto: " + facts.proto + "\r\n";
  if (facts.host !== "") head += "x-forwarded-host: " + facts.host + "\r\n";
  if (facts.requestId !== undefined) head += "x-request-id: " + facts.requestId + "\r\n";
  const priorVia = fields.via;
  head += "via: " + (priorVia !== undefined && priorVia !== "" ? priorVia + ", " + via : via) +
    "\r\n";
  if (upgrade && fields.upgrade !== undefined) {
    head += "connection: upgrade\r\nupgrade: " + fields.upgrade + "\r\n";
  }
  if (bodyLength >= 0) head += "content-length: " + bodyLength + "\r\n\r\n";
  else if (bodyLength === -1) head += "transfer-encoding: chunked\r\n\r\n";
  else head += "\r\n";
  return head;
}

/** The client's end-to-end fields as head lines, and the fields the forwarder rewrites. */
interface EndToEnd {
  text: string;
  xff: string | undefined;
  via: string | undefined;
  upgrade: string | undefined;
  /** The Connection field's value, when there was one. */
  connection: string | null;
}

/**
 * One pass over the client's headers with `forEach` (Deno's Headers iterator
 * costs about six times as much). Fields that `Connection` names are hop-by-hop
 * too; since they can come before it in the sorted list, a Connection naming any
 * field other than keep-alive/close/upgrade (rare) sends the pass again knowing them.
 */
function endToEndFields(headers: Headers, ownRequestId: boolean): EndToEnd {
  const first = collect(headers, ownRequestId, undefined);
  if (first.connection === null) return first;
  let named: string[] | undefined;
  for (const t of headerTokens(first.connection)) {
    if (t !== "keep-alive" && t !== "close" && t !== "upgrade") (named ??= []).push(t);
  }
  return named === undefined ? first : collect(headers, ownRequestId, named);
}

function collect(
  headers: Headers,
  ownRequestId: boolean,
  named: string[] | undefined,
): EndToEnd {
  const out: EndToEnd = {
    text: "",
    xff: undefined,
    via: undefined,
    upgrade: undefined,
    connection: null,
  };
  headers.forEach((value, name) => {
    switch (name) {
      case "connection":
        out.connection = value;
        return;
      case "host":
      case "content-length":
      case "x-forwarded-proto":
      case "x-forwarded-host":
      case "keep-alive":
      case "proxy-connection":
      case "proxy-authorization":
      case "proxy-authenticate":
      case "te":
      case "trailer":
      case "transfer-encoding":
        return;
      case "upgrade":
        out.upgrade = value;
        return;
      case "x-forwarded-for":
        out.xff = value;
        return;
      case "via":
        out.via = value;
        return;
      case "x-request-id":
        if (ownRequestId) return;
    }
    if (named !== undefined && named.includes(name)) return;
    out.text += name + ": " + value + "\r\n";
  });
  return out;
}

/** Encodes a head string byte-for-byte (header values are ByteStrings: every char is < 256). */
export function encodeLatin1(s: string, extra = 0): Uint8Array {
  const n = s.length;
  const out = new Uint8Array(n + extra);
  for (let i = 0; i < n; i++) out[i] = s.charCodeAt(i);
  return out;
}

const utf8 = new TextEncoder();

/**
 * Encodes a head: the native UTF-8 encoder is fastest and identical for ASCII,
 * which equal lengths prove; any latin1 byte falls back to encodeLatin1.
 */
export function encodeHead(s: string): Uint8Array {
  const b = utf8.encode(s);
  return b.length === s.length ? b : encodeLatin1(s);
}

const utf8Decoder = new TextDecoder();

/**
 * Decodes bytes as latin1 (the only lossless reading of a header block). The
 * native UTF-8 decoder is ~3x faster and identical for ASCII: a result as long
 * as the input without U+FFFD proves every byte was ASCII. Otherwise the
 * byte-wise latin1 path runs.
 */
export function decodeLatin1(b: Uint8Array, start: number, end: number): string {
  const text = utf8Decoder.decode(b.subarray(start, end));
  if (text.length === end - start && text.indexOf("\uFFFD") < 0) return text;
  let s = "";
  // fromCharCode.apply in slices keeps the argument count bounded.
  for (let i = start; i < end; i += 8192) {
    s += String.fromCharCode.apply(
      null,
      b.subarray(i, Math.min(end, i + 8192)) as unknown as number[],
    );
  }
  return s;
}
