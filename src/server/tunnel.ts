/**
 * CONNECT tunnels: a raw TCP pipe between the client's socket (handed over
 * by node:http's `connect` event) and the destination, with byte counts.
 *
 * The tunnel ends at the first `end`, `close` or `error` of *either* side:
 * on Deno 2.9 the client-side socket of a `connect` event does not reliably
 * emit `close` (see DESIGN.md, known pitfalls), so waiting for both would
 * leak tunnels.
 *
 * @module
 */
import type { IncomingMessage } from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import type { ProxyStats } from "../stats/mod.ts";
import { type Authority, parseAuthority } from "./authority.ts";

/** Why a tunnel is refused, decided before any connection is made. */
export interface Refusal {
  readonly status: number;
  readonly reason: string;
  readonly headers?: Record<string, string>;
}

export interface TunnelRequest {
  readonly authority: Authority;
  readonly clientIp: string;
  readonly headers: IncomingMessage["headers"];
}

export interface TunnelOptions {
  stats: ProxyStats;
  connectTimeoutMs: number;
  /** Checks before connecting: ACL, proxy auth, CONNECT_PORTS, filter. */
  admit(req: TunnelRequest): Promise<Refusal | undefined> | Refusal | undefined;
  /** Checks the address actually connected to (SSRF); returns a reason to refuse. */
  checkAddress?(ip: string, host: string): string | undefined;
  /** Logs one line per tunnel. */
  log?(line: TunnelLogLine): void;
}

export interface TunnelLogLine {
  clientIp: string;
  target: string;
  status: number;
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
  reason?: string;
}

const REASONS: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  407: "Proxy Authentication Required",
  429: "Too Many Requests",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

function refuse(
  socket: Duplex,
  status: number,
  reason: string,
  headers: Record<string, string> = {},
) {
  const body = `${reason}\n`;
  let head = `HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  head += `content-type: text/plain; charset=utf-8\r\ncontent-length: ${
    new TextEncoder().encode(body).length
  }\r\nconnection: close\r\n\r\n`;
  socket.end(head + body);
}

/** Handles one `connect` event. */
export async function handleConnect(
  req: IncomingMessage,
  client: Duplex,
  head: Uint8Array,
  options: TunnelOptions,
): Promise<void> {
  const { stats } = options;
  const started = performance.now();
  const clientIp = normalizeIp(req.socket.remoteAddress ?? "");
  const target = req.url ?? "";
  client.on("error", () => {/* reported through the tunnel's end */});
  const authority = parseAuthority(target);
  const logRefusal = (status: number, reason: string) => {
    stats.tunnelRefused(status);
    options.log?.({
      clientIp,
      target,
      status,
      bytesUp: 0,
      bytesDown: 0,
      durationMs: performance.now() - started,
      reason,
    });
  };
  if (!authority) {
    logRefusal(400, "bad CONNECT target");
    refuse(client, 400, `bad CONNECT target "${target.slice(0, 200)}": expected host:port`);
    return;
  }
  let refusal: Refusal | undefined;
  try {
    refusal = await options.admit({ authority, clientIp, headers: req.headers });
  } catch (err) {
    refusal = { status: 503, reason: `proxy error: ${(err as Error).message}` };
  }
  if (refusal) {
    logRefusal(refusal.status, refusal.reason);
    refuse(client, refusal.status, refusal.reason, refusal.headers);
    return;
  }

  const upstream = net.connect({ host: authority.host, port: authority.port });
  upstream.setNoDelay(true);
  const connected = await new Promise<string | undefined>((resolve) => {
    const timer = setTimeout(() => resolve("connect-timeout"), options.connectTimeoutMs);
    upstream.once("connect", () => {
      clearTimeout(timer);
      resolve(undefined);
    });
    upstream.once("error", (err) => {
      clearTimeout(timer);
      resolve((err as NodeJS.ErrnoException).code ?? err.message);
    });
  });
  if (connected !== undefined) {
    upstream.destroy();
    const status = connected === "connect-timeout" ? 504 : 502;
    const reason = connected === "connect-timeout"
      ? `timed out connecting to ${target}`
      : `cannot connect to ${target}: ${connected}`;
    logRefusal(status, reason);
    refuse(client, status, reason);
    return;
  }
  const connectedIp = normalizeIp(upstream.remoteAddress ?? "");
  const forbidden = options.checkAddress?.(connectedIp, authority.host);
  if (forbidden) {
    upstream.destroy();
    logRefusal(403, forbidden);
    refuse(client, 403, forbidden);
    return;
  }

  stats.tunnelOpened();
  let bytesUp = head.length;
  let bytesDown = 0;
  let ended = false;
  const end = (failed: boolean) => {
    if (ended) return;
    ended = true;
    upstream.destroy();
    client.destroy();
    stats.tunnelClosed(bytesUp, bytesDown, !failed);
    options.log?.({
      clientIp,
      target,
      status: 200,
      bytesUp,
      bytesDown,
      durationMs: performance.now() - started,
    });
  };
  // Half-close is passed on: the side that ended stops writing, and the tunnel ends once the
  // other side has ended too, or at once on close/error.
  let clientEnded = false;
  let upstreamEnded = false;
  client.on("data", (chunk: Uint8Array) => {
    bytesUp += chunk.length;
    if (!upstream.write(chunk)) client.pause();
  });
  upstream.on("drain", () => client.resume());
  upstream.on("data", (chunk: Uint8Array) => {
    bytesDown += chunk.length;
    if (!client.write(chunk)) upstream.pause();
  });
  client.on("drain", () => upstream.resume());
  client.on("end", () => {
    clientEnded = true;
    upstream.end();
    if (upstreamEnded) end(false);
  });
  upstream.on("end", () => {
    upstreamEnded = true;
    client.end();
    if (clientEnded) end(false);
  });
  client.on("close", () => end(false));
  upstream.on("close", () => end(false));
  client.on("error", () => end(true));
  upstream.on("error", () => end(true));

  client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
  if (head.length > 0) upstream.write(head);
}

/** `::ffff:127.0.0.1` → `127.0.0.1`. */
export function normalizeIp(ip: string): string {
  return ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip;
}
