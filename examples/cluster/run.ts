/**
 * The scale-out example, run end to end on this machine (free ports of
 * 127.0.0.1, everything stopped at the end):
 *
 *   Redis Cluster (3 masters + 3 replicas) ← 3 proxy instances ← HAProxy ← load
 *
 * 1. throughput through HAProxy with one instance enabled, then with three;
 * 2. the hit ratio across instances (an entry stored by one is a hit for all);
 * 3. failover: under load, one proxy instance is SIGKILLed, then one Redis
 *    master; every request must still succeed.
 *
 * ```sh
 * deno run -A examples/cluster/run.ts              # ~35 s, prints a summary
 * deno run -A examples/cluster/run.ts --json       # the summary as JSON (the test reads it)
 * ```
 *
 * Needs `redis-server`, `redis-cli` and `haproxy` (Debian: apt-get install redis-server haproxy).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startBackend } from "../../src/backend/mod.ts";
import { parseDotEnv } from "../../src/config/dotenv.ts";
import { freePort, waitForPort } from "../../tests/helpers/ports.ts";
import { startProxy, type TestProxy } from "../../tests/helpers/proxy.ts";
import { type LoadResult, runLoad, startCluster } from "../../tests/helpers/redis_topology.ts";

const HERE = new URL("./", import.meta.url).pathname;
const HOST = "site.example";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean", default: false },
    "phase-seconds": { type: "string", default: "4" },
    "failover-seconds": { type: "string", default: "14" },
    concurrency: { type: "string", default: "8" },
  },
});
const phaseMs = Number(values["phase-seconds"]) * 1000;
const failoverMs = Number(values["failover-seconds"]) * 1000;
const concurrency = Number(values.concurrency);
const say = (line: string) => values.json ? console.error(line) : console.log(line);

/** Sends one command to HAProxy's admin socket. */
async function haproxyCommand(socket: string, command: string): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  try {
    await conn.write(new TextEncoder().encode(command + "\n"));
    return await new Response(conn.readable).text();
  } catch {
    return "";
  }
}

const dir = await Deno.makeTempDir({ prefix: "proxy-cluster-example-" });
const cleanup: (() => Promise<unknown>)[] = [];
let exitCode = 0;
try {
  say("starting a Redis Cluster: 3 masters, 3 replicas");
  const cluster = await startCluster({ nodeTimeoutMs: 1000 });
  cleanup.push(() => cluster.stop());
  const origin = await startBackend({ host: "127.0.0.1", port: 0, name: "origin", graceMs: 200 });
  cleanup.push(() => origin.close());

  const shared = parseDotEnv(await Deno.readTextFile(`${HERE}proxy.env`));
  const env = {
    ...shared,
    REDIS_CLUSTER_NODES: cluster.seeds,
    BACKEND_SERVERS: origin.url,
    LOG_LEVEL: "warn",
  };
  say("starting 3 proxy instances sharing it");
  const proxies: TestProxy[] = await Promise.all([0, 1, 2].map(() => startProxy({ env })));
  cleanup.push(() => Promise.all(proxies.map((p) => p.stop())));
  for (const p of proxies) {
    const deadline = Date.now() + 20_000;
    while ((await (await fetch(`${p.url}/healthz`)).json()).cache !== "ok") {
      if (Date.now() > deadline) {
        throw new Error(`${p.url}: the cache did not reach the cluster\n${p.output()}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const front = freePort();
  const socket = `${dir}/haproxy.sock`;
  say(`starting HAProxy on 127.0.0.1:${front}`);
  const haproxy = new Deno.Command("haproxy", {
    args: ["-f", `${HERE}haproxy.cfg`, "-db"],
    env: {
      FRONT: `127.0.0.1:${front}`,
      HAPROXY_SOCKET: socket,
      PROXY1: `127.0.0.1:${proxies[0].port}`,
      PROXY2: `127.0.0.1:${proxies[1].port}`,
      PROXY3: `127.0.0.1:${proxies[2].port}`,
    },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  cleanup.push(async () => {
    try {
      haproxy.kill("SIGKILL");
    } catch { /* gone */ }
    await haproxy.status;
  });
  await waitForPort(front);
  const site = `http://127.0.0.1:${front}`;

  // 500 objects, each cacheable for a minute: the first request for one, on any
  // instance, goes to the origin; every later one, on any instance, is a hit.
  const path = (n: number) => `/cache/60?item=${n % 500}`;
  const load = (durationMs: number, until?: Promise<unknown>) =>
    runLoad({ targets: [site], host: HOST, path, concurrency, durationMs, until });
  const rps = (r: LoadResult) => Math.round(r.total / (r.elapsedMs / 1000));
  const ratio = (h: number, m: number) => Number((h / Math.max(1, h + m)).toFixed(4));
  const cacheTotals = async (ps: TestProxy[]) => {
    let hits = 0, misses = 0;
    for (const p of ps) {
      const c = (await p.stats()).cache;
      hits += c.cache_hits;
      misses += c.cache_misses;
    }
    return { hits, misses };
  };

  const originCount = async () =>
    (await (await fetch(`${origin.url}/__stats`)).json()).requests_total as number;

  // 1. Cold cache, three instances: each object should reach the origin about once,
  //    not once per instance (that is what sharing the cache buys).
  const cold = await load(phaseMs);
  const coldCache = await cacheTotals(proxies);
  const coldOrigin = await originCount();
  say(
    `cold cache, 3 instances: ${cold.total} requests, the origin saw ${coldOrigin} ` +
      `(500 objects; without sharing up to ${3 * 500}); hit ratio ${
        ratio(coldCache.hits, coldCache.misses)
      }`,
  );

  // 2. Warm cache: one instance alone, then all three (the serving rate).
  await haproxyCommand(socket, "disable server proxies/p2");
  await haproxyCommand(socket, "disable server proxies/p3");
  const one = await load(phaseMs);
  await haproxyCommand(socket, "enable server proxies/p2");
  await haproxyCommand(socket, "enable server proxies/p3");
  await new Promise((r) => setTimeout(r, 1000));
  const before = await cacheTotals(proxies);
  const three = await load(phaseMs);
  const after = await cacheTotals(proxies);
  const hits = after.hits - before.hits;
  const misses = after.misses - before.misses;
  say(
    `warm cache: 1 instance ${rps(one)} req/s; 3 instances ${rps(three)} req/s (through HAProxy)`,
  );
  say(
    `warm hit ratio across the 3 instances: ${
      ratio(hits, misses)
    } (${hits} hits, ${misses} misses)`,
  );

  // 3. Failover under load: a proxy instance dies, then a Redis master.
  const killedMaster = (await cluster.masters())[0];
  const events: string[] = [];
  const failover = (async () => {
    await new Promise((r) => setTimeout(r, failoverMs * 0.2));
    await proxies[1].signal("SIGKILL");
    events.push(`proxy instance 2 SIGKILLed at ${Math.round(failoverMs * 0.2)} ms`);
    await new Promise((r) => setTimeout(r, failoverMs * 0.2));
    const t = performance.now();
    await cluster.kill(killedMaster);
    await cluster.waitHealthy(20_000);
    events.push(
      `Redis master :${killedMaster} SIGKILLed; replica promoted after ${
        Math.round(performance.now() - t)
      } ms`,
    );
  })();
  // A different set of URLs, so the load keeps reading and writing Redis.
  const failoverLoad = await runLoad({
    targets: [site],
    host: HOST,
    path: (n) => n % 2 ? `/cache/60?fo=${n}` : path(n),
    concurrency,
    durationMs: failoverMs,
  });
  await failover;
  for (const e of events) say(e);
  say(
    `failover load: ${failoverLoad.total} requests in ${failoverLoad.elapsedMs} ms, ` +
      `${failoverLoad.failed} failed`,
  );
  for (const f of failoverLoad.failures) say(`  failed: ${f}`);

  const summary = {
    one_instance_rps: rps(one),
    three_instances_rps: rps(three),
    cold: {
      requests: cold.total,
      origin_requests: coldOrigin,
      hit_ratio: ratio(coldCache.hits, coldCache.misses),
    },
    warm_hit_ratio: ratio(hits, misses),
    failover: {
      requests: failoverLoad.total,
      failed: failoverLoad.failed,
      failures: failoverLoad.failures,
      events,
    },
    load_failed: cold.failed + one.failed + three.failed,
  };
  if (values.json) console.log(JSON.stringify(summary));
  if (summary.failover.failed > 0 || summary.load_failed > 0) exitCode = 1;
} catch (err) {
  console.error(`example failed: ${(err as Error).message}`);
  exitCode = 2;
} finally {
  for (const c of cleanup.reverse()) await c().catch(() => {});
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
Deno.exit(exitCode);
