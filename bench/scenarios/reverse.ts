/**
 * reverse: requests/s and p99 of a 1 KiB response (`/bytes/1024` from the
 * test origin) served directly, through this proxy in reverse mode, through
 * nginx and HAProxy (one worker/thread, upstream keep-alive) and through two
 * well-known JavaScript reverse proxies on Node.
 *
 * @module
 */
import { patternBytes } from "../../src/backend/mod.ts";
import {
  compareTargets,
  onFreePort,
  ratiosAgainst,
  type Target,
  verifyBytes,
} from "../lib/compare.ts";
import { startHaproxyReverse } from "../lib/haproxy.ts";
import { startNginxReverse } from "../lib/nginx.ts";
import { ensurePeersInstalled, REVERSE_PEERS, startPeer } from "../lib/peers.ts";
import { proxyEnv, startOrigin, startProxy } from "../lib/proxy.ts";
import type { BenchContext, Scenario, ScenarioResult } from "../lib/types.ts";

const PATH = "/bytes/1024";
const EXPECTED = patternBytes(1024);

export const scenario: Scenario = {
  name: "reverse",
  description: "1 KiB responses via reverse proxy: backend direct, proxy, nginx, haproxy, JS peers",
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    ctx.log("starting the origin (src/backend)");
    const origin = await startOrigin(ctx.root);
    ctx.defer(() => origin.proc.stop());

    const targets: Target[] = [
      { label: "backend", start: () => Promise.resolve({ url: origin.url, stop: async () => {} }) },
      {
        label: "proxy",
        start: onFreePort((port) =>
          startProxy(ctx.root, "proxy", port, proxyEnv(port, origin.url))
        ),
      },
      {
        label: "nginx",
        requires: ["nginx"],
        start: onFreePort((port) =>
          startNginxReverse({
            dir: `${ctx.tmpDir}/nginx`,
            listenPort: port,
            upstreamPort: origin.port,
            keepalive: 64,
          })
        ),
      },
      {
        label: "haproxy",
        requires: ["haproxy"],
        start: onFreePort((port) =>
          startHaproxyReverse({
            dir: `${ctx.tmpDir}/haproxy`,
            listenPort: port,
            upstreamPort: origin.port,
          })
        ),
      },
      ...REVERSE_PEERS.map((peer): Target => ({
        label: peer.label,
        requires: ["node", "npm"],
        start: onFreePort(async (port) => {
          await ensurePeersInstalled(ctx.root, ctx.log);
          return await startPeer(ctx.root, peer, port, origin.url);
        }),
      })),
    ];

    const rows = await compareTargets(ctx, targets, {
      path: PATH,
      verify: verifyBytes(PATH, EXPECTED),
    });
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
