/**
 * The TLS port when HTTP/2 is on: a node:tls server offers ALPN
 * ["h2", "http/1.1"], and each connection goes to
 * the HTTP/2 server or to the HTTP/1.1 server by what the client chose.
 *
 * Why node:tls and not `Deno.listenTls`: a `Deno.TlsConn` has no
 * `setNoDelay` and its socket keeps Nagle's algorithm on. HTTP/2 flow
 * control makes the client answer every window with WINDOW_UPDATE, and
 * the TLS layer writes a window as several records (several segments
 * below the loopback MSS): Nagle holds the second until the first is
 * acknowledged, the client delays its ACK, and each 64 KiB window waited
 * ~40 ms (11.3 s for 16 MiB; with TCP_NODELAY 0.03 s). The node:tls
 * server's TCP socket takes `setNoDelay(true)`. (A TLSSocket built by hand
 * over a node:net socket does not work with node:http2 in Deno 2.9: the
 * session never sends its SETTINGS; the tls.Server's sockets do.)
 *
 * @module
 */
import type net from "node:net";
import tls from "node:tls";
import { byteConnFromDuplex } from "../../intercept/byte_conn.ts";
import type { ProxyStats } from "../../stats/mod.ts";
import type { Http1Server } from "../http1/server.ts";
import type { Listener, ServeInfo } from "../types.ts";
import type { H2Server } from "./server.ts";
import type { ConnectionSlots } from "../http1/server.ts";

export interface AlpnListenOptions {
  hostname: string;
  port: number;
  tls: { cert: string; key: string };
  reusePort?: boolean;
  maxConnections: number;
  /** MAX_CLIENT_CONNECTIONS counted over every serving thread (replaces `maxConnections`). */
  connectionSlots?: ConnectionSlots;
  /** A client that has not finished its TLS handshake by then is dropped (HEADER_TIMEOUT). */
  handshakeTimeoutMs: number;
  stats: ProxyStats;
  onAcceptError?(err: Error): void;
}

/** The ALPN protocols offered, most preferred first. */
export const ALPN_H2_FIRST = ["h2", "http/1.1"];

/** Starts listening; rejects when the port cannot be opened or the certificate is unusable. */
export function listenAlpn(
  h1: Http1Server,
  h2: H2Server,
  options: AlpnListenOptions,
): Promise<Listener> {
  checkCertificate(options.tls);
  const stats = options.stats;
  const open = new Set<net.Socket>();
  let closed = false;

  const server = tls.createServer({
    cert: options.tls.cert,
    key: options.tls.key,
    ALPNProtocols: ALPN_H2_FIRST,
    handshakeTimeout: options.handshakeTimeoutMs,
  }, (session: tls.TLSSocket) => {
    session.on("error", () => session.destroy());
    const info: ServeInfo = {
      remoteAddr: session.remoteAddress ?? "",
      remotePort: session.remotePort ?? 0,
      secure: true,
    };
    if (session.alpnProtocol === "h2") h2.serveSocket(session, info);
    else h1.serveConnection(byteConnFromDuplex(session), info);
  });
  // The TCP connection, before its handshake: the cap, Nagle off, the count.
  server.on("connection", (socket: net.Socket) => {
    const slots = options.connectionSlots;
    if (closed || (slots ? !slots.tryOpen() : open.size >= options.maxConnections)) {
      if (!closed) stats.connectionsRejected++;
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.on("error", () => {});
    open.add(socket);
    stats.clientConnections++;
    socket.once("close", () => {
      open.delete(socket);
      slots?.close();
      stats.clientConnections--;
    });
  });
  // A failed handshake (a scanner, a client that refuses the certificate) is the client's affair.
  server.on("tlsClientError", () => {});
  server.on("error", (err: Error) => options.onAcceptError?.(err));

  return new Promise<Listener>((resolve, reject) => {
    const fail = (err: Error) => reject(err);
    server.once("error", fail);
    server.listen(
      { host: options.hostname, port: options.port, reusePort: options.reusePort },
      () => {
        server.off("error", fail);
        const addr = server.address() as net.AddressInfo;
        resolve({
          kind: "http1+h2",
          hostname: addr.address,
          port: addr.port,
          serveConnection: h1.serveConnection,
          setCertificate(material) {
            // New handshakes use the new certificate; open connections keep theirs. An unusable
            // pair is refused here (false): the caller's fallback then reports why.
            try {
              checkCertificate(material);
            } catch {
              return false;
            }
            server.setSecureContext({ cert: material.cert, key: material.key });
            return true;
          },
          async close(timeoutMs) {
            if (!closed) {
              closed = true;
              // Stops accepting; node's close callback would wait for every connection, the
              // drains below bound that.
              server.close();
            }
            await Promise.all([h1.drain(timeoutMs), h2.drain(timeoutMs)]);
            for (const s of open) s.destroy();
          },
        });
      },
    );
  });
}

/**
 * Throws when the certificate or key is unusable. node:tls in Deno parses them lazily, at the
 * first handshake; rustls behind `Deno.listenTls` parses them at once, so a throwaway listener on
 * an ephemeral loopback port says now (start-up fails with one line, a reload keeps the old pair).
 */
function checkCertificate(material: { cert: string; key: string }): void {
  Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: material.cert, key: material.key })
    .close();
}
