/**
 * Starts the test origin on Deno.serve.
 *
 * ```ts
 * const backend = await startBackend({ host: "127.0.0.1", port: 0, name: "a" });
 * await fetch(`${backend.url}/json`);
 * await backend.close();
 * ```
 *
 * @module
 */
import { type BackendHandler, createBackendHandler } from "./routes.ts";

export interface BackendOptions {
  host: string;
  /** 0 picks a free port; the chosen one is in the result. */
  port: number;
  /** Value of the X-Backend header; empty means `backend-<port>`. */
  name: string;
  /** Aborting it closes the server as `close()` does. */
  signal?: AbortSignal;
  /**
   * How long `close()` lets in-flight requests finish before it cuts delays
   * and streams short and closes WebSockets (default 2000 ms).
   */
  graceMs?: number;
}

export interface RunningBackend {
  readonly port: number;
  /** `http://host:port` without a trailing slash. */
  readonly url: string;
  readonly name: string;
  /** Stops accepting, lets in-flight requests finish (up to graceMs), then resolves. */
  close(): Promise<void>;
}

export function startBackend(opts: BackendOptions): Promise<RunningBackend> {
  const cut = new AbortController();
  // The name may depend on the port chosen by the OS, which is only known
  // after listening; requests cannot arrive before that, so resolve lazily.
  const ref: { handler?: BackendHandler } = {};
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: opts.host,
      port: opts.port,
      onListen() {},
    }, (req) => ref.handler!.fetch(req));
  } catch (err) {
    return Promise.reject(err);
  }
  const port = server.addr.port;
  const name = opts.name || `backend-${port}`;
  const handler = ref.handler = createBackendHandler(name, cut.signal);
  const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  const url = `http://${host}:${port}`;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      opts.signal?.removeEventListener("abort", onAbort);
      const done = server.shutdown();
      const grace = setTimeout(() => cut.abort(), opts.graceMs ?? 2000);
      for (const ws of handler.sockets) {
        try {
          ws.close(1001, "backend shutting down");
        } catch { /* already closing */ }
      }
      await done;
      clearTimeout(grace);
      cut.abort();
    })();
    return closing;
  };
  const onAbort = () => void close();
  if (opts.signal?.aborted) void close();
  else opts.signal?.addEventListener("abort", onAbort, { once: true });

  return Promise.resolve({ port, url, name, close });
}
