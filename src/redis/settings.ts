/**
 * From the Redis settings to one connection description: which topology
 * (single server, Sentinel-managed master, Cluster), where, with which
 * credentials and TLS. The parsers here back the REDIS_* entries of
 * src/config/schema.ts; {@linkcode redisConnectOptions} is what the app hands
 * to {@linkcode connectRedis}.
 *
 * Precedence: REDIS_CLUSTER_NODES or REDIS_SENTINELS (never both) win over
 * REDIS_URL, which wins over REDIS_HOST/REDIS_PORT/REDIS_DB.
 *
 * @module
 */
import { type Parser, ValueError } from "../config/parsers.ts";
import type { Config } from "../config/schema.ts";
import type { RedisConnectOptions, RedisTopology } from "./mod.ts";

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** `host:port,host:port,…` (IPv6 as `[::1]:port`), at least one. */
export function hostPortList(): Parser<HostPort[]> {
  return {
    kind: "comma-separated host:port",
    parse(raw) {
      const items = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
      return items.map((item) => {
        const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s\[\]]+)):(\d{1,5})$/.exec(item);
        const port = m ? Number(m[3]) : 0;
        if (!m || port < 1 || port > 65535) {
          throw new ValueError(`item "${item}": expected host:port such as 10.0.0.5:26379`);
        }
        return { host: m[1] ?? m[2], port };
      });
    },
  };
}

/** REDIS_URL's parser lives with the other value parsers; re-exported for this module's users. */
export { redisUrl } from "../config/parsers.ts";

/** The topology these settings choose. */
export function redisTopology(c: Config): RedisTopology {
  if (c.redisClusterNodes.length > 0) return "cluster";
  if (c.redisSentinels.length > 0) return "sentinel";
  return "single";
}

/**
 * True when the settings name a Redis explicitly (REDIS_URL, Sentinel or
 * Cluster); REDIS_HOST/PORT alone are defaults the cache tries in `auto`.
 */
export function redisConfigured(c: Config): boolean {
  return c.redisUrl !== "" || c.redisSentinels.length > 0 || c.redisClusterNodes.length > 0;
}

/** Rules across Redis settings; the message names the settings and the fix. */
export function validateRedisSettings(c: Config): void {
  if (c.redisClusterNodes.length > 0 && c.redisSentinels.length > 0) {
    throw new Error(
      "REDIS_CLUSTER_NODES and REDIS_SENTINELS: choose one topology (a Cluster has no Sentinel)",
    );
  }
}

/** One line for the start-up log and `/healthz`: `cluster (3 seed nodes)`, `single 127.0.0.1:6379`. */
export function describeRedis(c: Config): string {
  const t = redisTopology(c);
  if (t === "cluster") return `cluster (${c.redisClusterNodes.length} seed nodes)`;
  if (t === "sentinel") {
    return `sentinel "${c.redisSentinelName}" (${c.redisSentinels.length} sentinels)`;
  }
  if (c.redisUrl) {
    const u = new URL(c.redisUrl);
    return `single ${u.protocol === "rediss:" ? "rediss" : "redis"}://${u.host}`;
  }
  return `single ${c.redisHost}:${c.redisPort}`;
}

/**
 * Connection options for {@linkcode connectRedis} from the settings. Reads
 * REDIS_TLS_CA_FILE now; throws one line naming the setting when it cannot.
 */
export function redisConnectOptions(
  c: Config,
  readTextFile: (path: string) => string = Deno.readTextFileSync,
): RedisConnectOptions {
  validateRedisSettings(c);
  let ca: string | undefined;
  if (c.redisTlsCaFile) {
    try {
      ca = readTextFile(c.redisTlsCaFile);
    } catch (err) {
      throw new Error(
        `REDIS_TLS_CA_FILE: cannot read "${c.redisTlsCaFile}": ${(err as Error).message}`,
      );
    }
    if (!ca.includes("-----BEGIN CERTIFICATE-----")) {
      throw new Error(`REDIS_TLS_CA_FILE: "${c.redisTlsCaFile}" holds no PEM certificate`);
    }
  }
  const topology = redisTopology(c);
  const urlTls = topology === "single" && c.redisUrl.startsWith("rediss:");
  const tls = urlTls || c.redisTls || ca !== undefined ? { ...(ca ? { ca } : {}) } : undefined;
  return {
    topology,
    url: topology === "single" && c.redisUrl ? c.redisUrl : undefined,
    host: c.redisHost,
    port: c.redisPort,
    db: c.redisDb,
    commandTimeoutMs: c.redisTimeout,
    username: c.redisUsername || undefined,
    password: c.redisPassword || undefined,
    tls,
    sentinels: topology === "sentinel" ? c.redisSentinels : undefined,
    sentinelName: c.redisSentinelName,
    cluster: topology === "cluster" ? c.redisClusterNodes : undefined,
  };
}
