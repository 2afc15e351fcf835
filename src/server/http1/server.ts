/**
 * The listener: accepts TCP or TLS connections (ALPN http/1.1) and serves
 * each with {@linkcode Connection} (with HTTP/2 on, a TLS port is the ALPN
 * listener of ../h2/listener.ts instead, see {@linkcode listen}); caps open connections
 * (MAX_CLIENT_CONNECTIONS), survives accept errors such as EMFILE (logged
 * at most once a second, then a short back-off), and shuts down gracefully
 * (idle connections at once, in-flight requests up to a deadline).
 *
 * @module
 */
import { closeQuietly } from "../pipe.ts";
import type { ByteConn, Listener, ListenOptions, ServeConnection, ServeInfo } from "../types.ts";
import { Connection, type ServerConfig, type ServerState } from "./connection.ts";
import { Sweeper, tickFor } from "./sweeper.ts";
import { createH2Server, listenAlpn } from "../h2/mod.ts";

/** An HTTP/1.1 server without a socket of its own: it serves connections it is given. */
export interface Http1Server {
  /** Serves one connection until it ends (a TCP or TLS connection, or one inside a tunnel). */
  readonly serveConnection: ServeConnection;
  /** Open connections. */
  readonly size: number;
  /** Stops keep-alive, closes idle connections, waits up to `timeoutMs`, then cuts the rest. */
  drain(timeoutMs: number): Promise<void>;
}

export function createHttp1Server(config: ServerConfig): Http1Server {
  const sweeper = new Sweeper(
    tickFor(config.headerTimeoutMs, config.keepAliveTimeoutMs, config.bodyTimeoutMs),
  );
  const running = new Set<Promise<void>>();
  const state: ServerState = {
    config,
    sweeper,
    connections: new Set(),
    closing: false,
    serve: (conn, info) => serveConnection(conn, info),
  };
  const serveConnection = async (conn: ByteConn, info: ServeInfo): Promise<void> => {
    const c = new Connection(conn, info, state);
    state.connections.add(c);
    sweeper.add(c);
    const done = c.run().catch((err) => config.onError?.(err)).finally(() => {
      c.close();
      sweeper.delete(c);
      state.connections.delete(c);
    });
    running.add(done);
    try {
      await done;
    } finally {
      running.delete(done);
    }
  };
  return {
    serveConnection,
    get size() {
      return state.connections.size;
    },
    async drain(timeoutMs: number) {
      state.closing = true;
      const closeIdle = () => {
        for (const c of state.connections) if (c.idle) c.close();
      };
      closeIdle();
      // Connections that finish their request close themselves (no keep-alive once closing);
      // the sweep catches those that turn idle in between.
      const sweep = setInterval(closeIdle, 50);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<void>((r) => timer = setTimeout(r, timeoutMs));
      await Promise.race([Promise.all([...running]), deadline]);
      clearInterval(sweep);
      clearTimeout(timer);
      // Cut what is left. A request still inside the app (waiting on an upstream) ends when the
      // app is closed after this; the drain does not wait for it.
      for (const c of state.connections) c.close();
    },
  };
}

/** Open connections counted in one place for several listeners. */
export interface ConnectionSlots {
  /** Counts one more connection, or false (counting nothing) when MAX_CLIENT_CONNECTIONS are open. */
  tryOpen(): boolean;
  /** A connection counted by `tryOpen` has closed. */
  close(): void;
}

export interface Http1ListenOptions extends ListenOptions {
  /** PEM certificate and key: the port speaks HTTPS (HTTP/1.1 by ALPN). */
  tls?: { cert: string; key: string };
  /** SO_REUSEPORT (Linux): several listeners share the port (threads, certificate reloads). */
  reusePort?: boolean;
  /** MAX_CLIENT_CONNECTIONS: beyond it a new connection is closed at once and counted. */
  maxConnections: number;
  /** Counts connections over several listeners (serving threads) instead of this one's. */
  connectionSlots?: ConnectionSlots;
  /** Logs an accept error (rate-limited by the caller's side: at most once a second here). */
  onAcceptError?(err: Error): void;
  /** HTTP2: with `tls`, offer h2 by ALPN next to http/1.1. */
  http2?: boolean;
}

/**
 * Starts the port's listener: HTTP/1.1 on `Deno.listen`/`Deno.listenTls`, or, for a TLS port with
 * HTTP/2 on, the ALPN listener serving h2 and http/1.1 with the same app and limits. Rejects
 * when the port cannot be opened or the certificate is unusable.
 */
export async function listen(config: ServerConfig, options: Http1ListenOptions): Promise<Listener> {
  if (!options.tls || !options.http2) return listenHttp1(config, options);
  return await listenAlpn(createHttp1Server(config), createH2Server(config), {
    hostname: options.hostname,
    port: options.port,
    tls: options.tls,
    reusePort: options.reusePort,
    maxConnections: options.maxConnections,
    connectionSlots: options.connectionSlots,
    handshakeTimeoutMs: config.headerTimeoutMs,
    stats: config.stats,
    onAcceptError: options.onAcceptError,
  });
}

/** Starts listening; rejects when the port cannot be opened or the certificate is unusable. */
export function listenHttp1(config: ServerConfig, options: Http1ListenOptions): Listener {
  const secure = options.tls !== undefined;
  const socket: Deno.Listener = options.tls
    ? Deno.listenTls({
      hostname: options.hostname,
      port: options.port,
      cert: options.tls.cert,
      key: options.tls.key,
      alpnProtocols: ["http/1.1"],
      reusePort: options.reusePort,
    })
    : Deno.listen({ hostname: options.hostname, port: options.port, reusePort: options.reusePort });
  const server = createHttp1Server(config);
  const stats = config.stats;
  let closed = false;

  const accepting = (async () => {
    let lastLogged = 0;
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await socket.accept();
      } catch (err) {
        if (closed || err instanceof Deno.errors.BadResource) break;
        // EMFILE and friends: the process lives on; log at most once a second, back off a little.
        const now = Date.now();
        if (now - lastLogged >= 1000) {
          lastLogged = now;
          options.onAcceptError?.(err as Error);
        }
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const slots = options.connectionSlots;
      if (slots ? !slots.tryOpen() : server.size >= options.maxConnections) {
        stats.connectionsRejected++;
        closeQuietly(conn);
        continue;
      }
      const addr = conn.remoteAddr as Deno.NetAddr;
      if (!secure) {
        try {
          (conn as Deno.TcpConn).setNoDelay(true);
        } catch { /* gone already */ }
      }
      stats.clientConnections++;
      server.serveConnection(conn, { remoteAddr: addr.hostname, remotePort: addr.port, secure })
        .finally(() => {
          stats.clientConnections--;
          slots?.close();
        });
    }
  })();

  const addr = socket.addr as Deno.NetAddr;
  return {
    kind: "http1",
    hostname: addr.hostname,
    port: addr.port,
    serveConnection: server.serveConnection,
    async close(timeoutMs: number) {
      if (!closed) {
        closed = true;
        closeQuietly(socket as unknown as ByteConn);
      }
      await accepting;
      await server.drain(timeoutMs);
    },
  };
}
