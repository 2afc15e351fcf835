/**
 * CONNECT tunnels: after admission, a TCP connection to the destination and
 * a byte pipe between it and the client's connection, with byte counts.
 *
 * A side that ends its stream is half-closed on the other; the tunnel ends
 * when both directions have ended, at the first error of either side, or
 * LINGER_MS after the first end (a peer that never finishes must not hold
 * the tunnel), so the open-tunnel count always returns to zero.
 *
 * @module
 */
import type { ProxyStats } from "../stats/mod.ts";
import { type Authority, parseAuthority } from "./authority.ts";
import { answerAndClose, closeQuietly, pipe, prefixed, writeAll } from "./pipe.ts";
import { encodeHead, STATUS_TEXT } from "./http1/response.ts";
import type { ByteConn, ServeConnection } from "./types.ts";

/** Why a tunnel is refused, decided before any connection is made. */
export interface Refusal {
  readonly status: number;
  readonly reason: string;
  readonly headers?: Record<string, string>;
}

export interface TunnelRequest {
  readonly authority: Authority;
  readonly clientIp: string;
  readonly headers: Headers;
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
  /**
   * TLS interception (issue 17): called after admission, before any
   * connection to the destination. Return false to let the tunnel go ahead
   * (nothing written yet); true once the interceptor has taken `client`
   * (it answers the CONNECT itself, may serve HTTP inside with `serve`, and
   * closes `client`). `client` already yields any bytes read past the
   * CONNECT head.
   */
  intercept?(client: ByteConn, req: TunnelRequest, serve: ServeConnection): Promise<boolean>;
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

/** How long a tunnel stays up after one side has ended while the other has not. */
const LINGER_MS = 10_000;

const ESTABLISHED = new TextEncoder().encode("HTTP/1.1 200 Connection Established\r\n\r\n");

function refusal(status: number, reason: string, headers: Record<string, string> = {}) {
  const body = new TextEncoder().encode(`${reason}\n`);
  let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  head += `content-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\n` +
    `connection: close\r\n\r\n`;
  return encodeHead(head, body);
}

/** What the listener knows of one CONNECT request. */
export interface ConnectRequest {
  /** The request-target as sent (`host:port`). */
  target: string;
  headers: Headers;
  /** Client address, normalised. */
  clientIp: string;
  /** Client bytes read past the CONNECT head (the start of the tunnel's payload). */
  leftover: Uint8Array;
}

/** Serves one CONNECT request on `client`; closes `client` when done. Never rejects. */
export async function handleConnect(
  client: ByteConn,
  req: ConnectRequest,
  options: TunnelOptions,
  serve: ServeConnection,
): Promise<void> {
  const { stats } = options;
  const { target, clientIp } = req;
  const started = performance.now();
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
  const refuse = (status: number, reason: string, headers?: Record<string, string>) => {
    logRefusal(status, reason);
    return answerAndClose(client, refusal(status, reason, headers));
  };
  const authority = parseAuthority(target);
  if (!authority) {
    return refuse(400, `bad CONNECT target "${target.slice(0, 200)}": expected host:port`);
  }
  const tunnelReq: TunnelRequest = { authority, clientIp, headers: req.headers };
  let refused: Refusal | undefined;
  try {
    refused = await options.admit(tunnelReq);
  } catch (err) {
    refused = { status: 503, reason: `proxy error: ${(err as Error).message}` };
  }
  if (refused) return refuse(refused.status, refused.reason, refused.headers);

  if (options.intercept) {
    const taken = await options.intercept(prefixed(client, req.leftover), tunnelReq, serve)
      .catch(() => {
        closeQuietly(client);
        return true;
      });
    if (taken) return;
  }

  let upstream: Deno.TcpConn;
  try {
    upstream = await Deno.connect({
      hostname: authority.host,
      port: authority.port,
      signal: AbortSignal.timeout(options.connectTimeoutMs),
    });
  } catch (err) {
    const e = err as Error & { code?: string };
    const timedOut = e.name === "TimeoutError" || e.name === "AbortError" ||
      e instanceof Deno.errors.TimedOut;
    return timedOut
      ? refuse(504, `timed out connecting to ${target}`)
      : refuse(502, `cannot connect to ${target}: ${e.code ?? e.name}`);
  }
  const connectedIp = normalizeIp((upstream.remoteAddr as Deno.NetAddr).hostname);
  const forbidden = options.checkAddress?.(connectedIp, authority.host);
  if (forbidden) {
    closeQuietly(upstream);
    return refuse(403, forbidden);
  }
  try {
    upstream.setNoDelay(true);
  } catch { /* closed already: the pipe below ends at once */ }

  stats.tunnelOpened();
  let bytesUp = 0;
  let bytesDown = 0;
  let failed = false;
  let linger: ReturnType<typeof setTimeout> | undefined;
  const closeBoth = () => {
    closeQuietly(upstream);
    closeQuietly(client);
  };
  const halfClose = (to: ByteConn) => {
    to.closeWrite?.().catch(() => {});
    linger ??= setTimeout(closeBoth, LINGER_MS);
  };
  try {
    await writeAll(client, ESTABLISHED);
    if (req.leftover.length > 0) {
      bytesUp += req.leftover.length;
      await writeAll(upstream, req.leftover);
    }
    await Promise.all([
      pipe(client, upstream, (n) => bytesUp += n).then((how) => {
        if (how === "error") {
          failed = true;
          closeBoth();
        } else halfClose(upstream);
      }),
      pipe(upstream, client, (n) => bytesDown += n).then((how) => {
        if (how === "error") {
          failed = true;
          closeBoth();
        } else halfClose(client);
      }),
    ]);
  } catch {
    failed = true;
  } finally {
    clearTimeout(linger);
    closeBoth();
    stats.tunnelClosed(bytesUp, bytesDown, !failed);
    options.log?.({
      clientIp,
      target,
      status: 200,
      bytesUp,
      bytesDown,
      durationMs: performance.now() - started,
    });
  }
}

/** `::ffff:127.0.0.1` → `127.0.0.1`. */
export function normalizeIp(ip: string): string {
  return ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip;
}
