import type { ConnInfo } from "../context/mod.ts";

/** The app as a listener sees it: the same function for every listener. */
export type AppFetch = (req: Request, conn: ConnInfo) => Response | Promise<Response>;

export interface ListenOptions {
  hostname: string;
  port: number;
}

/** A started listener. */
export interface Listener {
  readonly kind: "deno.serve" | "node:http";
  readonly hostname: string;
  readonly port: number;
  /** Stops accepting, lets in-flight requests finish for up to `timeoutMs`, then cuts the rest. */
  close(timeoutMs: number): Promise<void>;
  /** Replaces the TLS certificate without dropping connections, where the listener can. */
  setCertificate?(tls: { cert: string; key: string }): boolean;
}

/** An upgraded upstream connection (WebSocket and other Upgrade protocols). */
export interface RawUpgrade {
  status: number;
  headers: Headers;
  /** The upstream connection; the listener pipes it to the client and closes it. */
  conn: Deno.Conn;
  /** Bytes the upstream sent after its response head. */
  head: Uint8Array;
}

/** Upgrade requests on a listener that hands out raw sockets (node:http). */
export type UpgradeFetch = (req: Request, conn: ConnInfo) => Promise<RawUpgrade | Response>;
