/**
 * `proxy serve`: loads the configuration, composes the proxy, starts the
 * listener that fits the mode, and drains in-flight requests on
 * SIGINT/SIGTERM.
 *
 * @module
 */
import { ConfigError, loadConfig, type LoadedConfig, settingsHelp } from "../config/mod.ts";
import { createProxy, type Proxy, type ThreadInfo } from "../app.ts";
import { createThreadGroup, sharedConnectionSlots, type ThreadGroupInit } from "../threads/mod.ts";
import { closeLogging, logger, setupLogging } from "../log/mod.ts";
import { listen } from "./http1/mod.ts";
import type { ServerConfig } from "./http1/mod.ts";
import { raiseOpenFileLimit } from "./rlimit.ts";
import type { Listener } from "./types.ts";
import { VERSION } from "../version.ts";
import { describeRedis, redisConfigured } from "../redis/settings.ts";

export const SERVE_HELP = `proxy serve — run the caching HTTP/HTTPS proxy (the default subcommand)

USAGE
  proxy [serve] [--env-file FILE] [--FLAG VALUE]...

MODES (PROXY_MODE, decided once at start-up)
  forward   no BACKEND_SERVERS: clients use the port as their HTTP_PROXY/HTTPS_PROXY;
            absolute-form requests are forwarded, CONNECT opens tunnels.
  reverse   BACKEND_SERVERS set: the port is a gateway that load-balances origin-form
            requests over the backends (HTTPS with TLS_CERT/TLS_KEY).
  both      forward and reverse on one port.
  Every mode is served by the proxy's own HTTP/1.1 listener; a TLS port (TLS_CERT/TLS_KEY)
            offers HTTP/2 too with HTTP2=on.
  auto      (default) reverse when BACKEND_SERVERS is set, forward otherwise.

  Own endpoints, for origin-form requests to the proxy itself: /healthz, /proxy-stats,
  /metrics, POST /proxy-reload, PURGE <url>. Off loopback they need ADMIN_TOKEN
  (Authorization: Bearer TOKEN), except /healthz.

SETTINGS (flag > environment > .env > default; --env-file FILE, default ./.env)
${settingsHelp()}
SIGNALS
  SIGINT, SIGTERM   stop accepting, let in-flight requests finish (SHUTDOWN_TIMEOUT), exit 0
  SIGHUP            reload the configuration (backends, strategy, health checks, limits,
                    filters, auth) and TLS certificates; port, mode and threads need a restart
  SIGUSR1           reopen LOG_FILE at its path (after logrotate moved it)

FILES
  ./.env            settings read at start-up (another file with --env-file FILE);
                    proxy check [--env-file FILE] validates them without starting

EXAMPLES
  proxy --port 8080                                   forward proxy for HTTP_PROXY/HTTPS_PROXY
  FORWARD_ALLOW_PRIVATE=true proxy --port 8080        ... that may also reach local addresses
  proxy --backend "http://10.0.0.1:8000,http://10.0.0.2:8000 weight=2" \\
        --lb-strategy weighted-round-robin            reverse proxy, 1:2 over two backends
  REDIS_URL=redis://10.0.0.5:6379 proxy --backend http://10.0.0.1:8000
                                                      cache and rate limits shared via Redis
  proxy --tls-cert cert.pem --tls-key key.pem --backend http://127.0.0.1:8000
                                                      HTTPS on the proxy port

EXIT STATUS
  0   clean shutdown (SIGINT/SIGTERM) or --help
  2   bad flag or setting, or start-up failure (port in use, unusable certificate, ...);
      the reason in one line
`;

/** Exit code 2 for bad configuration, like other CLI usage errors. */
export async function runServe(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(SERVE_HELP);
    return 0;
  }
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig({ args });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`proxy: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const { config, mode } = loaded;
  try {
    await setupLogging(config);
  } catch (err) {
    console.error(`proxy: ${(err as Error).message}`);
    return 2;
  }
  const log = logger("serve");
  for (const w of loaded.warnings) log.warn(w);
  const nofile = raiseOpenFileLimit();
  if (nofile) {
    log.info("open-file limit {after} (was {before}, hard limit {hard})", { ...nofile });
  } else {
    log.debug("open-file limit left as it is (no FFI permission or unsupported platform)");
  }

  // Signals are taken from the start: the port answers as soon as the first thread listens, and
  // a SIGHUP or SIGTERM in the gap before the rest is up must not kill the process (exit 129).
  const stopped = Promise.withResolvers<void>();
  const stop = () => stopped.resolve();
  // A SIGHUP during start-up waits for it to finish, then reloads.
  const reloadAll = Promise.withResolvers<() => void>();
  const hup = () => void reloadAll.promise.then((reload) => reload());
  const signals = (on: boolean) => {
    const change = (signal: Deno.Signal, handler: () => void) =>
      on ? Deno.addSignalListener(signal, handler) : Deno.removeSignalListener(signal, handler);
    change("SIGINT", stop);
    change("SIGTERM", stop);
    if (Deno.build.os !== "windows") change("SIGHUP", hup);
  };
  signals(true);

  const threads = config.serveThreads;
  const created = threads > 1 ? createThreadGroup(threads) : undefined;
  let started: Instance | undefined;
  let prepared: PreparedInstance | undefined;
  const workers: ThreadWorker[] = [];
  try {
    // Every thread composes its proxy (and joins the group's channels) before any listens, so
    // no connection reaches a thread whose cache would miss the others' first copies.
    prepared = await prepareInstance(loaded, {
      thread: 0,
      threads,
      group: created?.group,
      readConfig: () => loadConfig({ args }),
    });
    for (let t = 1; t < threads; t++) {
      workers.push(await startThreadWorker(args, created!.initFor(t)));
    }
    for (const w of workers) await w.listen();
    started = await prepared.listen();
  } catch (err) {
    await Promise.all(workers.map((w) => w.stop(0)));
    await (started ?? prepared)?.stop(0);
    created?.group.close();
    signals(false);
    await closeLogging();
    // Last, after every log line is out: one plain line even where stdout and stderr meet.
    console.error(`proxy: ${(err as Error).message}`);
    return 2;
  }
  const instance = started;

  const { url, kind } = instance;
  const redis = redisConfigured(config) || config.cacheBackend === "redis"
    ? `, redis ${describeRedis(config)}`
    : "";
  const how = `${mode} mode, ${kind}, ${threads} thread${threads === 1 ? "" : "s"}${redis}`;
  log.info(`proxy ${VERSION} listening on ${url} (${how})`, {
    version: VERSION,
    url,
    mode,
    listener: kind,
    threads,
  });
  // A plain line too, for people and scripts that wait for the port (tests, dashboard).
  console.error(`proxy listening on ${url} (${how})`);

  // The configuration: thread 0 passes the reload on to every thread (src/threads/fanout.ts);
  // the certificates: each thread's listener reads them again.
  reloadAll.resolve(() => {
    instance.reload();
    for (const w of workers) w.reloadCertificate();
  });

  await stopped.promise;
  log.info("shutting down: draining in-flight requests (up to {ms} ms)", {
    ms: config.shutdownTimeout,
  });
  await Promise.all([
    instance.stop(config.shutdownTimeout),
    ...workers.map((w) => w.stop(config.shutdownTimeout)),
  ]);
  created?.group.close();
  log.info("stopped");
  await closeLogging();
  signals(false);
  return 0;
}

/** One serving proxy: its app and its listener, on the main thread or a worker thread. */
export interface Instance {
  readonly url: string;
  readonly kind: Listener["kind"];
  /** SIGHUP: lists, users, certificates. Never throws (failures are logged). */
  reload(): Promise<void>;
  /** SIGHUP on a serving thread other than thread 0: the certificates only. */
  reloadCertificate(): Promise<void>;
  /** Drains in-flight requests for up to `timeoutMs`, then closes everything. */
  stop(timeoutMs: number): Promise<void>;
}

/** A composed proxy that does not listen yet. */
export interface PreparedInstance {
  /** Starts the listener its mode needs; throws one-line errors (and closes the proxy). */
  listen(): Promise<Instance>;
  stop(timeoutMs: number): Promise<void>;
}

/** Composes the proxy and starts the listener its mode needs; throws one-line errors. */
export async function startInstance(loaded: LoadedConfig, thread: ThreadInfo): Promise<Instance> {
  return await (await prepareInstance(loaded, thread)).listen();
}

/** Composes the proxy; its listener starts with `listen()`. */
export async function prepareInstance(
  loaded: LoadedConfig,
  thread: ThreadInfo,
): Promise<PreparedInstance> {
  const proxy = await createProxy(loaded, thread);
  return {
    listen: () => listenInstance(loaded, thread, proxy),
    stop: () => proxy.close(),
  };
}

async function listenInstance(
  loaded: LoadedConfig,
  thread: ThreadInfo,
  proxy: Proxy,
): Promise<Instance> {
  const { config, mode } = loaded;
  const log = logger("serve");
  const reusePort = Deno.build.os === "linux" && (config.tlsCert !== "" || thread.threads > 1);
  // One MAX_CLIENT_CONNECTIONS for the process, whichever thread accepted a connection.
  const connectionSlots = thread.group &&
    sharedConnectionSlots(thread.group, config.maxClientConnections);

  const serverConfig: ServerConfig = {
    app: proxy.fetch,
    hit: proxy.hit,
    upgrade: (req, conn) => proxy.upgrade(req, conn),
    // CONNECT is for forward proxying: a gateway answers it 405.
    tunnel: mode === "reverse" ? undefined : {
      stats: proxy.stats,
      connectTimeoutMs: config.connectionTimeout,
      admit: (req) => proxy.admitTunnel(req),
      checkAddress: proxy.checkAddress,
      intercept: proxy.intercept,
      log: config.accessLog
        ? (l) => {
          const bytes = l.bytesUp + l.bytesDown;
          const durationMs = Math.round(l.durationMs);
          const line = `${l.clientIp} CONNECT ${l.target} ${l.status} ${bytes} ${durationMs}ms` +
            (l.reason ? ` (${l.reason})` : "");
          logger("access").info(line, { ...l, bytes, durationMs });
        }
        : undefined,
    },
    stats: proxy.stats,
    maxHeaderSize: config.maxHeaderSize,
    maxHeaderCount: config.maxHeaderCount,
    headerTimeoutMs: config.headerTimeout,
    keepAliveTimeoutMs: config.keepAliveTimeout,
    bodyTimeoutMs: config.bodyTimeout,
    bodyMinRate: config.bodyMinRate,
    requestBufferSize: config.requestBufferSize,
    onError: (err) =>
      log.error("internal error while serving a request: {error}", {
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      }),
  };
  const startListener = (tls: TlsMaterial | undefined): Promise<Listener> => {
    try {
      return listen(serverConfig, {
        hostname: config.host,
        port: config.port,
        tls,
        http2: config.http2,
        reusePort,
        maxConnections: config.maxClientConnections,
        connectionSlots,
        onAcceptError: (err) =>
          log.error("cannot accept connections: {error} (retrying)", { error: err.message }),
      });
    } catch (err) {
      return Promise.reject(err);
    }
  };

  let listener: Listener;
  try {
    const tls = config.tlsCert ? readTls(config.tlsCert, config.tlsKey) : undefined;
    listener = await startListener(tls).catch((err) => {
      if (tls && !(err instanceof Deno.errors.AddrInUse)) {
        throw new Error(
          `TLS_CERT/TLS_KEY: the certificate or key is not usable: ${(err as Error).message}`,
        );
      }
      throw err;
    });
  } catch (err) {
    await proxy.close();
    const inUse = err instanceof Deno.errors.AddrInUse ||
      (err as { code?: string }).code === "EADDRINUSE";
    throw new Error(
      inUse ? `PORT: ${config.host}:${config.port} is already in use` : (err as Error).message,
    );
  }

  /** New certificates without dropping a connection (new listener first, then drain the old). */
  const reloadCertificate = async () => {
    if (!config.tlsCert) return;
    let tls: TlsMaterial;
    try {
      tls = readTls(config.tlsCert, config.tlsKey);
    } catch (err) {
      log.error("certificate reload failed, keeping the old one: {error}", {
        error: (err as Error).message,
      });
      return;
    }
    if (listener.setCertificate?.(tls)) {
      log.info("certificate reloaded");
      return;
    }
    if (Deno.build.os !== "linux") {
      log.warn("this listener cannot swap certificates while running; restart to apply them");
      return;
    }
    try {
      const next = await startListener(tls);
      const old = listener;
      listener = next;
      log.info("certificate reloaded; draining connections of the previous one");
      await old.close(config.shutdownTimeout);
    } catch (err) {
      log.error("certificate reload failed, keeping the old one: {error}", {
        error: (err as Error).message,
      });
    }
  };

  const host = listener.hostname.includes(":") ? `[${listener.hostname}]` : listener.hostname;
  return {
    url: `${config.tlsCert ? "https" : "http"}://${host}:${listener.port}`,
    kind: listener.kind,
    async reload() {
      await proxy.reload().catch((err) =>
        log.error("reload failed: {error}", { error: String(err) })
      );
      await reloadCertificate();
    },
    reloadCertificate,
    async stop(timeoutMs: number) {
      await listener.close(timeoutMs);
      await proxy.close();
    },
  };
}

/** A serving thread other than the main one (SERVE_THREADS > 1), composed, not yet listening. */
interface ThreadWorker {
  /** Starts its listener; rejects with its one-line reason. */
  listen(): Promise<void>;
  /** SIGHUP: its listener reads the certificates again. */
  reloadCertificate(): void;
  stop(timeoutMs: number): Promise<void>;
}

/** The worker entry of the other serving threads (embedded by the compile step). */
export const SERVE_THREAD_ENTRY: URL = new URL("./serve_thread.ts", import.meta.url);

/** Starts a serving thread in a Web Worker; resolves once its proxy is composed. */
function startThreadWorker(
  args: string[],
  share: { init: ThreadGroupInit; transfer: Transferable[] },
): Promise<ThreadWorker> {
  const thread = share.init.thread;
  const worker = new Worker(SERVE_THREAD_ENTRY, { type: "module" });
  const stopped = Promise.withResolvers<void>();
  let listening: PromiseWithResolvers<void> | undefined;
  return new Promise((resolve, reject) => {
    const fail = (message: string) => {
      worker.terminate();
      stopped.resolve();
      if (listening) listening.reject(new Error(message));
      else reject(new Error(message));
    };
    worker.onmessage = (e: MessageEvent<ThreadMessage>) => {
      const m = e.data;
      if (m.kind === "prepared") {
        resolve({
          listen() {
            listening = Promise.withResolvers<void>();
            worker.postMessage({ kind: "listen" } satisfies ThreadMessage);
            return listening.promise;
          },
          reloadCertificate: () =>
            worker.postMessage({ kind: "certificate" } satisfies ThreadMessage),
          async stop(timeoutMs: number) {
            worker.postMessage({ kind: "stop", timeoutMs } satisfies ThreadMessage);
            const deadline = setTimeout(() => stopped.resolve(), timeoutMs + 2000);
            await stopped.promise;
            clearTimeout(deadline);
            worker.terminate();
          },
        });
      } else if (m.kind === "ready") {
        listening?.resolve();
      } else if (m.kind === "failed") {
        fail(m.message);
      } else if (m.kind === "stopped") {
        stopped.resolve();
      }
    };
    worker.onerror = (e) => {
      e.preventDefault();
      fail(`serving thread ${thread} failed: ${e.message}`);
    };
    worker.postMessage(
      { kind: "start", args, env: Deno.env.toObject(), group: share.init } satisfies ThreadMessage,
      share.transfer,
    );
  });
}

/** Messages between the main thread and a serving thread. */
export type ThreadMessage =
  | { kind: "start"; args: string[]; env: Record<string, string>; group: ThreadGroupInit }
  | { kind: "prepared" }
  | { kind: "listen" }
  | { kind: "certificate" }
  | { kind: "ready" }
  | { kind: "failed"; message: string }
  | { kind: "stop"; timeoutMs: number }
  | { kind: "stopped" };

interface TlsMaterial {
  cert: string;
  key: string;
}

function readTls(certPath: string, keyPath: string): TlsMaterial {
  return { cert: readPem(certPath, "TLS_CERT"), key: readPem(keyPath, "TLS_KEY") };
}

function readPem(path: string, setting: string): string {
  try {
    const pem = Deno.readTextFileSync(path);
    if (!pem.includes("-----BEGIN")) throw new Error("not a PEM file");
    return pem;
  } catch (err) {
    throw new Error(`${setting}: cannot use "${path}": ${(err as Error).message}`);
  }
}
