/**
 * One client connection served as HTTP/1.1: read a head, hand the app a
 * Web `Request`, write its `Response`, and again while keep-alive allows
 * (pipelined requests are answered in order). CONNECT becomes a tunnel,
 * an upgrade answered 101 a byte pipe; everything malformed gets its
 * status and the connection closes.
 *
 * Deadlines (checked by the listener's sweep, see sweeper.ts):
 * HEADER_TIMEOUT from accept or a request's first byte to its complete
 * head, KEEPALIVE_TIMEOUT between requests, BODY_TIMEOUT for a pause in a
 * request body or in the client's reading of a response, BODY_MIN_RATE
 * over a body after its first 10 s of waiting.
 *
 * @module
 */
import type { ConnInfo, HitFetch, TargetForm, WireAnswer } from "../../context/mod.ts";
import type { ProxyStats } from "../../stats/mod.ts";
import { relayUpgrade } from "../upgrade.ts";
import { handleConnect, normalizeIp, type TunnelOptions } from "../tunnel.ts";
import { answerAndClose, closeQuietly, prefixed, writeAll } from "../pipe.ts";
import type {
  AppFetch,
  ByteConn,
  RawUpgrade,
  ServeConnection,
  ServeInfo,
  UpgradeFetch,
} from "../types.ts";
import {
  BodyError,
  type BodySource,
  bodyStream,
  ChunkedBody,
  FixedBody,
  readUpTo,
  UntilCloseBody,
} from "./body.ts";
import {
  checkMethodPrefix,
  checkRequestLine,
  type HeadError,
  isHeadError,
  parseHead,
  type RequestHead,
} from "./head.ts";
import { ConnReader } from "./reader.ts";
import { HeadView, serialisedUrl } from "./request_view.ts";
import { encodeHead, plainResponse, SMALL_BODY, STATUS_TEXT, writeResponse } from "./response.ts";
import type { Sweeper, Swept } from "./sweeper.ts";

/** Everything a connection needs from its server. */
export interface ServerConfig {
  app: AppFetch;
  /**
   * Plain GET/HEAD requests without a body are offered here first: a fresh
   * cache hit is answered without building a Request or a Response. Undefined
   * from it: the request goes to `app` as usual.
   */
  hit?: HitFetch;
  /** Upgrade requests; none: 501. */
  upgrade?: UpgradeFetch;
  /** CONNECT tunnels; none (reverse-only): 405. */
  tunnel?: TunnelOptions;
  stats: ProxyStats;
  maxHeaderSize: number;
  maxHeaderCount: number;
  headerTimeoutMs: number;
  keepAliveTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Bytes per second a body must average after its first 10 s of waiting; 0 = off. */
  bodyMinRate: number;
  requestBufferSize: number;
  /** Reports what the app threw (the client gets 500). */
  onError?(err: unknown): void;
}

/** Shared state of the connections of one server. */
export interface ServerState {
  readonly config: ServerConfig;
  readonly sweeper: Sweeper;
  /** Open connections, for shutdown. */
  readonly connections: Set<Connection>;
  /** Shutting down: no keep-alive, idle connections closed. */
  closing: boolean;
  readonly serve: ServeConnection;
}

const enum Phase {
  /** Waiting for the first byte of a request (keep-alive). */
  Idle,
  /** Reading a request head. */
  Head,
  /** The app has the request (the body may be streaming). */
  App,
  /** Writing a response. */
  Write,
  /** A tunnel or an upgrade owns the connection. */
  Handed,
  Closed,
}

/** Waiting before the minimum body rate is enforced (mod_reqtimeout's MinRate grace). */
const MIN_RATE_GRACE_MS = 10_000;

const CONTINUE = new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n");
const NO_BODY_METHODS = new Set(["GET", "HEAD"]);
const NOTHING = new Uint8Array(0);

export class Connection implements Swept {
  #phase = Phase.Head;
  #deadline: number;
  /** Bytes of the current head seen (0: an idle connection). */
  #headStarted = false;
  #responseStarted = false;
  /** Set when a body broke its deadline or framing: the answer the client gets instead. */
  #bodyFailure: BodyError | undefined;
  readonly #reader: ConnReader;
  readonly #info: ServeInfo;
  readonly #remoteAddr: string;

  constructor(
    readonly conn: ByteConn,
    info: ServeInfo,
    readonly server: ServerState,
  ) {
    this.#info = info;
    this.#remoteAddr = normalizeIp(info.remoteAddr);
    // 1 KiB holds most request heads and grows for bigger ones: an idle connection keeps it.
    this.#reader = new ConnReader(conn, 1024);
    this.#deadline = Date.now() + server.config.headerTimeoutMs;
  }

  /**
   * True when no request is under way: between requests on a kept-alive connection, or before
   * the first byte of one. Shutdown closes such a connection at once (as nginx closes its
   * reusable ones): a client that connected and sent nothing must not hold the process for
   * HEADER_TIMEOUT, and one whose request crosses the close retries it like any idle keep-alive
   * client would. A head begun is served, with `connection: close`.
   */
  get idle(): boolean {
    return this.#phase === Phase.Idle ||
      (this.#phase === Phase.Head && !this.#headStarted && this.#reader.buffered === 0);
  }

  #isClosed(): boolean {
    return this.#phase === Phase.Closed;
  }

  close(): void {
    if (this.#isClosed()) return;
    this.#phase = Phase.Closed;
    closeQuietly(this.conn);
  }

  sweep(now: number): void {
    const c = this.server.config;
    switch (this.#phase) {
      case Phase.Idle:
        if (now >= this.#deadline) this.close();
        return;
      case Phase.Head:
        if (now >= this.#deadline) {
          c.stats.headerTimeouts++;
          if (this.#headStarted || this.#reader.buffered > 0) {
            this.#fail(408, "the request head took longer than HEADER_TIMEOUT");
          } else this.close();
        }
        return;
      case Phase.App:
      case Phase.Write: {
        const r = this.#reader;
        if (r.bodyMode && r.pending) {
          if (now - r.lastProgress >= c.bodyTimeoutMs) {
            c.stats.bodyTimeouts++;
            this.#bodyTimedOut(
              `no request body bytes for ${c.bodyTimeoutMs / 1000} s (BODY_TIMEOUT)`,
            );
            return;
          }
          const waited = r.waitedMs + (now - r.lastProgress);
          if (
            c.bodyMinRate > 0 && waited >= MIN_RATE_GRACE_MS &&
            r.bodyBytes / (waited / 1000) < c.bodyMinRate
          ) {
            c.stats.bodyTimeouts++;
            this.#bodyTimedOut(
              `the request body came slower than ${c.bodyMinRate} bytes/s (BODY_MIN_RATE)`,
            );
            return;
          }
        }
        if (this.#phase === Phase.Write && now >= this.#deadline) {
          // The client stopped reading the response.
          this.close();
        }
        return;
      }
    }
  }

  /** 408 for a body that broke BODY_TIMEOUT or BODY_MIN_RATE, then close. */
  #bodyTimedOut(reason: string): void {
    this.#bodyFailure = new BodyError(408, reason);
    if (this.#responseStarted) this.close();
    else this.#fail(408, reason);
  }

  /** What the app learns about the connection a request (or upgrade) came in on. */
  #connInfo(form: TargetForm, completed?: Promise<void>): ConnInfo {
    return {
      remoteAddr: this.#remoteAddr,
      remotePort: this.#info.remotePort,
      form,
      secure: this.#info.secure,
      completed,
    };
  }

  /** Answers with the server's own error and closes (the connection is done). */
  #fail(status: number, reason: string): void {
    if (this.#isClosed()) return;
    this.#phase = Phase.Closed;
    this.#responseStarted = true;
    answerAndClose(this.conn, plainResponse(status, reason)).catch(() => {});
  }

  /** Writes all of `p` with the write deadline armed; false when the client is gone. */
  #write = async (p: Uint8Array): Promise<boolean> => {
    if (this.#isClosed()) return false;
    this.#phase = Phase.Write;
    this.#deadline = Date.now() + this.server.config.bodyTimeoutMs;
    try {
      await writeAll(this.conn, p);
      return true;
    } catch {
      return false;
    }
  };

  #sink = { write: this.#write };

  /** Serves requests until the connection ends. */
  async run(): Promise<void> {
    const c = this.server.config;
    const r = this.#reader;
    while (true) {
      const head = await this.#readHead();
      if (head === undefined) return;
      if (isHeadError(head)) {
        this.#fail(head.status, head.reason);
        return;
      }
      this.#phase = Phase.App;
      let keepAlive = head.keepAlive && !this.server.closing;

      if (head.method === "CONNECT") {
        if (!c.tunnel) {
          this.#fail(405, "CONNECT is not served here: this port is a gateway (reverse proxy)");
          return;
        }
        this.#phase = Phase.Handed;
        const headers = this.#headers(head);
        if (!headers) return;
        await handleConnect(
          this.conn,
          {
            target: head.target,
            headers,
            clientIp: this.#remoteAddr,
            leftover: r.drain(),
          },
          c.tunnel,
          this.server.serve,
        );
        return;
      }
      if (head.method === "TRACE") {
        this.#fail(405, "TRACE is not allowed");
        return;
      }
      const form = this.#form(head);
      if (form === undefined) return;
      const url = this.#url(head, form);
      if (url === undefined) return;

      if (head.upgrade) {
        await this.#upgrade(
          head,
          url,
          form === "origin" && !this.#info.authority ? "origin" : form,
        );
        return;
      }

      if (
        c.hit !== undefined && !head.chunked && head.contentLength <= 0 &&
        (head.method === "GET" || head.method === "HEAD")
      ) {
        const wire = this.#hit(c.hit, head, url, form, keepAlive);
        if (wire !== undefined) {
          this.#responseStarted = true;
          const body = wire.body;
          const ok = body === null || body.length <= SMALL_BODY
            ? await this.#write(encodeHead(wire.head, body ?? undefined))
            : (await this.#write(encodeHead(wire.head))) && (await this.#write(body));
          this.#responseStarted = false;
          if (!ok || !keepAlive || this.server.closing) return this.close();
          if (this.#isClosed()) return;
          this.#idle();
          continue;
        }
      }

      // The body: whole when small (the app, admission and upstream never wait on the client),
      // streamed when large.
      let body: Uint8Array | ReadableStream<Uint8Array> | undefined;
      let source: BodySource | undefined;
      const hasBody = head.chunked || head.contentLength > 0;
      if (hasBody) {
        if (NO_BODY_METHODS.has(head.method)) {
          this.#fail(400, `a ${head.method} request with a body is not accepted`);
          return;
        }
        // 100 Continue: at once for a body read before the app sees the request; for a streamed
        // one, when the app first reads it (an app that refuses it, e.g. 413, never asks for it).
        const streamed = !head.chunked && head.contentLength > c.requestBufferSize;
        let beforeFirstRead: (() => Promise<void>) | undefined;
        if (head.expectContinue && r.buffered === 0) {
          if (streamed) {
            beforeFirstRead = () => writeAll(this.conn, CONTINUE).catch(() => {});
          } else {
            if (!(await this.#write(CONTINUE))) return this.close();
            this.#phase = Phase.App;
          }
        }
        source = head.chunked ? new ChunkedBody(r) : new FixedBody(r, head.contentLength);
        r.startBody();
        try {
          if (!head.chunked && head.contentLength <= c.requestBufferSize) {
            body = await (source as FixedBody).readAll();
          } else if (head.chunked) {
            const got = await readUpTo(source, c.requestBufferSize);
            if ("whole" in got) body = got.whole;
            else body = bodyStream(source, got.pieces, (e) => this.#bodyFailure ??= e);
          } else {
            body = bodyStream(source, [], (e) => this.#bodyFailure ??= e, beforeFirstRead);
          }
        } catch (err) {
          r.endBody();
          if (this.#isClosed()) return; // timed out: answered already
          const e = err instanceof BodyError ? err : new BodyError(400, String(err));
          if (r.eof) return this.close();
          this.#fail(e.status, e.message);
          return;
        }
        if (source.done) r.endBody();
      }

      let request: Request;
      try {
        request = new Request(url, {
          method: head.method,
          headers: head.headers,
          body: body as BodyInit | undefined,
          // @ts-ignore: duplex is required for streaming bodies and missing from lib types
          duplex: body instanceof ReadableStream ? "half" : undefined,
        });
      } catch (err) {
        this.#fail(400, `bad request: ${(err as Error).message}`);
        return;
      }
      const completed = Promise.withResolvers<void>();
      const info = this.#connInfo(form, completed.promise);
      let response: Response;
      try {
        response = await c.app(request, info);
      } catch (err) {
        c.onError?.(err);
        response = new Response("internal error\n", {
          status: 500,
          headers: { "content-type": "text/plain; charset=utf-8" },
        });
      }
      if (this.#bodyFailure) {
        // The body broke mid-way: the client gets why, not the upstream's view of it.
        response.body?.cancel().catch(() => {});
        completed.resolve();
        if (!this.#isClosed()) {
          this.#fail(this.#bodyFailure.status, this.#bodyFailure.message);
        }
        return;
      }
      if (this.#isClosed()) {
        response.body?.cancel().catch(() => {});
        completed.resolve();
        return;
      }
      // A body the app did not read to the end leaves unread bytes: the connection cannot serve
      // another request.
      if (source && !source.done) keepAlive = false;
      this.#responseStarted = true;
      const result = await writeResponse(this.#sink, response, {
        head: head.method === "HEAD",
        minor: head.minor,
        keepAlive,
      });
      completed.resolve();
      r.endBody();
      this.#responseStarted = false;
      if (result.ok && source && !source.done) {
        // Request-body bytes may still be on their way: close the write side first and drop what
        // arrives for a moment, so the client reads the answer instead of a reset.
        this.#phase = Phase.Closed;
        await answerAndClose(this.conn, NOTHING);
        return;
      }
      if (!result.ok || !result.keepAlive || this.server.closing) return this.close();
      if (this.#isClosed()) return;
      this.#idle();
    }
  }

  /** Between requests on a kept-alive connection: KEEPALIVE_TIMEOUT runs. */
  #idle(): void {
    this.#phase = Phase.Idle;
    this.#headStarted = false;
    this.#deadline = Date.now() + this.server.config.keepAliveTimeoutMs;
  }

  /** The app's answer on its hit path, or undefined: then the request goes the Request way. */
  #hit(
    hit: HitFetch,
    head: RequestHead,
    url: string,
    form: TargetForm,
    keepAlive: boolean,
  ): WireAnswer | undefined {
    const href = serialisedUrl(url);
    if (href === undefined) return undefined;
    try {
      return hit(new HeadView(head, href), this.#connInfo(form), keepAlive);
    } catch (err) {
      // Nothing is written yet: the app's usual path answers (and reports) whatever this was.
      this.server.config.onError?.(err);
      return undefined;
    }
  }

  /** Reads the next head; undefined when the connection ended or was closed. */
  async #readHead(): Promise<RequestHead | HeadError | undefined> {
    const c = this.server.config;
    const r = this.#reader;
    const max = c.maxHeaderSize;
    let scanned = 0;
    let lineStart = 0;
    let lineEnd = -1;
    while (true) {
      if (this.#isClosed()) return undefined;
      if (r.buffered > 0 && !this.#headStarted) {
        this.#headStarted = true;
        if (this.#phase === Phase.Idle) {
          this.#phase = Phase.Head;
          this.#deadline = Date.now() + c.headerTimeoutMs;
        }
      }
      const buf = r.buf;
      const base = r.start;
      const end = r.end;
      while (scanned < end - base) {
        const lf = buf.indexOf(10, base + scanned);
        if (lf < 0 || lf >= end) {
          scanned = end - base;
          break;
        }
        const off = lf - base;
        if (off === 0 || buf[lf - 1] !== 13) {
          return { status: 400, reason: "bare LF in the request head" };
        }
        if (off - 1 === lineStart) {
          if (lineEnd < 0) {
            // An empty line before the request line (RFC 9112 §2.2): skipped.
            r.consume(off + 1);
            return this.#readHead();
          }
          if (off + 1 > max) return tooLarge(max);
          const head = parseHead(buf, base, base + lineEnd, lf + 1, c);
          r.consume(off + 1);
          return head;
        }
        if (lineEnd < 0) {
          lineEnd = off - 1;
          if (lineEnd > max) return { status: 414, reason: "request-target too long" };
          const bad = checkRequestLine(buf, base, base + lineEnd);
          if (bad) return bad;
        }
        lineStart = off + 1;
        scanned = off + 1;
      }
      if (lineEnd < 0) {
        const bad = checkMethodPrefix(buf, base, end);
        if (bad) return bad;
      }
      if (end - base > max) {
        return lineEnd < 0 ? { status: 414, reason: "request-target too long" } : tooLarge(max);
      }
      let more: boolean;
      try {
        more = await r.fill(max + 4096);
      } catch {
        more = false;
      }
      if (!more) {
        this.close();
        return undefined;
      }
    }
  }

  /** The request-target's form; undefined (and answered) when it fits none. */
  #form(head: RequestHead): TargetForm | undefined {
    const t = head.target;
    if (t.charCodeAt(0) === 47) return this.#info.authority ? "absolute" : "origin";
    if (t === "*") {
      this.#fail(400, "the asterisk request-target (OPTIONS *) is not served");
      return undefined;
    }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(t)) return "absolute";
    this.#fail(400, "malformed request-target");
    return undefined;
  }

  /** The URL the app sees; undefined (and answered) when it cannot be one. */
  #url(head: RequestHead, form: TargetForm): string | undefined {
    if (form === "absolute" && head.target.charCodeAt(0) !== 47) return head.target;
    if (this.#info.authority) return `https://${this.#info.authority}${head.target}`;
    const host = head.host;
    if (host === undefined || host === "") {
      if (head.minor === 0) {
        // HTTP/1.0 may omit Host: the request is for this server.
        return `${this.#info.secure ? "https" : "http"}://localhost${head.target}`;
      }
      this.#fail(400, "empty Host header");
      return undefined;
    }
    if (!/^[A-Za-z0-9._~!$&'()*+,;=:\[\]%-]+$/.test(host)) {
      this.#fail(400, "malformed Host header");
      return undefined;
    }
    return `${this.#info.secure ? "https" : "http"}://${host}${head.target}`;
  }

  /** Web headers from the parsed fields; undefined (and answered 400) when Headers refuses them. */
  #headers(head: RequestHead): Headers | undefined {
    try {
      return new Headers(head.headers);
    } catch (err) {
      this.#fail(400, `malformed header field: ${(err as Error).message}`);
      return undefined;
    }
  }

  /** An upgrade: a byte pipe only after the upstream's 101, else a plain answer and close. */
  async #upgrade(head: RequestHead, url: string, form: TargetForm): Promise<void> {
    const c = this.server.config;
    this.#phase = Phase.Handed;
    if (!c.upgrade) {
      this.#fail(501, "protocol upgrades are not served here");
      return;
    }
    const headers = this.#headers(head);
    if (!headers) return;
    let request: Request;
    try {
      request = new Request(url, { method: head.method, headers });
    } catch (err) {
      this.#fail(400, `bad request: ${(err as Error).message}`);
      return;
    }
    const completed = Promise.withResolvers<void>();
    const info = this.#connInfo(form, completed.promise);
    let result;
    try {
      result = await c.upgrade(request, info);
    } catch (err) {
      c.onError?.(err);
      completed.resolve();
      this.#fail(502, "the upgrade failed");
      return;
    }
    if (result instanceof Response) {
      // Never a pipe after anything but 101: the rest of the connection would reach the
      // upstream unparsed (request smuggling). The answer goes out as HTTP, then close.
      this.#responseStarted = true;
      await writeResponse(this.#sink, result, { head: false, minor: head.minor, keepAlive: false });
      completed.resolve();
      this.close();
      return;
    }
    if (result.status !== 101) {
      // The upstream refused the upgrade: its answer goes to the client as plain HTTP, read with
      // its own framing, and the connection closes; no client byte ever reaches the upstream.
      const refused = upstreamAnswer(result);
      this.#responseStarted = true;
      if (refused) {
        await writeResponse(this.#sink, refused, {
          head: false,
          minor: head.minor,
          keepAlive: false,
        });
      }
      closeQuietly(result.conn);
      completed.resolve();
      if (refused) this.close();
      else this.#fail(502, `the upstream answered the upgrade with ${result.status}`);
      return;
    }
    let h = `HTTP/1.1 101 ${STATUS_TEXT[101]}\r\n`;
    result.headers.forEach((v, k) => h += `${k}: ${v}\r\n`);
    const out = encodeHead(h + "\r\n", result.head);
    this.#responseStarted = true;
    if (!(await this.#write(out))) {
      closeQuietly(result.conn);
      completed.resolve();
      this.close();
      return;
    }
    this.#phase = Phase.Handed;
    const leftover = this.#reader.drain();
    try {
      await relayUpgrade(this.conn, leftover, result, c.stats);
    } finally {
      completed.resolve();
      this.#phase = Phase.Closed;
      closeQuietly(this.conn);
    }
  }
}

/** A non-101 answer to an upgrade as a Response whose body is read off the upstream connection. */
function upstreamAnswer(up: RawUpgrade): Response | undefined {
  const status = up.status;
  if (status < 200 || status > 599) return undefined;
  const reader = new ConnReader(prefixed(up.conn, up.head), 16 * 1024);
  let source: BodySource | undefined;
  if (status !== 204 && status !== 304) {
    const length = up.headers.get("content-length");
    if (/chunked/i.test(up.headers.get("transfer-encoding") ?? "")) {
      source = new ChunkedBody(reader);
    } else if (length !== null && /^\d{1,15}$/.test(length)) {
      source = new FixedBody(reader, Number(length));
    } else source = new UntilCloseBody(reader);
  }
  const headers = new Headers(up.headers);
  headers.delete("transfer-encoding");
  try {
    return new Response(source ? bodyStream(source, [], () => {}) : null, { status, headers });
  } catch {
    return undefined;
  }
}

function tooLarge(max: number): HeadError {
  return {
    status: 431,
    reason:
      `Request Header Fields Too Large: the request head exceeds ${max} bytes (MAX_HEADER_SIZE)`,
  };
}
