import type { ConnInfo } from "../context/mod.ts";

/** The app as a listener sees it: the same function for every listener. */
export type AppFetch = (req: Request, conn: ConnInfo) => Response | Promise<Response>;

export interface ListenOptions {
  hostname: string;
  port: number;
}

/** A started listener. */
export interface Listener {
  /** HTTP/1.1 only, or HTTP/2 too (by ALPN on a TLS port). */
  readonly kind: "http1" | "http1+h2";
  readonly hostname: string;
  readonly port: number;
  /** Stops accepting, lets in-flight requests finish for up to `timeoutMs`, then cuts the rest. */
  close(timeoutMs: number): Promise<void>;
  /** Replaces the TLS certificate without dropping connections, where the listener can. */
  setCertificate?(tls: { cert: string; key: string }): boolean;
  /**
   * Serves HTTP/1.1 on another byte connection with this listener's app, limits and timeouts
   * (a TLS session inside an intercepted CONNECT tunnel, with `info.authority` set).
   */
  readonly serveConnection: ServeConnection;
}

/**
 * A byte connection the HTTP/1.1 server can serve: a `Deno.Conn`, a TLS
 * connection, or a TLS session inside an intercepted CONNECT tunnel.
 */
export interface ByteConn {
  /** Reads into `p`; the number of bytes read, or null at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes some of `p`; the number of bytes written. */
  write(p: Uint8Array): Promise<number>;
  close(): void;
  /** Half-close: no more writes, reads go on. */
  closeWrite?(): Promise<void>;
}

/** What a connection's requests inherit from how the client reached us. */
export interface ServeInfo {
  /** Peer address (IPv4-mapped IPv6 is normalised to IPv4 by the server). */
  remoteAddr: string;
  remotePort: number;
  /** The client reached us over TLS. */
  secure: boolean;
  /**
   * Every request on this connection is for `https://<authority>` (a TLS
   * session inside an intercepted CONNECT tunnel): origin-form requests reach
   * the app as absolute-form `https://authority/path`, form "absolute".
   */
  authority?: string;
}

/** Serves HTTP/1.1 on one byte connection until it ends; never rejects. */
export type ServeConnection = (conn: ByteConn, info: ServeInfo) => Promise<void>;

/** An upgraded upstream connection (WebSocket and other Upgrade protocols). */
export interface RawUpgrade {
  status: number;
  headers: Headers;
  /** The upstream connection; the listener pipes it to the client and closes it. */
  conn: Deno.Conn;
  /** Bytes the upstream sent after its response head. */
  head: Uint8Array;
}

/** Upgrade requests: the app picks the upstream, the listener pipes the bytes after a 101. */
export type UpgradeFetch = (req: Request, conn: ConnInfo) => Promise<RawUpgrade | Response>;
