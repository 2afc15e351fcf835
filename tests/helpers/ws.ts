/**
 * WebSocket test kit on npm `ws` (a test-only dependency): a raw WebSocket
 * origin that records what reached it (request head, pings, pongs, messages,
 * close code and reason) and counts its open TCP connections, plus clients
 * that reach it directly, through a gateway or through a CONNECT tunnel.
 *
 * ```ts
 * const origin = await startWsOrigin();
 * const ws = await openWs(`ws://127.0.0.1:${origin.port}/echo`);
 * const peer = await origin.accepted(); // the origin's side of that socket
 * ```
 */
import http from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
// Test-only dependency (deno.json "ws"): a real WebSocket client and server.
import { WebSocket, WebSocketServer } from "ws";

export { WebSocket };

/** What the origin saw of one accepted WebSocket. */
export interface OriginPeer {
  /** The request line's target. */
  url: string;
  /** Header lines exactly as received: [name, value] in order, names as spelled. */
  rawHeaders: [string, string][];
  /** Sec-WebSocket-Protocol tokens the origin parsed (ws joins repeated lines). */
  offeredProtocols: string[];
  socket: WebSocket;
  pings: string[];
  pongs: string[];
  messages: { data: Uint8Array; binary: boolean }[];
  /** Resolves with the close code and reason the origin received (1006: connection lost). */
  closed: Promise<{ code: number; reason: string }>;
}

export interface WsOrigin {
  readonly port: number;
  /** TCP connections open on the origin right now (upgraded or not). */
  openConnections(): number;
  /** Upgrade requests the origin refused. */
  refused: number;
  /** The next accepted WebSocket (in accept order). */
  accepted(): Promise<OriginPeer>;
  /** Every accepted WebSocket so far. */
  readonly peers: OriginPeer[];
  close(): Promise<void>;
}

export interface WsOriginOptions {
  /** Negotiate permessage-deflate when the client offers it (default true). */
  perMessageDeflate?: boolean;
  /** Echo each message back (default true). */
  echo?: boolean;
}

/**
 * Starts a WebSocket origin on 127.0.0.1. Paths:
 * - anything: accepts the upgrade (echoing messages unless `echo: false`);
 * - `/refuse` or a request without `Sec-WebSocket-Key`: answers 403 with a body and keeps the
 *   TCP connection open (the worst case for a proxy that forgets to close its side);
 * - `/hang`: never answers.
 */
export async function startWsOrigin(options: WsOriginOptions = {}): Promise<WsOrigin> {
  const echo = options.echo ?? true;
  const server = http.createServer((_req, res) => {
    res.writeHead(426, { "content-type": "text/plain", upgrade: "websocket" });
    res.end("upgrade required\n");
  });
  const sockets = new Set<Duplex>();
  server.on("connection", (s: Duplex) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
  });
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: 64 * 1024 * 1024,
    perMessageDeflate: options.perMessageDeflate ?? true,
    handleProtocols: (protocols: Set<string>) => protocols.values().next().value ?? false,
  });
  const peers: OriginPeer[] = [];
  const waiting: ((p: OriginPeer) => void)[] = [];
  let handed = 0;
  const origin: WsOrigin = {
    port: 0,
    refused: 0,
    peers,
    openConnections: () => sockets.size,
    accepted() {
      const i = handed++;
      if (i < peers.length) return Promise.resolve(peers[i]);
      return new Promise((resolve) => waiting.push(resolve));
    },
    async close() {
      for (const c of wss.clients) c.terminate();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Uint8Array) => {
    if (
      req.url === "/hang" || req.url === "/refuse" || req.headers["sec-websocket-key"] === undefined
    ) {
      // Nobody reads a socket after an upgrade event: without this its end would go unseen.
      socket.on("end", () => socket.destroy());
      socket.resume();
    }
    if (req.url === "/hang") return;
    if (req.url === "/refuse" || req.headers["sec-websocket-key"] === undefined) {
      origin.refused++;
      const body = "refused by the origin\n";
      socket.write(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\nx-origin: refused\r\n" +
          `content-length: ${body.length}\r\n\r\n${body}`,
      );
      return; // the connection stays open: closing it is the proxy's job
    }
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const raw: [string, string][] = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        raw.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
      }
      const offered = String(req.headers["sec-websocket-protocol"] ?? "")
        .split(",").map((s) => s.trim()).filter((s) => s !== "");
      const peer: OriginPeer = {
        url: req.url ?? "",
        rawHeaders: raw,
        offeredProtocols: offered,
        socket: ws,
        pings: [],
        pongs: [],
        messages: [],
        closed: new Promise((resolve) => {
          ws.on(
            "close",
            (code: number, reason: Uint8Array) =>
              resolve({ code, reason: new TextDecoder().decode(reason) }),
          );
        }),
      };
      ws.on("error", () => {});
      ws.on("ping", (d: Uint8Array) => peer.pings.push(new TextDecoder().decode(d)));
      ws.on("pong", (d: Uint8Array) => peer.pongs.push(new TextDecoder().decode(d)));
      ws.on("message", (data: Uint8Array, binary: boolean) => {
        peer.messages.push({ data, binary });
        if (echo) ws.send(data, { binary });
      });
      peers.push(peer);
      waiting.shift()?.(peer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  (origin as { port: number }).port = (server.address() as { port: number }).port;
  return origin;
}

/** The value of a header as the origin received it (first line with that name), or undefined. */
export function rawHeader(peer: OriginPeer, name: string): string | undefined {
  const n = name.toLowerCase();
  return peer.rawHeaders.find(([k]) => k.toLowerCase() === n)?.[1];
}

export interface OpenOptions {
  protocols?: string | string[];
  headers?: Record<string, string>;
  perMessageDeflate?: boolean;
  /** CA for wss:// through the TLS listener. */
  ca?: string;
  /** Reach the URL's authority through a CONNECT tunnel opened on this proxy port. */
  connectVia?: number;
}

/** Opens a WebSocket with npm `ws`; resolves once open, rejects with the refusal status. */
export async function openWs(url: string, options: OpenOptions = {}): Promise<WebSocket> {
  let tunnel: Duplex | undefined;
  if (options.connectVia !== undefined) {
    const u = new URL(url);
    tunnel = await connectTunnel(options.connectVia, u.host);
    if (u.protocol === "wss:") {
      tunnel = tls.connect({
        socket: tunnel as net.Socket,
        servername: u.hostname,
        ca: options.ca,
      });
    }
  }
  const ws = new WebSocket(url, options.protocols ?? [], {
    headers: options.headers,
    perMessageDeflate: options.perMessageDeflate ?? true,
    maxPayload: 64 * 1024 * 1024,
    ca: options.ca,
    ...(tunnel ? { createConnection: () => tunnel } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("unexpected-response", (_req: unknown, res: http.IncomingMessage) => {
      reject(new Error(`upgrade refused with ${res.statusCode}`));
      res.resume();
    });
    ws.once("error", reject);
  });
  ws.on("error", () => {});
  return ws;
}

/** Opens a CONNECT tunnel to `authority` through the proxy on `proxyPort`. */
export function connectTunnel(proxyPort: number, authority: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(proxyPort, "127.0.0.1", () => {
      s.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    });
    let got = "";
    const onData = (chunk: Uint8Array) => {
      got += new TextDecoder().decode(chunk);
      const end = got.indexOf("\r\n\r\n");
      if (end < 0) return;
      s.off("data", onData);
      if (!/^HTTP\/1\.1 200/.test(got)) {
        s.destroy();
        reject(new Error(`CONNECT refused: ${got.split("\r\n")[0]}`));
        return;
      }
      // Not paused: a paused socket stays paused for the HTTP client that takes it over, and
      // nothing arrives before the client's request anyway.
      resolve(s);
    };
    s.on("data", onData);
    s.once("error", reject);
  });
}

/** Resolves when the client's socket closed, with the code and reason it received. */
export function closedOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve({ code: 1006, reason: "" });
  return new Promise((resolve) => {
    ws.once(
      "close",
      (code: number, reason: Uint8Array) =>
        resolve({ code, reason: new TextDecoder().decode(reason) }),
    );
  });
}

/** The next message the client receives. */
export function nextMessage(ws: WebSocket): Promise<{ data: Uint8Array; binary: boolean }> {
  return new Promise((resolve) => {
    ws.once("message", (data: Uint8Array, binary: boolean) => resolve({ data, binary }));
  });
}

/** Open file descriptors of a process (Linux /proc). */
export function openFds(pid: number): number {
  let n = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
  return n;
}

/** Polls `check` until it returns true, or throws naming `what` after `timeoutMs`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: () => string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
