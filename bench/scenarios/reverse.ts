/**
 * reverse: requests/s and p99 of a 1 KiB response (`/bytes/1024` from the
 * test origin) served directly, through this proxy in reverse mode, through
 * nginx and HAProxy (one worker/thread, upstream keep-alive) and through two
 * well-known JavaScript reverse proxies on Node, and through the miss floor
 * (bench/floors/miss.ts): a minimal app on the proxy's own listener with a
 * minimal keep-alive client, what the runtime allows for a proxied request.
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
import { REVERSE_PEERS } from "../lib/peers.ts";
import { startProcess } from "../lib/process.ts";
import { type Origin, startOrigin } from "../lib/proxy.ts";
import {
  caddyTarget,
  haproxyTarget,
  nginxTarget,
  originTarget,
  peerTarget,
  proxyTarget,
} from "../lib/targets.ts";
import type { BenchContext, Scenario, ScenarioResult } from "../lib/types.ts";

const PATH = "/bytes/1024";
const EXPECTED = patternBytes(1024);
const FLOOR = "floor (listener + minimal client)";

/** The miss floor (bench/floors/miss.ts) on the proxy's listener, in front of `origin`. */
function floorTarget(ctx: BenchContext, origin: Origin): Target {
  return {
    label: FLOOR,
    start: onFreePort((port) =>
      startProcess({
        name: FLOOR,
        cmd: Deno.execPath(),
        args: [
          "run",
          "-A",
          `${ctx.root}/bench/floors/miss.ts`,
          "--port",
          String(port),
          "--origin",
          origin.url,
        ],
        cwd: ctx.root,
        readyPort: port,
        readyText: /listening on /,
      })
    ),
  };
}

export const scenario: Scenario = {
  name: "reverse",
  description:
    "1 KiB responses via reverse proxy: backend direct, proxy, miss floor, nginx, haproxy, caddy, JS peers",
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    ctx.log("starting the origin (src/backend)");
    const origin = await startOrigin(ctx.root);
    ctx.defer(() => origin.proc.stop());

    const targets: Target[] = [
      originTarget(origin),
      proxyTarget(ctx, "proxy", origin),
      proxyTarget(ctx, "proxy (2 threads)", origin, { SERVE_THREADS: "2" }),
      floorTarget(ctx, origin),
      nginxTarget(ctx, origin),
      haproxyTarget(ctx, origin),
      caddyTarget(ctx, origin),
      ...REVERSE_PEERS.map((peer) => peerTarget(ctx, peer, origin)),
    ];

    const rows = await compareTargets(ctx, targets, {
      path: PATH,
      verify: verifyBytes(PATH, EXPECTED),
    });
    const others = [
      "nginx",
      FLOOR,
      "haproxy",
      "caddy",
      ...REVERSE_PEERS.map((p) => p.label),
      "backend",
    ];
    return {
      rows,
      ratios: [
        ...ratiosAgainst(rows, "proxy", others),
        ...ratiosAgainst(rows, "proxy (2 threads)", ["nginx", "haproxy", "caddy"]),
      ],
      notes: [
        `wrk -t${ctx.threads} -c${ctx.connections} -d${ctx.durationSec}s ${PATH}, ` +
        `${ctx.rounds} alternating round(s), medians`,
      ],
    };
  },
};
