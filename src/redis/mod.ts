/**
 * One shared Redis connection (ioredis) for the cache and the rate limiter.
 *
 * The connection is tuned to fail fast instead of piling requests up while
 * Redis is down or slow: `enableOfflineQueue: false` (commands fail at once
 * while disconnected), a short `commandTimeout`, one retry per request, and
 * auto-pipelining so concurrent commands share round trips. It reconnects
 * forever with a capped back-off, so caching resumes when Redis returns.
 *
 * Deployment topologies (all through ioredis; src/redis/settings.ts maps the
 * REDIS_* settings onto these options):
 *
 * - **single**: `url` (`redis://[user:password@]host:port/db`, or `rediss://`
 *   for TLS) overrides `host`, `port` and `db`.
 * - **sentinel**: `sentinels` + `sentinelName`; ioredis asks the sentinels for
 *   the current master, and on `+switch-master` (or a lost connection) asks
 *   again, so writes follow a failover.
 * - **cluster**: `cluster` seed nodes create an ioredis `Cluster`; keys spread
 *   over the masters by hash slot, and the slot map is refreshed every second
 *   so a promoted replica is used soon after a failover.
 *
 * `username`/`password` (ACL users) and `tls` (with a private `ca`) apply to
 * the data connections of every topology.
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
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";

export type { Cluster, Redis };
export {
  describeRedis,
  redisConfigured,
  redisConnectOptions,
  redisTopology,
  validateRedisSettings,
} from "./settings.ts";

/** Which kind of Redis deployment a connection talks to. */
export type RedisTopology = "single" | "sentinel" | "cluster";

/** "connecting": never ready yet; "ok": ready; "degraded": was ready or failed, now not ready. */
export type RedisStatus = "ok" | "degraded" | "connecting";

export interface RedisConnectOptions {
  /** Defaults to "cluster" with `cluster` nodes, "sentinel" with `sentinels`, else "single". */
  topology?: RedisTopology;
  /** `redis://…` / `rediss://…`; when set it overrides host, port and db. */
  url?: string;
  host?: string;
  port?: number;
  db?: number;
  /** Per-command timeout; a slow Redis turns into a fast error (default 250 ms). */
  commandTimeoutMs?: number;
  /** Connection name shown by `CLIENT LIST`. */
  name?: string;
  /** ACL user name and password (or the `requirepass` password alone), for every data node. */
  username?: string;
  password?: string;
  /** TLS to the data nodes (and to the sentinels); `ca` for a private CA. */
  tls?: { ca?: string };
  /** Sentinel addresses; with them the master of `sentinelName` is followed through failovers. */
  sentinels?: readonly { host: string; port: number }[];
  /** The Sentinel master group (default "mymaster"). */
  sentinelName?: string;
  /** Extra ioredis options for the data connections. */
  ioredis?: RedisOptions;
  /** Cluster seed nodes; when given an ioredis Cluster is created instead of a single client. */
  cluster?: readonly { host: string; port: number }[];
  /** Where connection errors are reported (rate-limited to one line per 5 s). */
  logger?: (level: "info" | "warn" | "error", msg: string) => void;
}

export interface RedisHandle {
  /** The ioredis client; a `Cluster` when `cluster` nodes were given. */
  readonly client: Redis | Cluster;
  readonly topology: RedisTopology;
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

/** True for an ioredis Cluster client (it has `nodes()`; a single client does not). */
export function isCluster(client: Redis | Cluster): client is Cluster {
  return "nodes" in client && typeof client.nodes === "function";
}

/**
 * A second connection of the same topology for SUBSCRIBE (a subscribed
 * connection can send nothing else). It queues its SUBSCRIBE until connected
 * and renews it after every reconnect or, on a cluster, on another node.
 */
export function subscriberOf(client: Redis | Cluster, name: string): Redis | Cluster {
  if (isCluster(client)) {
    return client.duplicate(undefined, {
      enableOfflineQueue: true,
      redisOptions: {
        ...client.options.redisOptions,
        connectionName: name,
        commandTimeout: undefined,
      },
    });
  }
  return client.duplicate({
    enableOfflineQueue: true,
    commandTimeout: undefined,
    connectionName: name,
    // Without Sentinel's failover detector (see the "end" handler in connectRedis): the
    // subscriber follows a failover by reconnecting when its connection closes.
    failoverDetector: false,
  });
}

export function connectRedis(options: RedisConnectOptions): RedisHandle {
  const topology: RedisTopology = options.topology ??
    (options.cluster?.length ? "cluster" : options.sentinels?.length ? "sentinel" : "single");
  const tls = options.tls ? { ...options.tls } : undefined;
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
    ...(options.username ? { username: options.username } : {}),
    ...(options.password ? { password: options.password } : {}),
    ...(tls ? { tls } : {}),
    ...options.ioredis,
  };
  let client: Redis | Cluster;
  if (topology === "cluster") {
    if (!options.cluster?.length) throw new Error("a Redis Cluster needs seed nodes");
    // Cluster node options: no db (a cluster has only 0), retries are the cluster's.
    const { db: _db, retryStrategy: _r, enableOfflineQueue: _q, host: _h, port: _p, ...node } =
      base;
    const clusterOptions: ClusterOptions = {
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      clusterRetryStrategy: retryStrategy,
      // Slots move in a failover: look again every second rather than every five.
      slotsRefreshInterval: 1000,
      slotsRefreshTimeout: 2000,
      // The ready check sends CLUSTER INFO under the per-command timeout (250 ms by
      // default); on a busy machine it timed out again and again and the client kept
      // reconnecting without ever becoming ready or reporting an error. Without it the
      // client is ready once it has the slot map; a cluster that is down answers
      // CLUSTERDOWN, which the cache and the limiter treat like any Redis error.
      enableReadyCheck: false,
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      redisOptions: node,
    };
    client = new Cluster(
      options.cluster.map((n) => ({ host: n.host, port: n.port })),
      clusterOptions,
    );
  } else if (topology === "sentinel") {
    if (!options.sentinels?.length) throw new Error("Redis Sentinel needs sentinel addresses");
    client = new Redis({
      ...base,
      sentinels: options.sentinels.map((n) => ({ host: n.host, port: n.port })),
      name: options.sentinelName ?? "mymaster",
      // Reconnect to the new master as soon as the sentinels announce it.
      failoverDetector: true,
      sentinelRetryStrategy: retryStrategy,
      ...(tls ? { enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
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
  const onError = (err: Error) => {
    errorCount++;
    failed = true;
    const now = Date.now();
    if (now - lastLog > 5000) {
      lastLog = now;
      options.logger?.("warn", `redis: ${err.message}`);
    }
  };
  client.on("error", onError);
  if (isCluster(client)) {
    // A cluster reports trouble with one node (a refused slot-map request, say) apart.
    client.on("node error", onError);
    // Its node connections are opened on first use, so the first commands to a node would
    // pay for the connection, AUTH and ready check within their command timeout: open them
    // as soon as the node is known (at start, and for a replica promoted in a failover).
    client.on("+node", (node: Redis) => {
      if (node.status === "wait") node.connect().catch(() => {/* reported as a node error */});
    });
  }
  client.on("end", () => {
    failed = true;
    // ioredis gives up for good ("end") when Sentinel's failover detector disconnects a
    // client that is still connecting (seen here under load when the master was killed).
    // A connection we did not close must come back, so start it again.
    if (!closed) {
      setTimeout(() => {
        if (!closed && client.status === "end") client.connect().catch(() => {/* retried */});
      }, 100);
    }
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
    topology,
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
