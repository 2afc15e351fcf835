/**
 * cache-hit: requests/s and p99 when every request is a cache hit — a 1 KiB
 * response with `Cache-Control: public, max-age=3600` (`/bytes/1024?max_age=3600`)
 * served by this proxy from its in-process LRU, and from the LRU in front of
 * a private Redis, against nginx proxy_cache, the HAProxy cache and Varnish. The
 * origin counts what reaches it, so each row shows how many requests really
 * were answered from a cache.
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
import { startOrigin } from "../lib/proxy.ts";
import {
  haproxyTarget,
  nginxTarget,
  originTarget,
  proxyTarget,
  proxyWithRedisTarget,
} from "../lib/targets.ts";
import { startVarnish } from "../lib/varnish.ts";
import type { BenchContext, Scenario, ScenarioResult } from "../lib/types.ts";

const PATH = "/bytes/1024?max_age=3600";

export const scenario: Scenario = {
  name: "cache-hit",
  description: "1 KiB cache hits: proxy LRU, proxy LRU+Redis, nginx proxy_cache, haproxy, varnish",
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    ctx.log("starting the origin (src/backend)");
    const origin = await startOrigin(ctx.root);
    ctx.defer(() => origin.proc.stop());

    const targets: Target[] = [
      originTarget(origin),
      proxyTarget(ctx, "proxy (memory)", origin, { CACHE_BACKEND: "memory" }),
      // The access log's cost (issue 11: with it on, hits stay >= 0.9x of off): every line
      // written, JSON, to a file (a pipe to this harness would charge its reading to the proxy).
      proxyTarget(ctx, "proxy (memory, access log)", origin, {
        CACHE_BACKEND: "memory",
        ACCESS_LOG: "true",
        LOG_LEVEL: "info",
        LOG_FORMAT: "json",
        LOG_FILE: `${ctx.tmpDir}/access.log`,
        LOG_STDOUT: "false",
      }),
      proxyTarget(ctx, "proxy (memory, 2 threads)", origin, {
        CACHE_BACKEND: "memory",
        SERVE_THREADS: "2",
      }),
      proxyWithRedisTarget(ctx, "proxy (redis)", origin),
      nginxTarget(ctx, origin, true),
      haproxyTarget(ctx, origin, true),
      {
        label: "varnish",
        requires: ["varnishd"],
        start: onFreePort((port) =>
          startVarnish({
            dir: `${ctx.tmpDir}/varnish`,
            listenPort: port,
            upstreamPort: origin.port,
          })
        ),
      },
    ];

    const rows = await compareTargets(ctx, targets, {
      path: PATH,
      verify: verifyBytes(PATH, patternBytes(1024)),
      originCounter: () => origin.count("/bytes/1024"),
    });
    const others = ["nginx", "haproxy", "varnish", "backend"];
    return {
      rows,
      ratios: [
        ...ratiosAgainst(rows, "proxy (memory)", others),
        ...ratiosAgainst(rows, "proxy (memory, access log)", ["proxy (memory)"]),
        ...ratiosAgainst(rows, "proxy (memory, 2 threads)", [
          "proxy (memory)",
          "nginx",
          "haproxy",
          "varnish",
        ]),
        ...ratiosAgainst(rows, "proxy (redis)", ["nginx", "haproxy", "varnish"]),
      ],
      notes: [
        `wrk -t${ctx.threads} -c${ctx.connections} -d${ctx.durationSec}s ${PATH}, ` +
        `${ctx.rounds} alternating round(s), medians`,
      ],
    };
  },
};
