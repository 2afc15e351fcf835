/**
 * One upstream connection with its own read buffer, plus connecting (TCP, then
 * TLS) under a timeout with the SSRF address check in between.
 *
 * @module
 */

import { UpstreamError } from "./errors.ts";

const INITIAL_BUFFER = 16 * 1024;
/** Largest response head accepted (status line + fields). */
export const MAX_HEAD = 64 * 1024;

/**
 * Where connections register while open, so one coarse clock enforces every
 * deadline (cheaper than a timer per request on the hot path).
 */
export interface ConnRegistry {
  add(c: UpstreamConn): void;
  delete(c: UpstreamConn): void;
}

/** A TCP or TLS connection to one origin, with the bytes read but not yet consumed. */
export class UpstreamConn {
  readonly conn: Deno.Conn;
  /** Pool key (scheme://host:port) of the origin this connection belongs to. */
  readonly key: string;
  buf: Uint8Array = new Uint8Array(INITIAL_BUFFER);
  /** Unconsumed bytes are buf[start, end). */
  start = 0;
  end = 0;
  closed = false;
  /** Set when the response timer fired (the connection was closed because of it). */
  timedOut = false;
  /** Exchanges completed on this connection (0 while the first one runs). */
  uses = 0;
  /** Date.now() when the connection went idle in the pool. */
  idleSince = 0;
  /** Date.now() by which the running read must finish (0: none); enforced by the registry's clock. */
  deadline = 0;
  /** The request body was completely written (false while a streamed upload runs). */
  requestDone = true;
  /** The final response head of the current exchange arrived (the upload must not touch the timer). */
  headDone = false;
  /** Idle lifetime the origin announced with `Keep-Alive: timeout=N`, in ms (Infinity when none). */
  keepAliveMs = Infinity;
  /** Set when reading the client's request body failed (the upload was aborted). */
  bodyError: unknown = undefined;
  /** Framing and Connection headers allow keeping this connection after the current response. */
  reusable = false;
  readonly #registry: ConnRegistry | undefined;

  constructor(conn: Deno.Conn, key: string, registry?: ConnRegistry) {
    this.conn = conn;
    this.key = key;
    this.#registry = registry;
    registry?.add(this);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.deadline = 0;
    this.#registry?.delete(this);
    try {
      this.conn.close();
    } catch {
      // already closed by the peer side of the runtime
    }
  }

  /** Hands the socket over to a caller (upgrade): no more deadlines, no more tracking. */
  detach(): Deno.Conn {
    this.deadline = 0;
    this.#registry?.delete(this);
    return this.conn;
  }

  /** Starts the clock for the next read(s): past `ms` the connection is closed as timed out. */
  armTimer(ms: number): void {
    this.timedOut = false;
    this.deadline = Date.now() + ms;
  }

  disarmTimer(): void {
    this.deadline = 0;
  }

  /** Called by the registry's clock. */
  checkDeadline(now: number): void {
    if (this.deadline !== 0 && now >= this.deadline) {
      this.timedOut = true;
      this.close();
    }
  }

  /** Reads more bytes after `end`. Resolves false on EOF; rejects on a socket error. */
  async fill(limit = MAX_HEAD): Promise<boolean> {
    const n = await this.conn.read(this.readSpace(limit));
    if (n === null) return false;
    this.end += n;
    return true;
  }

  /**
   * Makes room after `end` (compacting, or growing up to `limit`) and returns the free
   * space to read into; callers on the hot path await `conn.read` on it themselves.
   */
  readSpace(limit = MAX_HEAD): Uint8Array {
    if (this.start === this.end) {
      this.start = this.end = 0;
    } else if (this.end === this.buf.length) {
      if (this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      } else {
        const size = Math.min(this.buf.length * 2, Math.max(limit, this.buf.length + 1));
        const grown = new Uint8Array(size);
        grown.set(this.buf.subarray(0, this.end));
        this.buf = grown;
      }
    }
    return this.buf.subarray(this.end);
  }
}

/** Writes all of `data` (Conn.write may write only part). */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(off === 0 ? data : data.subarray(off));
}

/** How to reach one origin. */
export interface ConnectParams {
  hostname: string;
  port: number;
  tls: boolean;
  caCerts?: string[];
  timeoutMs: number;
  checkAddress?: (ip: string, hostname: string) => string | undefined;
}

/**
 * Opens a connection: TCP connect, then the address check against the peer
 * address actually connected to (before any byte is sent, so DNS rebinding
 * cannot slip past), then the TLS handshake. The timeout covers all of it.
 */
export async function openConnection(p: ConnectParams): Promise<Deno.Conn> {
  const where = p.hostname + ":" + p.port;
  const abort = new AbortController();
  let current: Deno.TcpConn | Deno.TlsConn | undefined;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
    try {
      current?.close();
    } catch {
      // closed meanwhile
    }
  }, p.timeoutMs);
  try {
    try {
      current = await Deno.connect({ hostname: p.hostname, port: p.port, signal: abort.signal });
    } catch (err) {
      if (timedOut) {
        throw new UpstreamError("connect-timeout", "connecting to " + where + " timed out", false);
      }
      throw new UpstreamError(
        "connect",
        "cannot connect to " + where + ": " + (err instanceof Error ? err.message : String(err)),
        false,
        { cause: err },
      );
    }
    if (p.checkAddress !== undefined) {
      const ip = (current.remoteAddr as Deno.NetAddr).hostname;
      const reason = p.checkAddress(ip, p.hostname);
      if (reason !== undefined) {
        current.close();
        throw new UpstreamError(
          "forbidden-address",
          "refusing to connect to " + where + " (" + ip + "): " + reason,
          false,
        );
      }
    }
    if (!p.tls) return current;
    try {
      const tls = await Deno.startTls(current as Deno.TcpConn, {
        hostname: p.hostname,
        caCerts: p.caCerts,
      });
      current = tls;
      await tls.handshake();
      return tls;
    } catch (err) {
      try {
        current.close();
      } catch {
        // closed by the timer
      }
      if (timedOut) {
        throw new UpstreamError(
          "connect-timeout",
          "TLS handshake with " + where + " timed out",
          false,
        );
      }
      throw new UpstreamError(
        "connect",
        "TLS handshake with " + where + " failed: " +
          (err instanceof Error ? err.message : String(err)),
        false,
        { cause: err },
      );
    }
  } finally {
    clearTimeout(timer);
  }
}
