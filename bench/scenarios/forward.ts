/**
 * forward: requests/s and p99 of a 1 KiB response fetched through a forward
 * proxy with absolute-form requests (`GET http://origin/bytes/1024`, what
 * browsers and curl send with HTTP_PROXY set): this proxy in forward mode
 * against Squid (caching off) and the `proxy` npm package on Node, with the
 * origin answering the same absolute-form requests directly as baseline.
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
import { FORWARD_PEERS } from "../lib/peers.ts";
import { originTarget, peerTarget } from "../lib/targets.ts";
import { forwardProxyEnv, startOrigin, startProxy } from "../lib/proxy.ts";
import { startSquidForward } from "../lib/squid.ts";
import type { BenchContext, Scenario, ScenarioResult } from "../lib/types.ts";

const PATH = "/bytes/1024";

export const scenario: Scenario = {
  name: "forward",
  description: "1 KiB responses via forward proxy (absolute-form): proxy, squid, JS peer",
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    ctx.log("starting the origin (src/backend)");
    const origin = await startOrigin(ctx.root);
    ctx.defer(() => origin.proc.stop());

    const targets: Target[] = [
      originTarget(origin),
      {
        label: "proxy",
        start: onFreePort((port) => startProxy(ctx.root, "proxy", port, forwardProxyEnv(port))),
      },
      {
        // The default on this 2-core machine (SERVE_THREADS=auto): both cores, shared with wrk.
        label: "proxy (2 threads)",
        start: onFreePort((port) =>
          startProxy(ctx.root, "proxy (2 threads)", port, {
            ...forwardProxyEnv(port),
            SERVE_THREADS: "2",
          })
        ),
      },
      {
        label: "squid",
        requires: ["squid"],
        start: onFreePort((port) =>
          startSquidForward({ dir: `${ctx.tmpDir}/squid`, listenPort: port })
        ),
      },
      ...FORWARD_PEERS.map((peer) => peerTarget(ctx, peer, origin)),
    ];

    const rows = await compareTargets(ctx, targets, {
      path: PATH,
      verify: verifyBytes(PATH, patternBytes(1024)),
      forwardTo: origin.url,
    });
    return {
      rows,
      ratios: [
        ...ratiosAgainst(rows, "proxy", [
          "squid",
          ...FORWARD_PEERS.map((p) => p.label),
          "backend",
        ]),
        ...ratiosAgainst(rows, "proxy (2 threads)", ["proxy", "squid"]),
      ],
      notes: [
        `wrk -t${ctx.threads} -c${ctx.connections} -d${ctx.durationSec}s, ` +
        `GET ${origin.url}${PATH} (absolute-form), ${ctx.rounds} alternating round(s), medians`,
      ],
    };
  },
};
