/**
 * reverse: requests/s and p99 of a 1 KiB response (`/bytes/1024` from the
 * test origin) served directly, through this proxy in reverse mode, through
 * nginx and HAProxy (one worker/thread, upstream keep-alive) and through two
 * well-known JavaScript reverse proxies on Node.
 *
 * @module
 */
import { patternBytes } from "../../src/backend/mod.ts";
import { compareTargets, ratiosAgainst, type Started, type Target } from "../lib/compare.ts";
import { startHaproxyReverse } from "../lib/haproxy.ts";
import { startNginxReverse } from "../lib/nginx.ts";
import { ensurePeersInstalled, REVERSE_PEERS, startPeer } from "../lib/peers.ts";
import { freePort, startProcess } from "../lib/process.ts";
import type { BenchContext, Scenario, ScenarioResult } from "../lib/types.ts";

const PATH = "/bytes/1024";
const EXPECTED = patternBytes(1024);

/** Settings the proxy runs with: reverse mode only, no cache, no logging, no rate limit. */
export function proxyEnv(port: number, backendUrl: string): Record<string, string> {
  return {
    PORT: String(port),
    HOST: "127.0.0.1",
    BACKEND_SERVERS: backendUrl,
    CACHE_BACKEND: "off",
    ACCESS_LOG: "false",
    RATE_LIMIT_REQUESTS: "0",
    LOG_LEVEL: "warn",
  };
}

function verify(res: Response, body: Uint8Array): string | undefined {
  if (res.status !== 200) return `GET ${PATH} answered ${res.status}, want 200`;
  if (body.length !== EXPECTED.length || !body.every((b, i) => b === EXPECTED[i])) {
    return `GET ${PATH} returned ${body.length} bytes that differ from the origin's`;
  }
  return undefined;
}

const url = (port: number) => `http://127.0.0.1:${port}`;

export const scenario: Scenario = {
  name: "reverse",
  description: "1 KiB responses via reverse proxy: backend direct, proxy, nginx, haproxy, JS peers",
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const backendPort = freePort();
    ctx.log(`starting the origin (src/backend) on port ${backendPort}`);
    const backend = await startProcess({
      name: "backend",
      cmd: Deno.execPath(),
      args: ["run", "-A", `${ctx.root}/src/backend/cli.ts`, "--port", String(backendPort)],
      readyPort: backendPort,
      readyPath: "/health",
    });
    ctx.defer(() => backend.stop());
    const origin = url(backendPort);

    const onPort = (start: (port: number) => Promise<{ stop(): Promise<void> }>) => async () => {
      const port = freePort();
      const p = await start(port);
      return { url: url(port), stop: () => p.stop() } satisfies Started;
    };

    const targets: Target[] = [
      { label: "backend", start: () => Promise.resolve({ url: origin, stop: async () => {} }) },
      {
        label: "proxy",
        start: onPort((port) =>
          startProcess({
            name: "proxy",
            cmd: Deno.execPath(),
            args: ["run", "-A", `${ctx.root}/main.ts`, "serve"],
            env: proxyEnv(port, origin),
            cwd: ctx.root,
            readyPort: port,
          })
        ),
      },
      {
        label: "nginx",
        requires: ["nginx"],
        start: onPort((port) =>
          startNginxReverse({
            dir: `${ctx.tmpDir}/nginx`,
            listenPort: port,
            upstreamPort: backendPort,
            keepalive: 64,
          })
        ),
      },
      {
        label: "haproxy",
        requires: ["haproxy"],
        start: onPort((port) =>
          startHaproxyReverse({
            dir: `${ctx.tmpDir}/haproxy`,
            listenPort: port,
            upstreamPort: backendPort,
          })
        ),
      },
      ...REVERSE_PEERS.map((peer): Target => ({
        label: peer.label,
        requires: ["node", "npm"],
        start: onPort(async (port) => {
          await ensurePeersInstalled(ctx.root, ctx.log);
          return await startPeer(ctx.root, peer, port, origin);
        }),
      })),
    ];

    const rows = await compareTargets(ctx, targets, { path: PATH, verify });
    const others = ["nginx", "haproxy", ...REVERSE_PEERS.map((p) => p.label), "backend"];
    return {
      rows,
      ratios: ratiosAgainst(rows, "proxy", others),
      notes: [
        `wrk -t${ctx.threads} -c${ctx.connections} -d${ctx.durationSec}s ${PATH}, ` +
        `${ctx.rounds} alternating round(s), medians`,
      ],
    };
  },
};
