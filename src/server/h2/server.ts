/**
 * HTTP/2 sessions served with node:http2 (nghttp2 inside Deno): every
 * stream becomes a Web `Request` for the same app the HTTP/1.1 server
 * calls, and its `Response` goes back as HEADERS + DATA with the
 * stream's flow control as back-pressure (a slow client holds the
 * upstream back instead of the body being buffered).
 *
 * nghttp2 checks the framing and the field rules of RFC 9113 §8 (pseudo
 * headers, connection-specific fields, malformed requests become stream
 * errors; the session goes on serving the others). What is left here is
 * the proxy's own: the target URL, limits, and keeping hop-by-hop fields
 * of the app's response off the wire (§8.2.2).
 *
 * @module
 */
import http2 from "node:http2";
import type { Duplex } from "node:stream";
import type { ConnInfo } from "../../context/mod.ts";
import { normalizeIp } from "../tunnel.ts";
import type { ServeInfo } from "../types.ts";
import type { ServerConfig } from "../http1/connection.ts";
import { responseHeaders } from "./fields.ts";
import { requestBody } from "./body.ts";
import { guardGoaway } from "./goaway_guard.ts";

/** HTTP/2 next to the HTTP/1.1 server: the same app, limits and stats. */
export interface H2Server {
  /** Serves one connection that negotiated `h2` until its session ends; never rejects. */
  serveSocket(socket: Duplex, info: ServeInfo): Promise<void>;
  /** Open sessions. */
  readonly size: number;
  /** GOAWAY to every session: streams in flight finish for up to `timeoutMs`, then the rest are cut. */
  drain(timeoutMs: number): Promise<void>;
}

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;
const NO_BODY_METHODS = new Set(["GET", "HEAD"]);
const AUTHORITY = /^[A-Za-z0-9._~!$&'()*+,;=:\[\]%-]+$/;

interface SessionState {
  readonly info: ServeInfo;
  readonly remoteAddr: string;
  /** Streams whose response has not finished: the idle timeout leaves such a session alone. */
  active: number;
}

export function createH2Server(config: ServerConfig): H2Server {
  const sessions = new Map<http2.ServerHttp2Session, SessionState>();
  let closing = false;
  /** The ServeInfo of the connection being handed over (the 'session' event fires synchronously). */
  let handing: ServeInfo | undefined;

  const server = http2.createServer({
    // The request-head limits of the HTTP/1.1 listener, as HTTP/2 settings.
    maxHeaderListPairs: config.maxHeaderCount + 8,
    maxSendHeaderBlockLength: 256 * 1024,
    settings: {
      maxHeaderListSize: config.maxHeaderSize,
      maxConcurrentStreams: 128,
      enablePush: false,
    },
  });

  server.on("session", (session: http2.ServerHttp2Session) => {
    const info = handing!;
    const state: SessionState = { info, remoteAddr: normalizeIp(info.remoteAddr), active: 0 };
    sessions.set(session, state);
    session.on("error", () => {});
    // Sessions leave the table when they close, however they end.
    session.once("close", () => sessions.delete(session));
    // An idle session (no stream open) goes away after KEEPALIVE_TIMEOUT, as an idle
    // HTTP/1.1 connection does; a stream waiting on its upstream keeps it.
    session.setTimeout(config.keepAliveTimeoutMs, () => {
      if (state.active === 0) session.close();
    });
    if (closing) session.close();
  });
  server.on("sessionError", () => {});
  server.on("error", () => {});
  containNghttp2Errors(config.onError);
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    const state = sessions.get(stream.session as http2.ServerHttp2Session);
    if (!state) return stream.close(NGHTTP2_REFUSED_STREAM);
    serveStream(stream, headers, state).catch((err) => {
      config.onError?.(err);
      if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
    });
  });

  /** One request: the app's answer, streamed with the stream's flow control. */
  async function serveStream(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    state: SessionState,
  ): Promise<void> {
    stream.on("error", () => {});
    state.active++;
    const completed = Promise.withResolvers<void>();
    stream.once("close", () => {
      state.active--;
      completed.resolve();
    });
    const method = headers[":method"] as string;
    const path = headers[":path"] as string | undefined;
    if (method === "CONNECT") {
      return plain(stream, 405, "CONNECT is not served over HTTP/2: use HTTP/1.1 for tunnels");
    }
    const authority = (headers[":authority"] ?? headers.host) as string | undefined;
    const info = state.info;
    if (path === undefined || path.charCodeAt(0) !== 47) {
      return plain(stream, 400, "malformed :path");
    }
    let url: string;
    if (info.authority) url = `https://${info.authority}${path}`;
    else if (authority === undefined || authority === "" || !AUTHORITY.test(authority)) {
      return plain(stream, 400, "missing or malformed :authority");
    } else url = `${info.secure ? "https" : "http"}://${authority}${path}`;

    const fields = new Headers();
    try {
      for (const name in headers) {
        if (name.charCodeAt(0) === 58) continue; // pseudo-header
        const value = headers[name];
        if (Array.isArray(value)) { for (const v of value) fields.append(name, v); }
        else if (value !== undefined) fields.append(name, String(value));
      }
      if (!fields.has("host") && authority) fields.set("host", authority);
    } catch (err) {
      return plain(stream, 400, `malformed header field: ${(err as Error).message}`);
    }

    let body: Uint8Array | ReadableStream<Uint8Array> | undefined;
    const endAfterHeaders = (stream as unknown as { endAfterHeaders: boolean }).endAfterHeaders;
    if (endAfterHeaders) {
      // Let the (empty) request side flow. Left unread, Deno 2.9's node:http2 closes the stream
      // as soon as the response's writable side has finished, which it reports before the last
      // DATA frames have left when they wait for the client's window: the client then gets
      // RST_STREAM(NO_ERROR) instead of END_STREAM, a reset instead of a complete response
      // (seen on multiplexed downloads; node's kMaybeDestroy closes unread server streams).
      stream.resume();
    } else if (!stream.readableEnded) {
      if (NO_BODY_METHODS.has(method) && headers["content-length"] !== "0") {
        // A body may still follow; HTTP/1.1 answers such a request 400, so does HTTP/2.
        return plain(stream, 400, `a ${method} request with a body is not accepted`);
      }
      body = await requestBody(stream, config.requestBufferSize);
      if (stream.destroyed) return;
    }

    let request: Request;
    try {
      request = new Request(url, {
        method,
        headers: fields,
        body: body as BodyInit | undefined,
        // @ts-ignore: duplex is required for streaming bodies and missing from lib types
        duplex: body instanceof ReadableStream ? "half" : undefined,
      });
    } catch (err) {
      return plain(stream, 400, `bad request: ${(err as Error).message}`);
    }
    const conn: ConnInfo = {
      remoteAddr: state.remoteAddr,
      remotePort: info.remotePort,
      form: info.authority ? "absolute" : "origin",
      secure: info.secure,
      completed: completed.promise,
    };
    let response: Response;
    try {
      response = await config.app(request, conn);
    } catch (err) {
      config.onError?.(err);
      response = new Response("internal error\n", {
        status: 500,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    await writeResponse(stream, response, method === "HEAD");
  }

  return {
    serveSocket(socket, info) {
      return new Promise<void>((resolve) => {
        handing = info;
        try {
          server.emit("connection", guardGoaway(socket));
        } finally {
          handing = undefined;
        }
        socket.once("close", () => resolve());
      });
    },
    get size() {
      return sessions.size;
    },
    async drain(timeoutMs) {
      closing = true;
      const open = [...sessions.keys()];
      const closed = open.map((s) =>
        new Promise<void>((resolve) => {
          if (s.closed || s.destroyed) return resolve();
          s.once("close", () => resolve());
          // GOAWAY: streams already open finish, new ones are refused.
          s.close();
        })
      );
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<void>((r) => timer = setTimeout(r, timeoutMs));
      await Promise.race([Promise.all(closed), deadline]);
      clearTimeout(timer);
      for (const s of sessions.keys()) if (!s.destroyed) s.destroy();
    },
  };
}

let containing = false;
/** Where contained errors are reported (the first server's onError: they are process-wide). */
let reportContained: ((err: unknown) => void) | undefined;

/**
 * Deno 2.9's node:http2 raises nghttp2's connection errors ("Protocol error", from
 * `onSessionInternalError`) as uncaught exceptions, out of reach of any try/catch or 'error'
 * listener: left alone, one client's bad bytes would end the process. This handler keeps the
 * process alive for exactly those (matched by where they come from); the session they belong to
 * is torn down by node:http2 itself. Everything else stays fatal.
 */
function containNghttp2Errors(report: ((err: unknown) => void) | undefined): void {
  reportContained ??= report;
  if (containing) return;
  containing = true;
  globalThis.addEventListener("error", (event) => {
    const err = event.error;
    if (err instanceof Error && (err.stack ?? "").includes("onSessionInternalError")) {
      event.preventDefault();
      reportContained?.(err);
    }
  });
}

/** A short answer of the proxy's own (the stream ends; the session serves on). */
function plain(stream: http2.ServerHttp2Stream, status: number, reason: string): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({ ":status": status, "content-type": "text/plain; charset=utf-8" });
  stream.end(`${reason}\n`);
}

/** Writes the app's response, honouring the stream's window; the body is cancelled if the client resets. */
async function writeResponse(
  stream: http2.ServerHttp2Stream,
  response: Response,
  head: boolean,
): Promise<void> {
  const body = response.body;
  if (stream.destroyed || stream.closed) {
    body?.cancel().catch(() => {});
    return;
  }
  const status = response.status;
  const empty = head || status === 204 || status === 304 || body === null;
  stream.respond(responseHeaders(response), { endStream: empty });
  if (empty) {
    body?.cancel().catch(() => {});
    return;
  }
  const reader = body!.getReader();
  // RST_STREAM (or the session going away) releases the upstream at once.
  const onClose = () => reader.cancel().catch(() => {});
  stream.once("close", onClose);
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!(await send(stream, value))) return;
    }
    if (!stream.destroyed && !stream.closed) stream.end();
  } catch {
    // The upstream broke mid-body: the client sees the stream reset, not a short body.
    if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
  } finally {
    stream.off("close", onClose);
  }
}

/** Writes one chunk with back-pressure; false when the stream closed first. */
async function send(stream: http2.ServerHttp2Stream, chunk: Uint8Array): Promise<boolean> {
  if (stream.destroyed || stream.closed) return false;
  if (stream.write(chunk)) return true;
  return await drained(stream);
}

/** Resolves true once the stream can take more, false when it closed first. */
function drained(stream: http2.ServerHttp2Stream): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (open: boolean) => {
      stream.off("drain", onDrain);
      stream.off("close", onClose);
      resolve(open);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    stream.on("drain", onDrain);
    stream.on("close", onClose);
  });
}
