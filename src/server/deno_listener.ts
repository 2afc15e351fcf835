/**
 * The Deno.serve listener: the fastest front door, with TLS and HTTP/2, for
 * gateway (reverse-proxy) deployments. It cannot tunnel CONNECT nor tell an
 * absolute-form request-target from an origin-form one, so every request
 * reaches the app as origin-form.
 *
 * @module
 */
import type { ConnInfo } from "../context/mod.ts";
import type { AppFetch, Listener, ListenOptions } from "./types.ts";

export interface DenoListenOptions extends ListenOptions {
  /** PEM certificate and key: the port speaks HTTPS (HTTP/2 by ALPN). */
  tls?: { cert: string; key: string };
  /**
   * Share the port with a later listener (SO_REUSEPORT, Linux): a certificate
   * reload starts a new listener before draining the old one, so no
   * connection is refused or dropped.
   */
  reusePort?: boolean;
}

export function listenDeno(app: AppFetch, options: DenoListenOptions): Promise<Listener> {
  const secure = options.tls !== undefined;
  return new Promise((resolve, reject) => {
    try {
      const server = Deno.serve({
        hostname: options.hostname,
        port: options.port,
        ...(options.tls ?? {}),
        reusePort: options.reusePort,
        onListen() {},
        onError(err) {
          return new Response(`internal error: ${(err as Error).message}\n`, { status: 500 });
        },
      }, (req, info) => {
        const addr = info.remoteAddr as Deno.NetAddr;
        const conn: ConnInfo = {
          remoteAddr: addr.hostname,
          remotePort: addr.port,
          form: "origin",
          secure,
          completed: info.completed,
        };
        return app(req, conn);
      });
      const addr = server.addr as Deno.NetAddr;
      resolve({
        kind: "deno.serve",
        hostname: addr.hostname,
        port: addr.port,
        async close(timeoutMs: number) {
          let timer: ReturnType<typeof setTimeout> | undefined;
          await Promise.race([
            server.shutdown(),
            new Promise<void>((r) => timer = setTimeout(r, timeoutMs)),
          ]);
          clearTimeout(timer);
        },
      });
    } catch (err) {
      reject(err);
    }
  });
}
