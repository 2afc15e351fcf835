/**
 * scaleout: three proxy instances behind HAProxy (round robin) sharing their
 * cache, on one Redis against on a Redis Cluster (3 masters, no replicas so
 * that only the sharing is measured), with one instance on one Redis as the
 * baseline. wrk asks for 2000 different cacheable 1 KiB objects in turn
 * (`/bytes/1024?max_age=3600&i=N`), so an object is often first requested
 * on one instance and then on another: the shared cache makes that a hit.
 * The origin counts what reaches it, so each row notes the share of requests
 * answered from the (shared) cache during the measured rounds.
 *
 * @module
 */
import { patternBytes } from "../../src/backend/mod.ts";
import { startCluster } from "../../tests/helpers/redis_topology.ts";
import { compareTargets, onFreePort, ratiosAgainst, type Target } from "../lib/compare.ts";
import { freePort, type Proc, startProcess } from "../lib/process.ts";
import { type Origin, proxyEnv, startOrigin, startProxy } from "../lib/proxy.ts";
import { startRedis } from "../lib/redis.ts";
import type { BenchContext, Scenario, ScenarioResult } from "../lib/types.ts";

const OBJECTS = 2000;
const PATH = "/bytes/1024?max_age=3600&i=0";
// Each wrk thread walks the objects in turn; HAProxy spreads them over the instances.
const PRELUDE = `
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/bytes/1024?max_age=3600&i=" .. (n % ${OBJECTS}))
end
`;

function haproxyConfig(listenPort: number, ports: number[]): string {
  return `global
  nbthread 1
  maxconn 8000

defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive

frontend site
  bind 127.0.0.1:${listenPort}
  default_backend proxies

backend proxies
  balance roundrobin
  http-reuse always
${ports.map((p, i) => `  server p${i + 1} 127.0.0.1:${p}`).join("\n")}
`;
}

/** `instances` proxies with `redisEnv` behind one HAProxy; the Redis is started by `redis()`. */
function group(
  ctx: BenchContext,
  label: string,
  origin: Origin,
  instances: number,
  redis: () => Promise<{ env: Record<string, string>; stop(): Promise<void> }>,
): Target {
  return {
    label,
    requires: ["haproxy", "redis-server"],
    start: onFreePort(async (front) => {
      const store = await redis();
      const procs: Proc[] = [];
      const ports: number[] = [];
      try {
        for (let i = 0; i < instances; i++) {
          const port = freePort();
          ports.push(port);
          procs.push(
            await startProxy(ctx.root, `${label} #${i + 1}`, port, {
              ...proxyEnv(port, origin.url),
              CACHE_BACKEND: "redis",
              CACHE_PREFIX: "bench:",
              ...store.env,
            }),
          );
        }
        const dir = `${ctx.tmpDir}/${label.replace(/\W+/g, "-")}`;
        await Deno.mkdir(dir, { recursive: true });
        await Deno.writeTextFile(`${dir}/haproxy.cfg`, haproxyConfig(front, ports));
        const haproxy = await startProcess({
          name: "haproxy",
          cmd: "haproxy",
          args: ["-f", `${dir}/haproxy.cfg`, "-db"],
          readyPort: front,
        });
        procs.push(haproxy);
      } catch (err) {
        for (const p of procs) await p.stop();
        await store.stop();
        throw err;
      }
      return {
        async stop() {
          for (const p of procs.reverse()) await p.stop();
          await store.stop();
        },
      };
    }),
  };
}

export const scenario: Scenario = {
  name: "scaleout",
  description:
    "3 instances behind HAProxy sharing the cache: on one Redis vs on a Redis Cluster (hit ratio, req/s)",
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    ctx.log("starting the origin (src/backend)");
    const origin = await startOrigin(ctx.root);
    ctx.defer(() => origin.proc.stop());

    const oneRedis = async () => {
      const r = await startRedis();
      return { env: { REDIS_URL: r.url }, stop: () => r.proc.stop() };
    };
    const cluster = async () => {
      const c = await startCluster({ masters: 3, replicas: 0 });
      return { env: { REDIS_CLUSTER_NODES: c.seeds }, stop: () => c.stop() };
    };
    const targets: Target[] = [
      group(ctx, "1 × proxy, one Redis", origin, 1, oneRedis),
      group(ctx, "3 × proxy, one Redis", origin, 3, oneRedis),
      group(ctx, "3 × proxy, Redis Cluster", origin, 3, cluster),
    ];
    const expected = patternBytes(1024);
    const rows = await compareTargets(ctx, targets, {
      path: PATH,
      prelude: PRELUDE,
      verify: (res, body) =>
        res.status !== 200
          ? `status ${res.status}`
          : body.length !== expected.length
          ? `${body.length} bytes, expected ${expected.length}`
          : undefined,
      originCounter: () => origin.count("/bytes/1024"),
    });
    const notes: string[] = [
      `wrk -t${ctx.threads} -c${ctx.connections} -d${ctx.durationSec}s over ${OBJECTS} objects ` +
      `(${PATH.replace("i=0", "i=N")}), ${ctx.rounds} alternating round(s), medians; ` +
      "HAProxy (1 thread, round robin) in front of each group",
    ];
    return {
      rows,
      ratios: [
        ...ratiosAgainst(rows, "3 × proxy, Redis Cluster", [
          "3 × proxy, one Redis",
          "1 × proxy, one Redis",
        ]),
      ],
      notes,
    };
  },
};
