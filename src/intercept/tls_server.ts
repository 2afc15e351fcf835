/**
 * The server side of TLS over a connection we already hold (the client's
 * CONNECT tunnel). Deno has no server-side `startTls`, so node:tls runs the
 * session: `new tls.TLSSocket(duplex, { isServer: true })` over a Duplex
 * adapted from the ByteConn. Measured against a node:tls server on a
 * loopback port that the tunnel would pipe into, it did more handshakes per
 * second and needs no extra socket pair per tunnel (see the intercept
 * bench).
 *
 * @module
 */
import tls from "node:tls";
import { type ByteConn, byteConnFromDuplex, duplexFromByteConn } from "./byte_conn.ts";

/** Protocols offered to clients by ALPN: the listener's server speaks HTTP/1.1. */
export const ALPN_PROTOCOLS = ["http/1.1"];

export interface TlsSession {
  /** The decrypted byte stream. */
  readonly conn: ByteConn;
  /** The server name the client asked for (SNI), if any. */
  readonly servername: string | undefined;
  readonly alpn: string | undefined;
}

/** A failed handshake: the client refused our certificate, timed out or went away. */
export class HandshakeError extends Error {}

/**
 * Runs a TLS server handshake over `conn` with `context`; resolves with the
 * decrypted stream once the client finished the handshake.
 */
export function acceptTls(
  conn: ByteConn,
  context: tls.SecureContext,
  timeoutMs: number,
): Promise<TlsSession> {
  const socket = new tls.TLSSocket(duplexFromByteConn(conn), {
    isServer: true,
    secureContext: context,
    ALPNProtocols: ALPN_PROTOCOLS,
  });
  return new Promise((resolve, reject) => {
    const fail = (reason: string) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new HandshakeError(reason));
    };
    const timer = setTimeout(() => fail(`no TLS handshake within ${timeoutMs} ms`), timeoutMs);
    const onError = (err: Error) => fail(err.message);
    const onClose = () => fail("the client closed the connection during the TLS handshake");
    socket.once("error", onError);
    socket.once("close", onClose);
    socket.once("secure", () => {
      clearTimeout(timer);
      socket.off("error", onError);
      socket.off("close", onClose);
      const servername = (socket as unknown as { servername?: string | false }).servername;
      resolve({
        conn: byteConnFromDuplex(socket),
        servername: servername || undefined,
        alpn: socket.alpnProtocol || undefined,
      });
    });
  });
}
