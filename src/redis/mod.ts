/**
 * One shared Redis connection (ioredis) for the cache and the rate limiter.
 *
 * The connection is tuned to fail fast instead of piling requests up while
 * Redis is down or slow: `enableOfflineQueue: false` (commands fail at once
 * while disconnected), a short `commandTimeout`, one retry per request, and
 * auto-pipelining so concurrent commands share round trips. It reconnects
 * forever with a capped back-off, so caching resumes when Redis returns.
 *
 * Deployment topologies (passed straight through to ioredis):
 *
 * - **Single server**: `url` (`redis://[:password@]host:port/db`, or `rediss://`
 *   for TLS) overrides `host`, `port` and `db`.
 * - **Sentinel**: `ioredis: { sentinels: [{ host, port }], name: "mymaster" }`;
 *   ioredis asks the sentinels for the current master and follows fail-overs.
 * - **Cluster**: `cluster: [{ host, port }, ...]` creates an ioredis `Cluster`;
 *   `ioredis` options then go to `redisOptions` of the cluster nodes.
 *
 * @example
 * ```ts
 * const redis = connectRedis({ host: "127.0.0.1", port: 6379, db: 0, name: "proxy" });
 * if (await redis.ping()) console.log("redis is up");
 * await redis.close();
 * ```
 *
 * @module
 */
import { Cluster, Redis, type RedisOptions } from "ioredis";

export type { Cluster, Redis };

/** "connecting": never ready yet; "ok": ready; "degraded": was ready or failed, now not ready. */
export type RedisStatus = "ok" | "degraded" | "connecting";

export interface RedisConnectOptions {
  /** `redis://…` / `rediss://…`; when set it overrides host, port and db. */
  url?: string;
  host?: string;
  port?: number;
  db?: number;
  /** Per-command timeout; a slow Redis turns into a fast error (default 250 ms). */
  commandTimeoutMs?: number;
  /** Connection name shown by `CLIENT LIST`. */
  name?: string;
  /** Extra ioredis options (Sentinel: `sentinels`, `name`; TLS: `tls`; auth: `password`). */
  ioredis?: RedisOptions;
  /** Cluster seed nodes; when given an ioredis Cluster is created instead of a single client. */
  cluster?: { host: string; port: number }[];
  /** Where connection errors are reported (rate-limited to one line per 5 s). */
  logger?: (level: "info" | "warn" | "error", msg: string) => void;
}

export interface RedisHandle {
  /** The ioredis client; a `Cluster` when `cluster` nodes were given. */
  readonly client: Redis | Cluster;
  status(): RedisStatus;
  /** True when Redis answers PING within `timeoutMs` (waits for the connection up to then). */
  ping(timeoutMs?: number): Promise<boolean>;
  /** Number of connection-level errors seen (reconnect attempts, resets). */
  errors(): number;
  close(): Promise<void>;
}

/** Reconnect back-off: 50 ms, 100 ms, … capped at 2 s, forever. */
function retryStrategy(times: number): number {
  return Math.min(times * 50, 2000);
}

export function connectRedis(options: RedisConnectOptions): RedisHandle {
  const base: RedisOptions = {
    host: options.host ?? "127.0.0.1",
    port: options.port ?? 6379,
    db: options.db ?? 0,
    connectionName: options.name,
    commandTimeout: options.commandTimeoutMs ?? 250,
    connectTimeout: 2000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    retryStrategy,
    ...options.ioredis,
  };
  let client: Redis | Cluster;
  if (options.cluster && options.cluster.length > 0) {
    client = new Cluster(options.cluster, {
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      clusterRetryStrategy: retryStrategy,
      redisOptions: base,
    });
  } else if (options.url) {
    client = new Redis(options.url, base);
  } else {
    client = new Redis(base);
  }

  let everReady = false;
  let failed = false;
  let errorCount = 0;
  let lastLog = 0;
  let closed = false;
  client.on("ready", () => {
    if (everReady && failed) options.logger?.("info", "redis: reconnected");
    everReady = true;
    failed = false;
  });
  client.on("error", (err: Error) => {
    errorCount++;
    failed = true;
    const now = Date.now();
    if (now - lastLog > 5000) {
      lastLog = now;
      options.logger?.("warn", `redis: ${err.message}`);
    }
  });
  client.on("end", () => {
    failed = true;
  });

  const waitReady = (timeoutMs: number): Promise<boolean> => {
    if (client.status === "ready") return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        client.off("ready", onReady);
        resolve(ok);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      client.on("ready", onReady);
    });
  };

  return {
    client,
    status() {
      if (client.status === "ready") return "ok";
      return everReady || failed ? "degraded" : "connecting";
    },
    async ping(timeoutMs = 500) {
      const started = Date.now();
      if (!(await waitReady(timeoutMs))) return false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const left = Math.max(1, timeoutMs - (Date.now() - started));
        const reply = await Promise.race([
          client.ping(),
          new Promise<string>((resolve) => timer = setTimeout(() => resolve("timeout"), left)),
        ]);
        return reply === "PONG";
      } catch {
        return false;
      } finally {
        clearTimeout(timer);
      }
    },
    errors: () => errorCount,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await client.quit();
      } catch {
        client.disconnect();
      }
    },
  };
}
