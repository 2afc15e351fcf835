/**
 * The node:http listener: the one that sees the request-target form and can
 * tunnel CONNECT, so it serves forward proxying. It adapts each request to
 * a Web `Request`, calls the app, and writes the `Response` back with
 * backpressure.
 *
 * @module
 */
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { ConnInfo } from "../context/mod.ts";
import { handleConnect, normalizeIp, type TunnelOptions } from "./tunnel.ts";
import type { AppFetch, Listener, ListenOptions, RawUpgrade, UpgradeFetch } from "./types.ts";

export interface NodeListenOptions extends ListenOptions {
  tunnel: TunnelOptions;
  /** Upgrade (WebSocket) requests: raw socket hand-over. */
  /** Upgrade (WebSocket) requests: the app picks the upstream, the listener pipes the bytes. */
  onUpgrade?: UpgradeFetch;
  maxHeaderSize: number;
  headerTimeoutMs: number;
  /** PEM certificate and key: clients reach the proxy over TLS (an "HTTPS proxy"). */
  tls?: { cert: string; key: string };
}

const NO_BODY = new Set(["GET", "HEAD", "DELETE", "OPTIONS", "TRACE"]);

/** Response bodies up to this size (with Content-Length) are written in one call. */
const SMALL_BODY = 64 * 1024;

function requestBody(req: http.IncomingMessage): ReadableStream<Uint8Array> | null {
  const hasBody = req.headers["transfer-encoding"] !== undefined ||
    (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0");
  if (!hasBody && NO_BODY.has(req.method ?? "GET")) return null;
  if (!hasBody) return null;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      req.on("data", (chunk: Uint8Array) => {
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 1) <= 0) req.pause();
      });
      req.once("end", () => {
        try {
          controller.close();
        } catch { /* cancelled */ }
      });
      req.once("error", (err) => {
        try {
          controller.error(err);
        } catch { /* cancelled */ }
      });
      req.once("aborted", () => {
        try {
          controller.error(new Error("client aborted the request body"));
        } catch { /* cancelled */ }
      });
    },
    pull() {
      req.resume();
    },
    cancel() {
      req.resume();
    },
  }, { highWaterMark: 4 });
}

function toRequest(
  req: http.IncomingMessage,
  secure: boolean,
): { request: Request; absolute: boolean } {
  const target = req.url ?? "/";
  const absolute = !target.startsWith("/");
  const raw = req.rawHeaders;
  const headers: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) headers.push([raw[i], raw[i + 1]]);
  const url = absolute
    ? target
    : `${secure ? "https" : "http"}://${req.headers.host || "localhost"}${target}`;
  const body = requestBody(req);
  const request = new Request(url, {
    method: req.method,
    headers,
    body,
    // @ts-ignore: duplex is required for streaming bodies and missing from older lib types
    duplex: body ? "half" : undefined,
  });
  return { request, absolute };
}

async function writeResponse(res: http.ServerResponse, response: Response): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of response.headers) {
    if (k === "set-cookie") continue;
    headers[k] = v;
  }
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers["set-cookie"] = cookies;
  res.writeHead(response.status, response.statusText || undefined, headers);
  if (!response.body) {
    res.end();
    return;
  }
  // A small body of known length is read whole and written with the head in one go: reading
  // it as a stream costs a promise per chunk and a write per chunk.
  const length = headers["content-length"];
  if (typeof length === "string" && Number(length) <= SMALL_BODY) {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await response.arrayBuffer());
    } catch {
      res.destroy();
      return;
    }
    res.end(bytes);
    return;
  }
  const reader = response.body.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value)) {
        await new Promise<void>((resolve) => {
          const go = () => {
            res.off("drain", go);
            res.off("close", go);
            resolve();
          };
          res.on("drain", go);
          res.on("close", go);
        });
        if (res.destroyed) {
          await reader.cancel().catch(() => {});
          return;
        }
      }
    }
    res.end();
  } catch {
    // The upstream body failed mid-way: the client must see a failed transfer, never a short
    // body passed off as complete, so the connection is cut instead of ending the response.
    res.destroy();
  }
}

/** Answers an upgrade request with a plain response and closes the connection. */
async function refuseUpgrade(socket: Duplex, res: Response): Promise<void> {
  const body = new Uint8Array(await res.arrayBuffer().catch(() => new ArrayBuffer(0)));
  let head = `HTTP/1.1 ${res.status} ${http.STATUS_CODES[res.status] ?? ""}\r\n`;
  for (const [k, v] of res.headers) head += `${k}: ${v}\r\n`;
  head += `content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
  socket.write(head);
  socket.end(body);
}

/** Writes the upstream's answer to the client, then pipes bytes both ways until either side ends. */
function pipeUpgrade(socket: Duplex, clientHead: Uint8Array, up: RawUpgrade): void {
  let head = `HTTP/1.1 ${up.status} ${http.STATUS_CODES[up.status] ?? ""}\r\n`;
  for (const [k, v] of up.headers) head += `${k}: ${v}\r\n`;
  socket.write(head + "\r\n");
  if (up.head.length > 0) socket.write(up.head);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    socket.destroy();
    try {
      up.conn.close();
    } catch { /* already closed */ }
  };
  const writer = up.conn.writable.getWriter();
  const toUpstream = (chunk: Uint8Array) => {
    socket.pause();
    writer.write(new Uint8Array(chunk)).then(() => socket.resume(), close);
  };
  if (clientHead.length > 0) toUpstream(clientHead);
  socket.on("data", toUpstream);
  socket.on("end", close);
  socket.on("close", close);
  (async () => {
    for await (const chunk of up.conn.readable) {
      if (!socket.write(chunk)) await new Promise((r) => socket.once("drain", r));
    }
  })().catch(() => {}).finally(close);
}

const STATUS_FOR_PARSE_ERROR: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, "request header fields too large"],
  ERR_HTTP_REQUEST_TIMEOUT: [408, "request timeout"],
  HPE_INVALID_TRANSFER_ENCODING: [400, "conflicting or invalid Transfer-Encoding"],
  HPE_UNEXPECTED_CONTENT_LENGTH: [400, "conflicting Content-Length and Transfer-Encoding"],
  HPE_INVALID_CONTENT_LENGTH: [400, "invalid Content-Length"],
  HPE_INVALID_METHOD: [400, "invalid method"],
  HPE_INVALID_URL: [400, "invalid request-target"],
  HPE_INVALID_VERSION: [505, "unsupported HTTP version"],
};

export function listenNode(app: AppFetch, options: NodeListenOptions): Promise<Listener> {
  const secure = options.tls !== undefined;
  const serverOptions = {
    maxHeaderSize: options.maxHeaderSize,
    headersTimeout: options.headerTimeoutMs,
    requestTimeout: 0,
    keepAliveTimeout: 5_000,
    // Node checks headersTimeout only this often (30 s by default), so slow clients would
    // keep their connection far longer than HEADER_TIMEOUT says.
    connectionsCheckingInterval: Math.max(100, Math.min(1000, options.headerTimeoutMs)),
  };
  const server = options.tls
    ? https.createServer({ ...serverOptions, cert: options.tls.cert, key: options.tls.key })
    : http.createServer(serverOptions);
  const sockets = new Set<Socket>();
  const stats = options.tunnel.stats;
  server.on("connection", (socket: Socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    stats.clientConnections++;
    socket.once("close", () => {
      if (sockets.delete(socket)) stats.clientConnections--;
    });
  });
  server.on("request", async (req: http.IncomingMessage, res: http.ServerResponse) => {
    let response: Response;
    try {
      const { request, absolute } = toRequest(req, secure);
      const conn: ConnInfo = {
        remoteAddr: normalizeIp(req.socket.remoteAddress ?? ""),
        remotePort: req.socket.remotePort ?? 0,
        form: absolute ? "absolute" : "origin",
        secure,
        completed: new Promise<void>((resolve) => res.once("close", resolve)),
      };
      response = await app(request, conn);
    } catch (err) {
      const message = err instanceof TypeError ? `bad request: ${err.message}` : "internal error";
      response = new Response(`${message}\n`, {
        status: err instanceof TypeError ? 400 : 500,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    await writeResponse(res, response);
  });
  server.on("checkContinue", (req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeContinue();
    server.emit("request", req, res);
  });
  server.on("connect", (req: http.IncomingMessage, socket: Duplex, head: Uint8Array) => {
    handleConnect(req, socket, head, options.tunnel).catch(() => socket.destroy());
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Uint8Array) => {
    socket.on("error", () => socket.destroy());
    if (!options.onUpgrade) {
      socket.end("HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
      return;
    }
    const { request, absolute } = toRequest(req, secure);
    const conn: ConnInfo = {
      remoteAddr: normalizeIp(req.socket.remoteAddress ?? ""),
      remotePort: req.socket.remotePort ?? 0,
      form: absolute ? "absolute" : "origin",
      secure,
    };
    options.onUpgrade(request, conn).then(
      (result) =>
        result instanceof Response
          ? refuseUpgrade(socket, result)
          : pipeUpgrade(socket, head, result),
      () => socket.destroy(),
    );
  });
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const [status, reason] = STATUS_FOR_PARSE_ERROR[err.code ?? ""] ?? [400, "malformed request"];
    const body = `${reason}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${
        http.STATUS_CODES[status]
      }\r\ncontent-type: text/plain; charset=utf-8\r\n` +
        `content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
    );
  });

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname, () => {
      server.off("error", reject);
      const addr = server.address() as { address: string; port: number };
      resolve({
        kind: "node:http",
        hostname: addr.address,
        port: addr.port,
        setCertificate(tls) {
          const secureServer = server as https.Server;
          if (!secure || typeof secureServer.setSecureContext !== "function") return false;
          secureServer.setSecureContext({ cert: tls.cert, key: tls.key });
          return true;
        },
        async close(timeoutMs: number) {
          const closed = new Promise<void>((r) => server.close(() => r()));
          server.closeIdleConnections?.();
          const deadline = setTimeout(() => {
            for (const s of sockets) s.destroy();
          }, timeoutMs);
          // Connections that finish their in-flight request close themselves (keep-alive is
          // refused once closing); idle ones are closed at once.
          const sweeper = setInterval(() => server.closeIdleConnections?.(), 50);
          await closed;
          clearTimeout(deadline);
          clearInterval(sweeper);
        },
      });
    });
  });
}
