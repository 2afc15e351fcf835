/**
 * A lean HTTP/1.1 keep-alive client over `Deno.connect`, made for load
 * generation: the request is encoded once, the response head is parsed at
 * the byte level (only the headers that frame the body or signal a rate
 * limit are looked at), and the body is counted and discarded. `fetch` tops
 * out at about half the request rate this reaches, so it cannot measure a
 * proxy that is faster than itself.
 *
 * @module
 */

/** Why a request failed; the report counts errors by these kinds. */
export type ErrorKind =
  | "connect"
  | "proxy"
  | "tls"
  | "timeout"
  | "read"
  | "write"
  | "parse";

/** A failed request, with the kind of failure. */
export class RequestError extends Error {
  constructor(readonly kind: ErrorKind, message: string) {
    super(message);
    this.name = "RequestError";
  }
}

/** Where connections go and how requests are written. */
export interface Target {
  readonly url: URL;
  /** Forward proxy (http://[user:pass@]host:port): absolute-form for http, CONNECT for https. */
  readonly proxy?: URL;
  /** Extra CA certificates (PEM) to trust for https targets. */
  readonly caCerts?: string[];
}

/** What a complete response looked like. */
export interface ResponseInfo {
  status: number;
  /** Bytes of the response on the wire (head and body). */
  bytes: number;
  /** The server will keep the connection open for another request. */
  keepAlive: boolean;
  /** 429, or a RateLimit-Remaining / RateLimit `r=` of 0. */
  rateLimited: boolean;
}

const MAX_HEAD = 1 << 20;
const CR = 13;
const LF = 10;
const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** Encodes one request once; the runner writes the same bytes for every request. */
export function encodeRequest(
  target: Target,
  method: string,
  headers: readonly (readonly [string, string])[],
  body?: Uint8Array,
): Uint8Array {
  const url = target.url;
  const viaPlainProxy = target.proxy !== undefined && url.protocol === "http:";
  // Absolute-form without user:pass@ (credentials go in Authorization, never in the target).
  const path = `${url.pathname}${url.search}`;
  const requestTarget = viaPlainProxy ? `${url.origin}${path}` : path;
  const lower = new Set(headers.map(([k]) => k.toLowerCase()));
  let head = `${method} ${requestTarget} HTTP/1.1\r\n`;
  if (!lower.has("host")) head += `Host: ${url.host}\r\n`;
  if (!lower.has("user-agent")) head += "User-Agent: proxy-loadtest\r\n";
  if (!lower.has("accept")) head += "Accept: */*\r\n";
  if ((url.username || url.password) && !lower.has("authorization")) {
    head += `Authorization: ${basicAuth(url)}\r\n`; // http://user:pass@host/ as curl does
  }
  if (viaPlainProxy && !lower.has("proxy-authorization")) {
    const auth = proxyAuthorization(target.proxy!);
    if (auth) head += `Proxy-Authorization: ${auth}\r\n`;
  }
  for (const [k, v] of headers) {
    if (k.toLowerCase() === "content-length") continue;
    head += `${k}: ${v}\r\n`;
  }
  const hasBody = body !== undefined && body.length > 0;
  if (hasBody || ["POST", "PUT", "PATCH"].includes(method)) {
    head += `Content-Length: ${body?.length ?? 0}\r\n`;
  }
  head += "\r\n";
  const headBytes = encoder.encode(head);
  if (!hasBody) return headBytes;
  const out = new Uint8Array(headBytes.length + body!.length);
  out.set(headBytes);
  out.set(body!, headBytes.length);
  return out;
}

function basicAuth(u: URL): string {
  const user = decodeURIComponent(u.username);
  const pass = decodeURIComponent(u.password);
  return `Basic ${btoa(String.fromCharCode(...encoder.encode(`${user}:${pass}`)))}`;
}

function proxyAuthorization(proxy: URL): string | undefined {
  if (!proxy.username && !proxy.password) return undefined;
  return basicAuth(proxy);
}

function portOf(url: URL): number {
  if (url.port) return Number(url.port);
  return url.protocol === "https:" ? 443 : 80;
}

function hostOf(url: URL): string {
  // URL keeps IPv6 literals in brackets; Deno.connect wants them bare.
  return url.hostname.replace(/^\[(.*)\]$/, "$1");
}

/** Maps a thrown socket error onto an error kind. */
function kindOf(err: unknown, fallback: ErrorKind): ErrorKind {
  if (err instanceof RequestError) return err.kind;
  if (err instanceof Deno.errors.TimedOut) return "timeout";
  return fallback;
}

/** One keep-alive connection; requests on it run one after another. */
export class Http1Connection {
  #conn: Deno.Conn | Deno.TlsConn;
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  #closed = false;
  /** Responses completed on this connection. */
  served = 0;
  /** When the request in flight times out (performance.now() ms); Infinity when idle. */
  deadline = Infinity;
  /** Closed by the timeout watchdog. */
  timedOut = false;

  private constructor(conn: Deno.Conn | Deno.TlsConn) {
    this.#conn = conn;
  }

  /** Opens a connection to the target (directly, or through the proxy). */
  static async open(target: Target): Promise<Http1Connection> {
    const url = target.url;
    const tls = url.protocol === "https:";
    const hop = target.proxy ?? url;
    let tcp: Deno.TcpConn;
    try {
      tcp = await Deno.connect({ hostname: hostOf(hop), port: portOf(hop) });
    } catch (err) {
      const where = target.proxy ? `proxy ${hop.host}` : hop.host;
      throw new RequestError(kindOf(err, "connect"), `connect to ${where}: ${err}`);
    }
    tcp.setNoDelay(true);
    if (!tls) return new Http1Connection(tcp);
    let base: Deno.Conn = tcp;
    if (target.proxy) {
      const c = new Http1Connection(tcp);
      try {
        await c.#tunnel(url, target.proxy);
      } catch (err) {
        c.close();
        throw err;
      }
      base = tcp;
    }
    try {
      const tlsConn = await Deno.startTls(base as Deno.TcpConn, {
        hostname: hostOf(url),
        caCerts: target.caCerts,
      });
      await tlsConn.handshake();
      return new Http1Connection(tlsConn);
    } catch (err) {
      try {
        base.close();
      } catch { /* already closed by the failed handshake */ }
      throw new RequestError(kindOf(err, "tls"), `TLS with ${url.host}: ${err}`);
    }
  }

  async #tunnel(url: URL, proxy: URL): Promise<void> {
    const authority = `${hostOf(url).includes(":") ? `[${hostOf(url)}]` : hostOf(url)}:${
      portOf(url)
    }`;
    let req = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`;
    const auth = proxyAuthorization(proxy);
    if (auth) req += `Proxy-Authorization: ${auth}\r\n`;
    req += "\r\n";
    try {
      await this.#writeAll(encoder.encode(req));
      const head = await this.#readHead();
      if (head.status !== 200) {
        throw new RequestError("proxy", `proxy refused CONNECT ${authority}: ${head.status}`);
      }
    } catch (err) {
      if (err instanceof RequestError && err.kind !== "timeout") {
        throw new RequestError("proxy", err.message);
      }
      throw err;
    }
    if (this.#end !== this.#start) {
      throw new RequestError("proxy", "proxy sent bytes before the TLS handshake");
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }

  /**
   * Writes the request and reads the whole response, discarding the body.
   * `noBody` is true for HEAD requests (the response then has no body).
   *
   * This is the load generator's hot path, written for the common case: the
   * request goes out in one write and the response head arrives in one read,
   * with no async helper in between (each await of a helper costs a promise
   * and a microtask turn per request, a measurable share of a few µs).
   */
  async request(bytes: Uint8Array, noBody: boolean): Promise<ResponseInfo> {
    try {
      const n = await this.#conn.write(bytes);
      if (n < bytes.length) await this.#writeAll(bytes.subarray(n));
    } catch (err) {
      throw new RequestError(kindOf(err, "write"), `write: ${err}`);
    }
    if (this.#start === this.#end) {
      // Nothing buffered (the usual case on a keep-alive connection): read straight in.
      let n: number | null;
      try {
        n = await this.#conn.read(this.#buf);
      } catch (err) {
        throw new RequestError(kindOf(err, "read"), `read: ${err}`);
      }
      if (n === null) throw new RequestError("read", "connection closed before a response");
      this.#start = 0;
      this.#end = n;
    }
    let head = this.#headInBuffer() ?? await this.#readHead();
    let bytesIn = head.length;
    // Interim 1xx responses (except 101) precede the real one.
    while (head.status >= 100 && head.status < 200 && head.status !== 101) {
      head = await this.#readHead();
      bytesIn += head.length;
    }
    let keepAlive = head.keepAlive;
    if (noBody || head.status === 204 || head.status === 304 || head.status < 200) {
      // no body
    } else if (head.chunked) {
      bytesIn += await this.#skipChunked();
    } else if (head.contentLength >= 0) {
      const n = head.contentLength;
      if (this.#end - this.#start >= n) {
        this.#start += n; // the whole body came with the head: no await needed
        bytesIn += n;
      } else {
        bytesIn += await this.#skip(n);
      }
    } else {
      bytesIn += await this.#skipToEof();
      keepAlive = false;
    }
    this.served++;
    return {
      status: head.status,
      bytes: bytesIn,
      keepAlive,
      rateLimited: head.status === 429 || head.rateLimitExhausted,
    };
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.#conn.write(off ? bytes.subarray(off) : bytes);
  }

  /** A complete response head already in the buffer, consumed; else undefined. */
  #headInBuffer(): Head | undefined {
    const buf = this.#buf;
    for (let i = this.#start + 3; i < this.#end; i++) {
      if (buf[i] === LF && buf[i - 1] === CR && buf[i - 2] === LF && buf[i - 3] === CR) {
        const head = parseHead(buf, this.#start, i + 1);
        this.#start = i + 1;
        return head;
      }
    }
    return undefined;
  }

  /** Reads more bytes into the buffer; false at end of stream. */
  async #fill(): Promise<boolean> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.length) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        if (this.#buf.length >= MAX_HEAD) {
          throw new RequestError("parse", "response head larger than 1 MiB");
        }
        const bigger = new Uint8Array(this.#buf.length * 2);
        bigger.set(this.#buf);
        this.#buf = bigger;
      }
    }
    let n: number | null;
    try {
      // Reading into the whole buffer when it is empty saves a view allocation per response.
      n = await this.#conn.read(this.#end === 0 ? this.#buf : this.#buf.subarray(this.#end));
    } catch (err) {
      throw new RequestError(kindOf(err, "read"), `read: ${err}`);
    }
    if (n === null) return false;
    this.#end += n;
    return true;
  }

  async #readHead(): Promise<Head> {
    let scan = this.#start;
    while (true) {
      const buf = this.#buf;
      for (let i = Math.max(scan, this.#start + 3); i < this.#end; i++) {
        if (buf[i] === LF && buf[i - 1] === CR && buf[i - 2] === LF && buf[i - 3] === CR) {
          const head = parseHead(buf, this.#start, i + 1);
          this.#start = i + 1;
          return head;
        }
      }
      scan = Math.max(this.#start, this.#end - 3);
      const offset = this.#start;
      if (!(await this.#fill())) {
        const got = this.#end - this.#start;
        throw new RequestError(
          "read",
          got === 0 ? "connection closed before a response" : "connection closed inside a head",
        );
      }
      scan += this.#start - offset; // the buffer may have been compacted
    }
  }

  /** Discards exactly `n` body bytes. */
  async #skip(n: number): Promise<number> {
    let left = n;
    while (left > 0) {
      if (this.#start === this.#end && !(await this.#fill())) {
        throw new RequestError("read", "connection closed inside a body");
      }
      const take = Math.min(left, this.#end - this.#start);
      this.#start += take;
      left -= take;
    }
    return n;
  }

  async #skipToEof(): Promise<number> {
    let n = this.#end - this.#start;
    this.#start = this.#end;
    while (await this.#fill()) {
      n += this.#end - this.#start;
      this.#start = this.#end;
    }
    return n;
  }

  /** Reads one CRLF-terminated line (for chunk sizes and trailers); returns its length with CRLF. */
  async #line(): Promise<[string, number]> {
    while (true) {
      const buf = this.#buf;
      for (let i = this.#start; i < this.#end; i++) {
        if (buf[i] === LF) {
          const end = i > this.#start && buf[i - 1] === CR ? i - 1 : i;
          const text = latin1.decode(buf.subarray(this.#start, end));
          const len = i + 1 - this.#start;
          this.#start = i + 1;
          return [text, len];
        }
      }
      if (this.#end - this.#start > 8192) throw new RequestError("parse", "chunk line too long");
      if (!(await this.#fill())) throw new RequestError("read", "connection closed inside a body");
    }
  }

  async #skipChunked(): Promise<number> {
    let n = 0;
    while (true) {
      const [line, len] = await this.#line();
      n += len;
      const size = parseInt(line.split(";", 1)[0].trim(), 16);
      if (!Number.isFinite(size) || size < 0) {
        throw new RequestError("parse", `bad chunk size ${JSON.stringify(line.slice(0, 40))}`);
      }
      if (size === 0) break;
      n += await this.#skip(size);
      const [crlf, l2] = await this.#line();
      if (crlf !== "") throw new RequestError("parse", "chunk not followed by CRLF");
      n += l2;
    }
    while (true) { // trailers up to the empty line
      const [line, len] = await this.#line();
      n += len;
      if (line === "") return n;
    }
  }
}

interface Head {
  status: number;
  length: number;
  contentLength: number;
  chunked: boolean;
  keepAlive: boolean;
  rateLimitExhausted: boolean;
}

function lowerByte(b: number): number {
  return b >= 65 && b <= 90 ? b + 32 : b;
}

/** Case-insensitive compare of buf[from, from+name.length) with a lower-case ASCII name. */
function nameIs(buf: Uint8Array, from: number, to: number, name: string): boolean {
  if (to - from !== name.length) return false;
  for (let i = 0; i < name.length; i++) {
    if (lowerByte(buf[from + i]) !== name.charCodeAt(i)) return false;
  }
  return true;
}

/** Parses a response head in buf[from, to) (ending with CRLFCRLF). */
export function parseHead(buf: Uint8Array, from: number, to: number): Head {
  // "HTTP/1.x SSS"
  if (
    to - from < 12 || buf[from] !== 72 || buf[from + 1] !== 84 || buf[from + 2] !== 84 ||
    buf[from + 3] !== 80 || buf[from + 4] !== 47
  ) {
    throw new RequestError("parse", "response does not start with HTTP/");
  }
  const minor = buf[from + 7] - 48;
  const d0 = buf[from + 9] - 48, d1 = buf[from + 10] - 48, d2 = buf[from + 11] - 48;
  if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) {
    throw new RequestError("parse", "bad status code");
  }
  const head: Head = {
    status: d0 * 100 + d1 * 10 + d2,
    length: to - from,
    contentLength: -1,
    chunked: false,
    keepAlive: minor >= 1,
    rateLimitExhausted: false,
  };
  let line = from;
  while (buf[line] !== LF) line++;
  line++;
  while (line < to - 2) {
    let eol = line;
    while (buf[eol] !== LF) eol++;
    let colon = line;
    while (colon < eol && buf[colon] !== 58) colon++;
    const nameLen = colon - line;
    if (
      colon < eol &&
      (nameLen === 14 || nameLen === 17 || nameLen === 10 || nameLen === 19 || nameLen === 9)
    ) {
      let vs = colon + 1;
      let ve = eol > vs && buf[eol - 1] === CR ? eol - 1 : eol;
      while (vs < ve && (buf[vs] === 32 || buf[vs] === 9)) vs++;
      while (ve > vs && (buf[ve - 1] === 32 || buf[ve - 1] === 9)) ve--;
      if (nameIs(buf, line, colon, "content-length")) {
        let n = 0;
        for (let i = vs; i < ve; i++) {
          const d = buf[i] - 48;
          if (d < 0 || d > 9) throw new RequestError("parse", "bad Content-Length");
          n = n * 10 + d;
        }
        if (vs === ve) throw new RequestError("parse", "empty Content-Length");
        head.contentLength = n;
      } else if (nameIs(buf, line, colon, "transfer-encoding")) {
        head.chunked = latin1.decode(buf.subarray(vs, ve)).toLowerCase().includes("chunked");
      } else if (nameIs(buf, line, colon, "connection")) {
        const v = latin1.decode(buf.subarray(vs, ve)).toLowerCase();
        if (v.includes("close")) head.keepAlive = false;
        else if (v.includes("keep-alive")) head.keepAlive = true;
      } else if (nameIs(buf, line, colon, "ratelimit-remaining")) {
        if (ve - vs === 1 && buf[vs] === 48) head.rateLimitExhausted = true;
      } else if (nameIs(buf, line, colon, "ratelimit")) {
        // Structured form (draft-ietf-httpapi-ratelimit-headers-08+): "default";r=0;t=5
        if (/(^|;)\s*r=0(\s*[;,]|\s*$)/.test(latin1.decode(buf.subarray(vs, ve)))) {
          head.rateLimitExhausted = true;
        }
      }
    }
    line = eol + 1;
  }
  return head;
}
