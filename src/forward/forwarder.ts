/**
 * The upstream HTTP/1.1 client: a lean keep-alive client over Deno.connect /
 * Deno.startTls. Bytes pass through untouched (no decompression); bodies
 * stream both ways with flat memory; small bodies already read are handed
 * back as one Uint8Array, which is what makes the hot path fast.
 *
 * @module
 */

import type { MetricFamily, Sample } from "../stats/metric.ts";
import { type BodyDone, BodySource, type Framing, takeChunkedFromBuffer } from "./body.ts";
import { MAX_HEAD, openConnection, UpstreamConn, writeAll } from "./conn.ts";
import { UpstreamError, type UpstreamErrorKind } from "./errors.ts";
import { findHeadEnd, parseResponseHead, type ResponseHead } from "./head.ts";
import { buildRequestHead, decodeLatin1, encodeHead, encodeLatin1 } from "./headers.ts";
import { type Origin, Pools } from "./pool.ts";

export interface ForwarderOptions {
  /** TCP (+TLS handshake) connect timeout. */
  connectTimeoutMs: number;
  /** From request sent until the response head arrived; also the longest silence mid-body. */
  responseTimeoutMs: number;
  /** A pooled idle connection is closed after this. */
  idleTimeoutMs: number;
  /** Keep-alive pool cap per origin. */
  maxIdlePerOrigin: number;
  /** Appended to Via on requests and responses, e.g. "1.1 proxy". */
  via: string;
  /** Extra CA PEMs for https upstreams. */
  caCerts?: string[];
  /**
   * SSRF hook: called with the IP actually connected to, before any byte is sent.
   * Return a reason string to refuse (UpstreamError kind "forbidden-address").
   */
  checkAddress?: (ip: string, hostname: string) => string | undefined;
}

export interface ForwardRequestInfo {
  /** Becomes X-Forwarded-For (see forwardedFor). */
  clientIp: string;
  /** Full X-Forwarded-For value to send; default: existing header + ", " + clientIp. */
  forwardedFor?: string;
  /** X-Forwarded-Proto: the scheme the client used to reach the proxy. */
  proto: "http" | "https";
  /** X-Forwarded-Host: the client's Host header. */
  host: string;
  /** Reverse mode: the client's Host reaches the backend; otherwise Host = target authority. */
  preserveHost: boolean;
  /** X-Request-Id to send upstream, replacing the client's (this proxy's id for the request). */
  requestId?: string;
}

export interface OriginSnapshot {
  opened: number;
  reused: number;
  requests: number;
  errors: number;
  idle: number;
}

export interface ForwarderSnapshot {
  connections_opened: number;
  connections_reused: number;
  requests: number;
  errors: number;
  /** Share of requests served on a kept-alive connection. */
  reuse_ratio: number;
  idle: number;
  errors_by_kind: Record<string, number>;
  origins: Record<string, OriginSnapshot>;
}

/** An upstream that switched protocols: from here on the connection is a byte pipe. */
export interface UpgradeResult {
  /** Always 101. */
  status: number;
  /** The 101's headers (Connection and Upgrade kept, Via appended). */
  headers: Headers;
  /** The raw upstream connection; the caller owns it and must close it. */
  conn: Deno.Conn;
  /** Bytes the upstream sent after the response head (the first frames). */
  head: Uint8Array;
}

export interface Forwarder {
  /**
   * Sends `req` to `target` (absolute URL) and resolves once the response head arrived.
   * The body streams; if the upstream dies mid-body the body stream errors.
   * Rejects with UpstreamError before headers (a failing client upload rejects with its own error).
   */
  forward(req: Request, target: URL, info: ForwardRequestInfo): Promise<Response>;
  /**
   * WebSocket / Upgrade pass-through on a fresh unpooled connection: sends the head with
   * Connection/Upgrade kept. A 101 resolves with the raw connection (the caller owns it);
   * any other answer resolves as a plain Response whose connection is closed once its body
   * was read, never pooled and never handed out. Rejects with UpstreamError like forward().
   */
  upgrade(req: Request, target: URL, info: ForwardRequestInfo): Promise<UpgradeResult | Response>;
  snapshot(): ForwarderSnapshot;
  metrics(): MetricFamily[];
  /** Closes every pooled connection; connections in use close when their exchange ends. */
  close(): void;
}

/** Request bodies up to this size (with a Content-Length) are buffered: one write, retryable. */
const BUFFER_REQUEST = 64 * 1024;
/**
 * `new Response(body, { status, headers: tuples })` validates the tuples through WebIDL
 * sequence conversion, about 5–7 µs for ten headers on Deno 2.9; appending them one by
 * one to a fresh Response validates the same names and values in about a third of that.
 */
function responseOf(body: BodyInit | null, status: number, headers: [string, string][]): Response {
  const res = status === 200 ? new Response(body) : new Response(body, { status });
  const h = res.headers;
  for (let i = 0; i < headers.length; i++) h.append(headers[i][0], headers[i][1]);
  return res;
}

/** Response bodies up to this size already in the read buffer are returned as one Uint8Array. */
const SMALL_RESPONSE = 64 * 1024;
/** Longest idle time of a pooled connection given a request whose streamed body cannot be retried. */
const STREAMED_MAX_IDLE = 2_000;
const LAST_CHUNK = new Uint8Array([48, 13, 10, 13, 10]);
const DIGITS = /^[0-9]{1,15}$/;

/** A pooled connection turned out dead before any response byte: retry on a fresh one. */
class StaleConnection extends Error {}

interface Endpoint {
  key: string;
  hostname: string;
  port: number;
  tls: boolean;
}

function endpoint(target: URL): Endpoint {
  const tls = target.protocol === "https:";
  if (!tls && target.protocol !== "http:") {
    throw new UpstreamError("connect", "unsupported upstream scheme " + target.protocol, false);
  }
  const port = target.port !== "" ? Number(target.port) : tls ? 443 : 80;
  let hostname = target.hostname;
  if (hostname.startsWith("[")) hostname = hostname.slice(1, -1);
  return {
    key: target.protocol + "//" + target.host + (target.port !== "" ? "" : ":" + port),
    hostname,
    port,
    tls,
  };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

class HttpForwarder implements Forwarder {
  readonly #o: ForwarderOptions;
  readonly #pools: Pools;
  readonly #errorsByKind = new Map<UpstreamErrorKind, number>();

  /** Ends a response body: pool the connection when everything allows it, else close it. */
  readonly #bodyDone: BodyDone = (c, ok, error) => {
    if (error !== undefined) this.#countError(this.#pools.origins.get(c.key), error);
    c.uses++;
    if (ok && c.reusable && c.requestDone && !c.closed) this.#pools.release(c);
    else c.close();
  };

  constructor(options: ForwarderOptions) {
    this.#o = options;
    this.#pools = new Pools({
      idleTimeoutMs: options.idleTimeoutMs,
      maxIdlePerOrigin: options.maxIdlePerOrigin,
      shortestDeadlineMs: options.responseTimeoutMs,
    });
  }

  async forward(req: Request, target: URL, info: ForwardRequestInfo): Promise<Response> {
    const ep = endpoint(target);
    const method = req.method;
    let body: Uint8Array | null = null;
    let stream: ReadableStream<Uint8Array> | null = null;
    let length = -2; // -2: no body, -1: chunked, else Content-Length
    if (req.body !== null) {
      const cl = req.headers.get("content-length");
      const declared = cl !== null && DIGITS.test(cl) ? Number(cl) : -1;
      if (declared >= 0 && declared <= BUFFER_REQUEST) {
        body = new Uint8Array(await req.arrayBuffer());
        length = body.length;
      } else {
        stream = req.body;
        length = declared;
      }
    } else if (method === "POST" || method === "PUT" || method === "PATCH") {
      length = 0;
    }
    const head = buildRequestHead(req, target, info, this.#o.via, length, false);
    const origin = this.#pools.origin(ep.key);
    origin.requests++;
    try {
      // A streamed body cannot be replayed if the pooled connection turns out dead, so it only
      // takes a recently used one (origins rarely drop a connection within seconds of using it).
      const pooled = this.#pools.take(origin, stream === null ? Infinity : STREAMED_MAX_IDLE);
      if (pooled !== undefined) {
        try {
          return await this.#exchange(
            pooled,
            origin,
            method,
            head,
            body,
            stream,
            length,
            stream === null,
          );
        } catch (err) {
          if (!(err instanceof StaleConnection)) throw err;
        }
      }
      const fresh = await this.#connect(origin, ep);
      return await this.#exchange(fresh, origin, method, head, body, stream, length, false);
    } catch (err) {
      if (err instanceof UpstreamError) this.#countError(origin, err);
      throw err;
    }
  }

  async upgrade(
    req: Request,
    target: URL,
    info: ForwardRequestInfo,
  ): Promise<UpgradeResult | Response> {
    const ep = endpoint(target);
    const origin = this.#pools.origin(ep.key);
    origin.requests++;
    try {
      const c = await this.#connect(origin, ep);
      try {
        await writeAll(
          c.conn,
          encodeLatin1(buildRequestHead(req, target, info, this.#o.via, -2, true)),
        );
      } catch (err) {
        c.close();
        throw new UpstreamError(
          "reset",
          "writing the upgrade request failed: " + message(err),
          false,
          {
            cause: err,
          },
        );
      }
      c.armTimer(this.#o.responseTimeoutMs);
      const h = await this.#readResponseHead(c, false, true);
      c.disarmTimer();
      if (h.status !== 101) {
        // Refused: an ordinary response on a connection that is closed after its body, so a
        // refusal can never leave a backend socket behind or turn into a pipe.
        h.headers = h.headers.filter((t) => t[0] !== "connection" && t[0] !== "upgrade");
        return await this.#respond(c, req.method, h, false);
      }
      const tuples = h.headers;
      tuples.push(["via", h.via !== undefined ? h.via + ", " + this.#o.via : this.#o.via]);
      let headers: Headers;
      try {
        headers = new Headers(tuples);
      } catch (err) {
        c.close();
        throw new UpstreamError(
          "protocol",
          "upstream sent an invalid header: " + message(err),
          true,
        );
      }
      return { status: h.status, headers, conn: c.detach(), head: c.buf.slice(c.start, c.end) };
    } catch (err) {
      if (err instanceof UpstreamError) this.#countError(origin, err);
      throw err;
    }
  }

  async #connect(origin: Origin, ep: Endpoint): Promise<UpstreamConn> {
    const conn = await openConnection({
      hostname: ep.hostname,
      port: ep.port,
      tls: ep.tls,
      caCerts: this.#o.caCerts,
      timeoutMs: this.#o.connectTimeoutMs,
      checkAddress: this.#o.checkAddress,
    });
    origin.opened++;
    return new UpstreamConn(conn, ep.key, this.#pools);
  }

  /** One request/response on `c`; with `mayRetry`, a dead pooled connection throws StaleConnection. */
  async #exchange(
    c: UpstreamConn,
    origin: Origin,
    method: string,
    head: string,
    body: Uint8Array | null,
    stream: ReadableStream<Uint8Array> | null,
    length: number,
    mayRetry: boolean,
  ): Promise<Response> {
    const pooled = c.uses > 0;
    let bytes: Uint8Array;
    if (body !== null && body.length > 0) {
      bytes = encodeLatin1(head, body.length);
      bytes.set(body, head.length);
    } else {
      bytes = encodeHead(head);
    }
    try {
      // One write nearly always takes the whole head; writeAll only for the rest.
      const n = await c.conn.write(bytes);
      if (n < bytes.length) await writeAll(c.conn, bytes.subarray(n));
    } catch (err) {
      c.close();
      if (pooled && mayRetry) throw new StaleConnection();
      throw new UpstreamError(
        "reset",
        "writing the request upstream failed: " + message(err),
        false,
        {
          cause: err,
        },
      );
    }
    c.requestDone = stream === null;
    c.headDone = false;
    // The response timeout starts once the request is sent; a streamed upload starts it at its end.
    if (stream === null) c.armTimer(this.#o.responseTimeoutMs);
    else this.#pump(c, stream, length);
    const h = await this.#readResponseHead(c, pooled && mayRetry, false);
    c.headDone = true;
    c.disarmTimer();
    if (h.keepAliveMs !== undefined) c.keepAliveMs = h.keepAliveMs;
    if (pooled) origin.reused++;
    return this.#respond(c, method, h, true);
  }

  /**
   * The response for head `h` read on `c`: small bodies read whole, others streamed. The
   * connection is pooled after the body when `mayPool` and the response allow it, else closed.
   * Synchronous when the body came with the head (the usual small response): an async
   * function here cost the hot path a promise and its turns of the microtask queue.
   */
  #respond(
    c: UpstreamConn,
    method: string,
    h: ResponseHead,
    mayPool: boolean,
  ): Response | Promise<Response> {
    const via = h.via !== undefined ? h.via + ", " + this.#o.via : this.#o.via;
    h.headers.push(["via", via]);
    c.reusable = mayPool && !h.close;
    const status = h.status;
    const noBody = method === "HEAD" || status === 204 || status === 304 ||
      (status === 205 && h.contentLength === 0);
    // A small Content-Length body is read whole before resolving: a Uint8Array body is far
    // cheaper for the listener than a stream, and the wait is at most 64 KiB.
    if (!noBody && !h.chunked && h.contentLength >= 0 && h.contentLength <= SMALL_RESPONSE) {
      const n = h.contentLength;
      if (c.end - c.start < n) {
        return this.#readSmall(c, n).then((whole) => this.#build(c, h, noBody, whole));
      }
      const whole = c.buf.slice(c.start, c.start + n);
      c.start += n;
      return this.#build(c, h, noBody, whole);
    }
    return this.#build(c, h, noBody, undefined);
  }

  /** The Response for head `h`, its body `whole` when read already, else streamed from `c`. */
  #build(
    c: UpstreamConn,
    h: ResponseHead,
    noBody: boolean,
    whole: Uint8Array<ArrayBuffer> | undefined,
  ): Response {
    const status = h.status;
    const headers = h.headers;
    try {
      if (noBody) {
        // Construct first: an invalid header must not leave a pooled connection behind.
        const res = responseOf(null, status, headers);
        this.#bodyDone(c, true);
        return res;
      }
      let framing: Framing;
      if (h.chunked) {
        framing = "chunked";
        const small = takeChunkedFromBuffer(c, SMALL_RESPONSE);
        if (small !== undefined) {
          const res = responseOf(small, status, headers);
          this.#bodyDone(c, c.start === c.end);
          return res;
        }
      } else if (whole !== undefined) {
        const res = responseOf(whole, status, headers);
        this.#bodyDone(c, c.start === c.end);
        return res;
      } else if (h.contentLength >= 0) {
        framing = "length";
      } else {
        framing = "close";
        c.reusable = false;
      }
      const source = new BodySource(
        c,
        framing,
        h.contentLength,
        this.#o.responseTimeoutMs,
        this.#bodyDone,
      );
      return responseOf(new ReadableStream(source, { highWaterMark: 0 }), status, headers);
    } catch (err) {
      // Response/Headers reject invalid names, values and statuses.
      c.close();
      throw new UpstreamError(
        "protocol",
        "upstream sent an invalid response: " + message(err),
        true,
        {
          cause: err,
        },
      );
    }
  }

  /** Completes an `n`-byte body partly in the buffer straight from the socket. Closes `c` on failure. */
  async #readSmall(c: UpstreamConn, n: number): Promise<Uint8Array<ArrayBuffer>> {
    const have = c.end - c.start;
    const out = new Uint8Array(n);
    out.set(c.buf.subarray(c.start, c.end));
    c.start = c.end = 0;
    let got = have;
    c.armTimer(this.#o.responseTimeoutMs);
    try {
      while (got < n) {
        const r = await c.conn.read(out.subarray(got));
        if (r === null) break;
        got += r;
      }
    } catch {
      // reported below as a reset (or as the timeout that closed the connection)
    }
    c.disarmTimer();
    if (got === n) return out;
    c.close();
    const err = c.timedOut
      ? new UpstreamError("response-timeout", "upstream stalled mid-body", true)
      : new UpstreamError("reset", "upstream closed the connection mid-body", true);
    throw err;
  }

  /** Reads the final response head (interim 1xx skipped); closes `c` on any failure. */
  async #readResponseHead(
    c: UpstreamConn,
    staleIfEmpty: boolean,
    upgrade: boolean,
  ): Promise<ResponseHead> {
    let interim = false;
    try {
      for (;;) {
        let scanned = 0;
        let end = -1;
        for (;;) {
          end = findHeadEnd(c.buf, c.start, c.end, c.start + scanned);
          if (end >= 0) break;
          if (c.end - c.start >= MAX_HEAD) {
            throw new UpstreamError("protocol", "upstream response head exceeds 64 KiB", true);
          }
          scanned = c.end - c.start;
          const n = await c.conn.read(c.readSpace(MAX_HEAD + 4));
          if (n === null) break;
          c.end += n;
        }
        if (end < 0) break; // EOF
        const h = parseResponseHead(decodeLatin1(c.buf, c.start, end), upgrade);
        c.start = end;
        if (h.status >= 200 || (upgrade && h.status === 101)) return h;
        if (h.status === 101) {
          throw new UpstreamError("protocol", "upstream switched protocols unasked", true);
        }
        interim = true; // 100 Continue, 102, 103 Early Hints: skipped
      }
    } catch (err) {
      c.close();
      if (err instanceof UpstreamError) throw err;
      return this.#headFailure(c, staleIfEmpty && !interim, err);
    }
    c.close();
    return this.#headFailure(c, staleIfEmpty && !interim, undefined);
  }

  #headFailure(c: UpstreamConn, staleIfEmpty: boolean, cause: unknown): never {
    if (c.timedOut) {
      throw new UpstreamError(
        "response-timeout",
        "upstream sent no response head within " + this.#o.responseTimeoutMs + " ms",
        true,
      );
    }
    if (c.bodyError !== undefined) throw c.bodyError;
    if (staleIfEmpty && c.start === c.end) throw new StaleConnection();
    throw new UpstreamError(
      "reset",
      "upstream closed the connection before a complete response head" +
        (cause !== undefined ? ": " + message(cause) : ""),
      true,
      { cause },
    );
  }

  /** Streams the client's request body upstream (Content-Length as declared, or chunked). */
  async #pump(
    c: UpstreamConn,
    stream: ReadableStream<Uint8Array>,
    length: number,
  ): Promise<void> {
    const reader = stream.getReader();
    const chunked = length < 0;
    let sent = 0;
    try {
      for (;;) {
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await reader.read();
        } catch (err) {
          // The client's upload failed: the upstream must not take a truncated body as complete.
          c.bodyError = err;
          c.close();
          return;
        }
        if (r.done) break;
        const v = r.value;
        if (v.length === 0) continue;
        sent += v.length;
        if (!chunked && sent > length) {
          this.#badUpload(c, reader, "request body longer than its Content-Length");
          return;
        }
        if (chunked) {
          const size = v.length.toString(16);
          const out = new Uint8Array(size.length + v.length + 4);
          for (let i = 0; i < size.length; i++) out[i] = size.charCodeAt(i);
          out[size.length] = 13;
          out[size.length + 1] = 10;
          out.set(v, size.length + 2);
          out[out.length - 2] = 13;
          out[out.length - 1] = 10;
          await this.#upload(c, out);
        } else {
          await this.#upload(c, v);
        }
      }
      if (chunked) await this.#upload(c, LAST_CHUNK);
      else if (sent !== length) {
        this.#badUpload(c, reader, "request body shorter than its Content-Length");
        return;
      }
      c.requestDone = true;
      if (!c.headDone && !c.closed) c.armTimer(this.#o.responseTimeoutMs);
    } catch {
      // The upstream stopped reading (it may have answered already, e.g. 413): stop uploading.
      // requestDone stays false, so this connection is not reused.
      reader.cancel().catch(() => {});
    }
  }

  /** The body does not match its declared length: never let the upstream see it as complete. */
  #badUpload(c: UpstreamConn, reader: ReadableStreamDefaultReader<Uint8Array>, why: string): void {
    c.bodyError = new TypeError(why);
    c.close();
    reader.cancel().catch(() => {});
  }

  /** One upload write; an upstream that stops reading for responseTimeoutMs fails it (connection closed). */
  async #upload(c: UpstreamConn, data: Uint8Array): Promise<void> {
    if (c.headDone) return await writeAll(c.conn, data);
    c.armTimer(this.#o.responseTimeoutMs);
    await writeAll(c.conn, data);
    if (!c.headDone) c.disarmTimer();
  }

  #countError(origin: Origin | undefined, err: UpstreamError): void {
    this.#errorsByKind.set(err.kind, (this.#errorsByKind.get(err.kind) ?? 0) + 1);
    if (origin === undefined) return;
    origin.errors++;
    origin.errorsByKind.set(err.kind, (origin.errorsByKind.get(err.kind) ?? 0) + 1);
  }

  snapshot(): ForwarderSnapshot {
    let opened = 0, reused = 0, requests = 0, errors = 0;
    const origins: Record<string, OriginSnapshot> = {};
    for (const o of this.#pools.origins.values()) {
      opened += o.opened;
      reused += o.reused;
      requests += o.requests;
      errors += o.errors;
      origins[o.key] = {
        opened: o.opened,
        reused: o.reused,
        requests: o.requests,
        errors: o.errors,
        idle: o.idle.length,
      };
    }
    return {
      connections_opened: opened,
      connections_reused: reused,
      requests,
      errors,
      reuse_ratio: requests === 0 ? 0 : Math.round((reused / requests) * 10_000) / 10_000,
      idle: this.#pools.idleCount,
      errors_by_kind: Object.fromEntries(this.#errorsByKind),
      origins,
    };
  }

  metrics(): MetricFamily[] {
    const opened: Sample[] = [], reused: Sample[] = [], requests: Sample[] = [];
    const errors: Sample[] = [], idle: Sample[] = [];
    for (const o of this.#pools.origins.values()) {
      const labels = { origin: o.key };
      opened.push({ labels, value: o.opened });
      reused.push({ labels, value: o.reused });
      requests.push({ labels, value: o.requests });
      idle.push({ labels, value: o.idle.length });
      for (const [kind, value] of o.errorsByKind) {
        errors.push({ labels: { origin: o.key, kind }, value });
      }
    }
    return [
      {
        name: "proxy_upstream_connections_opened_total",
        help: "Upstream connections opened, by origin.",
        type: "counter",
        samples: opened,
      },
      {
        name: "proxy_upstream_connections_reused_total",
        help: "Upstream requests sent on a kept-alive connection, by origin.",
        type: "counter",
        samples: reused,
      },
      {
        name: "proxy_upstream_requests_total",
        help: "Requests forwarded upstream, by origin.",
        type: "counter",
        samples: requests,
      },
      {
        name: "proxy_upstream_errors_total",
        help:
          "Upstream failures (connect, timeouts, resets, protocol, forbidden address), by origin and kind.",
        type: "counter",
        samples: errors,
      },
      {
        name: "proxy_upstream_idle_connections",
        help: "Idle keep-alive connections in the pool, by origin.",
        type: "gauge",
        samples: idle,
      },
    ];
  }

  close(): void {
    this.#pools.close();
  }
}

/** Creates a forwarder with its own keep-alive pools. */
export function createForwarder(options: ForwarderOptions): Forwarder {
  return new HttpForwarder(options);
}
