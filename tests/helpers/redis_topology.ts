/**
 * Real Redis topologies for tests, built from `redis-server` processes on free
 * ports of 127.0.0.1 (never the Redis on :6379), nothing on disk but their
 * config files in a private temp directory, every process ended by its own
 * handle (SIGKILL by PID) in `stop()`:
 *
 * - {@linkcode startCluster}: a Redis Cluster, by default 3 masters with one
 *   replica each (`--cluster-enabled yes`, `redis-cli --cluster create`), with a
 *   short `cluster-node-timeout` so a killed master's replica takes over within
 *   a few seconds.
 * - {@linkcode startSentinel}: a master, a replica and three
 *   `redis-server --sentinel` watching them, with short down-after and
 *   failover timeouts.
 *
 * ```ts
 * const cluster = await startCluster();
 * try {
 *   // REDIS_CLUSTER_NODES=cluster.seeds
 *   await cluster.killMaster(await cluster.masterOf("some-key"));
 *   await cluster.waitHealthy();
 * } finally {
 *   await cluster.stop();
 * }
 * ```
 *
 * @module
 */
import { encodeRequest, Http1Connection } from "../../src/loadtest/http1.ts";
import { freePort, waitForPort } from "./ports.ts";

const dec = new TextDecoder();

/** One `redis-server` process. */
export interface RedisNode {
  readonly port: number;
  readonly pid: number;
  /** False once killed. */
  readonly alive: boolean;
  /** SIGKILL, as a crash would; waits for the exit. */
  kill(): Promise<void>;
}

/** `redis-cli -p PORT ARGS…`; returns stdout (trimmed). Throws when redis-cli fails. */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("redis-cli", {
    args: ["-h", "127.0.0.1", "-p", String(port), ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`redis-cli -p ${port} ${args.join(" ")}: ${dec.decode(out.stderr)}`);
  }
  return dec.decode(out.stdout).trim();
}

/** A port that is free and, for cluster nodes, whose bus port is free too. */
function freePortPair(): [number, number] {
  return [freePort(), freePort()];
}

async function spawnRedis(args: string[], port: number): Promise<RedisNode> {
  const child = new Deno.Command("redis-server", {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let alive = true;
  const node: RedisNode = {
    port,
    pid: child.pid,
    get alive() {
      return alive;
    },
    async kill() {
      if (!alive) return;
      alive = false;
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
    },
  };
  try {
    await waitForPort(port, 10_000);
  } catch (err) {
    await node.kill();
    throw err;
  }
  return node;
}

async function poll<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined | false>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (${last})` : ""}`);
}

const COMMON = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];

/** Server and redis-cli arguments for a password (none without one). */
function authArgs(password?: string): { server: string[]; cli: string[] } {
  if (!password) return { server: [], cli: [] };
  return {
    server: ["--requirepass", password, "--masterauth", password],
    cli: ["-a", password, "--no-auth-warning"],
  };
}

// ── cluster ─────────────────────────────────────────────────────────────

export interface ClusterOptions {
  /** Masters (default 3; a cluster needs at least 3). */
  masters?: number;
  /** Replicas per master (default 1). */
  replicas?: number;
  /** `cluster-node-timeout` in ms (default 1000): how soon a silent master is failed over. */
  nodeTimeoutMs?: number;
  /** `requirepass` (and `masterauth`) of every node; clients then need REDIS_PASSWORD. */
  password?: string;
}

export interface ClusterNodeInfo {
  port: number;
  role: "master" | "replica";
  /** For a master: its slot ranges as `[from, to]`. */
  slots: [number, number][];
  failed: boolean;
}

export interface TestCluster {
  readonly nodes: readonly RedisNode[];
  /** `127.0.0.1:p1,127.0.0.1:p2,…` — the value for REDIS_CLUSTER_NODES. */
  readonly seeds: string;
  /** The node table as a live node sees it. */
  layout(): Promise<ClusterNodeInfo[]>;
  /** Port of the master serving the key's slot now. */
  masterOf(key: string): Promise<number>;
  /** Ports of the masters (not failed) now. */
  masters(): Promise<number[]>;
  /** SIGKILLs the node on this port. */
  kill(port: number): Promise<void>;
  /** Waits until every live node reports `cluster_state:ok` and every slot has a live master. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Keys matching a pattern on one node (SCAN). */
  keysOn(port: number, pattern?: string): Promise<string[]>;
  stop(): Promise<void>;
}

/** Starts a Redis Cluster on free ports and waits until it is healthy. */
export async function startCluster(options: ClusterOptions = {}): Promise<TestCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 1;
  const timeout = options.nodeTimeoutMs ?? 1000;
  const auth = authArgs(options.password);
  const cli = (port: number, ...args: string[]) => redisCli(port, ...auth.cli, ...args);
  const dir = await Deno.makeTempDir({ prefix: "redis-cluster-" });
  const nodes: RedisNode[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    const count = masters * (1 + replicas);
    const started = await Promise.all(
      Array.from({ length: count }, () => {
        const [port, bus] = freePortPair();
        return spawnRedis([
          "--port",
          String(port),
          "--cluster-port",
          String(bus),
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          `${dir}/nodes-${port}.conf`,
          "--cluster-node-timeout",
          String(timeout),
          // A replica may always take over, however long ago it last heard its master.
          "--cluster-replica-validity-factor",
          "0",
          "--dir",
          dir,
          ...COMMON,
          ...auth.server,
        ], port);
      }),
    );
    nodes.push(...started);
    await cli(
      nodes[0].port,
      "--cluster",
      "create",
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      "--cluster-replicas",
      String(replicas),
      "--cluster-yes",
    );
  } catch (err) {
    await stop();
    throw err;
  }

  const live = () => nodes.filter((n) => n.alive);
  const layout = async (): Promise<ClusterNodeInfo[]> => {
    let text = "";
    for (const n of live()) {
      try {
        text = await cli(n.port, "cluster", "nodes");
        if (text) break;
      } catch { /* try the next node */ }
    }
    return text.split("\n").filter((l) => l.trim()).map((line) => {
      const f = line.split(" ");
      const port = Number(f[1].split("@")[0].split(":")[1]);
      const flags = f[2].split(",");
      const slots = f.slice(8).filter((s) => !s.startsWith("[")).map((s) => {
        const [a, b] = s.split("-").map(Number);
        return [a, b ?? a] as [number, number];
      });
      return {
        port,
        role: flags.includes("master") ? "master" : "replica",
        slots,
        failed: flags.includes("fail") || flags.includes("fail?"),
      };
    });
  };
  const waitHealthy = async (timeoutMs = 20_000) => {
    await poll("cluster healthy", timeoutMs, async () => {
      for (const n of live()) {
        const info = await cli(n.port, "cluster", "info");
        if (!info.includes("cluster_state:ok")) return false;
      }
      const table = await layout();
      const served = table.filter((t) =>
        t.role === "master" && !t.failed && live().some((n) => n.port === t.port)
      ).reduce((sum, t) => sum + t.slots.reduce((s, [a, b]) => s + b - a + 1, 0), 0);
      if (served !== 16384) return false;
      // Every live replica has finished its first sync.
      for (const t of table.filter((t) => t.role === "replica")) {
        if (!live().some((n) => n.port === t.port)) continue;
        const repl = await cli(t.port, "info", "replication");
        if (!repl.includes("master_link_status:up")) return false;
      }
      return true;
    });
  };
  await waitHealthy().catch(async (err) => {
    await stop();
    throw err;
  });

  return {
    nodes,
    seeds: nodes.slice(0, masters).map((n) => `127.0.0.1:${n.port}`).join(","),
    layout,
    async masterOf(key) {
      const slot = Number(await cli(live()[0].port, "cluster", "keyslot", key));
      const owner = (await layout()).find((t) =>
        t.role === "master" && !t.failed && t.slots.some(([a, b]) => slot >= a && slot <= b)
      );
      if (!owner) throw new Error(`no master serves slot ${slot}`);
      return owner.port;
    },
    async masters() {
      return (await layout()).filter((t) => t.role === "master" && !t.failed).map((t) => t.port);
    },
    async kill(port) {
      await nodes.find((n) => n.port === port)?.kill();
    },
    waitHealthy,
    async keysOn(port, pattern = "*") {
      const out = await cli(port, "--scan", "--pattern", pattern);
      return out ? out.split("\n").sort() : [];
    },
    stop,
  };
}

// ── sentinel ────────────────────────────────────────────────────────────

export interface SentinelOptions {
  /** Master group name (default "proxymaster"). */
  name?: string;
  /** `down-after-milliseconds` (default 1000). */
  downAfterMs?: number;
  /** `failover-timeout` (default 3000). */
  failoverTimeoutMs?: number;
  /** `requirepass`/`masterauth` of master and replica (sentinels have none, they know it). */
  password?: string;
}

export interface TestSentinel {
  readonly name: string;
  /** The first master and the first replica. */
  readonly master: RedisNode;
  readonly replica: RedisNode;
  readonly sentinels: readonly RedisNode[];
  /** `127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3` — the value for REDIS_SENTINELS. */
  readonly addresses: string;
  /** Port of the master the sentinels name now. */
  currentMaster(): Promise<number>;
  /** Waits until the sentinels name a master other than `port` and it accepts writes. */
  waitPromoted(fromPort: number, timeoutMs?: number): Promise<number>;
  /** Keys matching a pattern on one server (SCAN). */
  keysOn(port: number, pattern?: string): Promise<string[]>;
  stop(): Promise<void>;
}

/** Starts a master, one replica and three sentinels; waits until the sentinels see both. */
export async function startSentinel(options: SentinelOptions = {}): Promise<TestSentinel> {
  const name = options.name ?? "proxymaster";
  const auth = authArgs(options.password);
  const cli = (port: number, ...args: string[]) => redisCli(port, ...auth.cli, ...args);
  const dir = await Deno.makeTempDir({ prefix: "redis-sentinel-" });
  const nodes: RedisNode[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    const mport = freePort();
    // --dir: a replica's first sync writes an RDB file there, never into the working directory.
    const master = await spawnRedis(
      ["--port", String(mport), "--dir", dir, ...COMMON, ...auth.server],
      mport,
    );
    nodes.push(master);
    const rport = freePort();
    const replica = await spawnRedis(
      [
        ...["--port", String(rport), "--replicaof", "127.0.0.1", String(mport), "--dir", dir],
        ...COMMON,
        ...auth.server,
      ],
      rport,
    );
    nodes.push(replica);
    await poll(
      "replica in sync",
      10_000,
      async () => (await cli(rport, "info", "replication")).includes("master_link_status:up"),
    );
    const sentinels = await Promise.all([0, 1, 2].map(async (i) => {
      const port = freePort();
      const conf = `${dir}/sentinel-${i}.conf`;
      // Sentinel rewrites its config file as it learns the topology: it must be writable.
      await Deno.writeTextFile(
        conf,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          `dir ${dir}`,
          `sentinel monitor ${name} 127.0.0.1 ${mport} 2`,
          `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${name} ${options.failoverTimeoutMs ?? 3000}`,
          `sentinel parallel-syncs ${name} 1`,
          ...(options.password ? [`sentinel auth-pass ${name} ${options.password}`] : []),
          "",
        ].join("\n"),
      );
      return await spawnRedis([conf, "--sentinel"], port);
    }));
    nodes.push(...sentinels);
    // Every sentinel knows the replica and the other sentinels, so a failover can be agreed.
    await poll("sentinels ready", 15_000, async () => {
      for (const s of sentinels) {
        const info = await redisCli(s.port, "sentinel", "master", name);
        const field = (k: string) => {
          const lines = info.split("\n");
          const i = lines.indexOf(k);
          return i >= 0 ? lines[i + 1] : "";
        };
        if (field("num-slaves") !== "1" || field("num-other-sentinels") !== "2") return false;
      }
      return true;
    });
    const currentMaster = async () => {
      for (const s of sentinels.filter((s) => s.alive)) {
        try {
          const out = await redisCli(s.port, "sentinel", "get-master-addr-by-name", name);
          const port = Number(out.split("\n")[1]);
          if (port) return port;
        } catch { /* next sentinel */ }
      }
      throw new Error("no sentinel answers");
    };
    return {
      name,
      master,
      replica,
      sentinels,
      addresses: sentinels.map((s) => `127.0.0.1:${s.port}`).join(","),
      currentMaster,
      waitPromoted: (fromPort, timeoutMs = 20_000) =>
        poll("sentinel failover", timeoutMs, async () => {
          const port = await currentMaster();
          if (port === fromPort) return false;
          const role = await cli(port, "role");
          return role.startsWith("master") ? port : false;
        }),
      async keysOn(port, pattern = "*") {
        const out = await cli(port, "--scan", "--pattern", pattern);
        return out ? out.split("\n").sort() : [];
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ── load ────────────────────────────────────────────────────────────────

export interface LoadOptions {
  /** Base URLs of the proxy instances (`http://127.0.0.1:PORT`); workers take them in turn. */
  targets: readonly string[];
  /** Host header of every request (instances behind one name share cache keys). */
  host: string;
  /** The path of the n-th request. */
  path: (n: number) => string;
  /** Extra headers of the n-th request. */
  headers?: (n: number) => [string, string][];
  /** Concurrent keep-alive connections (default 6). */
  concurrency?: number;
  /** Stop after this many ms … */
  durationMs: number;
  /** … or this many requests, whichever comes first (default: no count limit). */
  maxRequests?: number;
  /** Stops early when it resolves (e.g. a failover script finished). */
  until?: Promise<unknown>;
}

export interface LoadResult {
  total: number;
  /** Requests that got no response or a status other than 2xx/3xx. */
  failed: number;
  statuses: Record<number, number>;
  /** The first few failures, for the assertion message. */
  failures: string[];
  elapsedMs: number;
}

/**
 * A bounded load over real keep-alive connections (the load tester's HTTP/1.1
 * client); a failure is counted, the connection reopened, and the load goes on.
 */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const started = performance.now();
  const deadline = started + o.durationMs;
  let stop = false;
  o.until?.then(() => stop = true, () => stop = true);
  const result: LoadResult = { total: 0, failed: 0, statuses: {}, failures: [], elapsedMs: 0 };
  let n = 0;
  const fail = (what: string) => {
    result.failed++;
    if (result.failures.length < 10) result.failures.push(what);
  };
  const worker = async (w: number) => {
    const target = { url: new URL(o.targets[w % o.targets.length]) };
    let conn: Http1Connection | undefined;
    while (!stop && performance.now() < deadline && n < (o.maxRequests ?? Infinity)) {
      const i = n++;
      const url = new URL(o.path(i), target.url);
      const bytes = encodeRequest(
        { url },
        "GET",
        [["Host", o.host], ...(o.headers?.(i) ?? [])],
      );
      result.total++;
      try {
        conn ??= await Http1Connection.open(target);
        const res = await conn.request(bytes, false);
        result.statuses[res.status] = (result.statuses[res.status] ?? 0) + 1;
        if (res.status >= 400) fail(`${target.url.host}${o.path(i)}: ${res.status}`);
        if (!res.keepAlive) {
          conn.close();
          conn = undefined;
        }
      } catch (err) {
        fail(`${target.url.host}${o.path(i)}: ${(err as Error).message}`);
        conn?.close();
        conn = undefined;
      }
    }
    conn?.close();
  };
  await Promise.all(Array.from({ length: o.concurrency ?? 6 }, (_, w) => worker(w)));
  result.elapsedMs = Math.round(performance.now() - started);
  return result;
}
