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
