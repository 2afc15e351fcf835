/**
 * balancer: the proxy as a load balancer.
 *
 * 1. Throughput and p99 of a 1 KiB response (`/bytes/1024` of the test
 *    origin) spread over two and over four origins, against nginx (1 worker,
 *    round robin, upstream keep-alive 64) in front of the same origins.
 * 2. Failover: under steady load (16 concurrent keep-alive clients) one of two
 *    origins is killed with SIGKILL; reported are the time until the proxy
 *    stops sending it traffic (its state in /proxy-stats leaves "up"), the
 *    requests clients saw fail (should be 0: idempotent GETs are retried on
 *    the other origin), and latency before and after the kill.
 *
 * @module
 */
import { patternBytes } from "../../src/backend/mod.ts";
import { compareTargets, ratiosAgainst, type Started, type Target } from "../lib/compare.ts";
import { startNginxReverse } from "../lib/nginx.ts";
import { freePort, type Proc, startProcess } from "../lib/process.ts";
import { startProxy } from "../lib/proxy.ts";
import type { BenchContext, Scenario, ScenarioResult, TargetRow } from "../lib/types.ts";

const PATH = "/bytes/1024";
const EXPECTED = patternBytes(1024);

function verify(res: Response, body: Uint8Array): string | undefined {
  if (res.status !== 200) return `GET ${PATH} answered ${res.status}, want 200`;
  if (body.length !== EXPECTED.length || !body.every((b, i) => b === EXPECTED[i])) {
    return `GET ${PATH} returned ${body.length} bytes that differ from the origin's`;
  }
  return undefined;
}

const url = (port: number) => `http://127.0.0.1:${port}`;

/** Reverse mode, round robin, nothing else on the request path (no cache, log, limit, filter). */
function proxyEnv(port: number, origins: number[], extra: Record<string, string> = {}) {
  return {
    PORT: String(port),
    HOST: "127.0.0.1",
    BACKEND_SERVERS: origins.map(url).join(", "),
    LB_STRATEGY: "round-robin",
    CACHE_BACKEND: "off",
    ACCESS_LOG: "false",
    RATE_LIMIT_REQUESTS: "0",
    REQUEST_FILTERS: "",
    LOG_LEVEL: "warn",
    ...extra,
  };
}

function startOrigin(ctx: BenchContext, name: string, port = freePort()): Promise<Proc> {
  return startProcess({
    name,
    cmd: Deno.execPath(),
    args: ["run", "-A", `${ctx.root}/src/backend/cli.ts`, "--port", String(port), "--name", name],
    readyPort: port,
    readyPath: "/health",
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** Kills one of two origins under load and times how fast the proxy routes around it. */
async function failover(ctx: BenchContext): Promise<{ row: TargetRow; notes: string[] }> {
  const label = "proxy-failover";
  const keepPort = freePort();
  const keep = await startOrigin(ctx, "keep", keepPort);
  ctx.defer(() => keep.stop());
  const victimPort = freePort();
  const victim = await startOrigin(ctx, "victim", victimPort);
  ctx.defer(() => victim.stop());
  const port = freePort();
  const proxy = await startProxy(
    ctx.root,
    "proxy",
    port,
    proxyEnv(port, [victimPort, keepPort], {
      HEALTH_CHECK_PATH: "/health",
      HEALTH_CHECK_INTERVAL: "1s",
    }),
  );
  ctx.defer(() => proxy.stop());

  const client = Deno.createHttpClient({});
  ctx.defer(() => client.close());
  const before: number[] = [];
  const after: number[] = [];
  let failed = 0;
  let total = 0;
  let killedAt = 0;
  let running = true;
  const worker = async () => {
    while (running) {
      const started = performance.now();
      let ok = false;
      try {
        const res = await fetch(url(port) + PATH, { client });
        ok = res.status === 200 && (await res.arrayBuffer()).byteLength === 1024;
      } catch { /* counted below */ }
      const ms = performance.now() - started;
      total++;
      if (!ok) failed++;
      (killedAt > 0 && started >= killedAt ? after : before).push(ms);
    }
  };
  const durationMs = Math.max(2, ctx.durationSec) * 1000;
  ctx.log(`failover: load for ${durationMs / 1000} s, SIGKILL of one origin halfway`);
  const loadStart = performance.now();
  const workers = Array.from({ length: 16 }, worker);
  await new Promise((r) => setTimeout(r, durationMs / 2));
  Deno.kill(victim.pid, "SIGKILL");
  killedAt = performance.now();
  let stoppedMs = NaN;
  while (performance.now() - killedAt < durationMs) {
    const stats = await (await fetch(`${url(port)}/proxy-stats`, { client })).json();
    const state = stats.backends.backends[0].state;
    if (state !== "up") {
      stoppedMs = performance.now() - killedAt;
      break;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  await new Promise((r) => setTimeout(r, Math.max(0, loadStart + durationMs - performance.now())));
  running = false;
  await Promise.all(workers);
  const elapsed = (performance.now() - loadStart) / 1000;
  before.sort((a, b) => a - b);
  after.sort((a, b) => a - b);
  const all = [...before, ...after].sort((a, b) => a - b);
  const notes = [
    `failover: backend out of rotation ${round2(stoppedMs)} ms after SIGKILL ` +
    `(passive ejection, MAX_FAILS=3; health checks every 1 s as backstop)`,
    `failover: ${failed} of ${total} client requests failed; p99 ${
      round2(percentile(before, 99))
    } ms before the kill, ${round2(percentile(after, 99))} ms after`,
  ];
  return {
    row: {
      target: label,
      status: "ok",
      rps: total / elapsed,
      p50Ms: percentile(all, 50),
      p99Ms: percentile(all, 99),
      errors: failed,
      note: notes.join("; "),
    },
    notes,
  };
}

export const scenario: Scenario = {
  name: "balancer",
  description:
    "1 KiB responses over 2 and 4 origins (proxy vs nginx), and failover when an origin is killed",
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const ports = [freePort(), freePort(), freePort(), freePort()];
    ctx.log(`starting 4 origins (src/backend) on ports ${ports.join(", ")}`);
    for (const [i, p] of ports.entries()) {
      const o = await startOrigin(ctx, `o${i}`, p);
      ctx.defer(() => o.stop());
    }
    const onPort = (start: (port: number) => Promise<Proc>) => async (): Promise<Started> => {
      const port = freePort();
      const p = await start(port);
      return { url: url(port), stop: () => p.stop() };
    };
    const targets: Target[] = [2, 4].flatMap((n): Target[] => [
      {
        label: `proxy-${n}`,
        start: onPort((port) =>
          startProxy(ctx.root, "proxy", port, proxyEnv(port, ports.slice(0, n)))
        ),
      },
      {
        label: `nginx-${n}`,
        requires: ["nginx"],
        start: onPort((port) =>
          startNginxReverse({
            dir: `${ctx.tmpDir}/nginx-${n}`,
            listenPort: port,
            upstreamPort: ports.slice(0, n),
            serverParams: "max_fails=3 fail_timeout=10s",
          })
        ),
      },
    ]);
    const rows = await compareTargets(ctx, targets, { path: PATH, verify });
    const fo = await failover(ctx);
    rows.push(fo.row);
    return {
      rows,
      ratios: [
        ...ratiosAgainst(rows, "proxy-2", ["nginx-2"]),
        ...ratiosAgainst(rows, "proxy-4", ["nginx-4"]),
      ],
      notes: [
        `wrk -t${ctx.threads} -c${ctx.connections} -d${ctx.durationSec}s ${PATH}, ` +
        `${ctx.rounds} alternating round(s), medians; round robin on both`,
        ...fo.notes,
      ],
    };
  },
};
