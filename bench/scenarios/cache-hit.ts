/**
 * cache-hit: requests/s and p99 when every request is a cache hit — a 1 KiB
 * response with `Cache-Control: public, max-age=3600` (`/bytes/1024?max_age=3600`)
 * served by this proxy from its in-process LRU, and from the LRU in front of
 * a private Redis, against nginx proxy_cache, the HAProxy cache and Varnish, and
 * against two floors on the proxy's own listener answering the same bytes from
 * a Map (bench/floors/map_hit.ts): one building a Web Response per request (a
 * bare handler), one writing a head serialised once (the listener's hit hook).
 * The origin counts what reaches it, so each row shows how many requests
 * really were answered from a cache.
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
import { type Origin, startOrigin } from "../lib/proxy.ts";
import { startProcess } from "../lib/process.ts";
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

const FLOOR_RESPONSE = "floor (listener, Response)";
const FLOOR_BYTES = "floor (listener, bytes)";

/** The Map-hit floor on the proxy's listener, answering as `answer` says. */
function floorTarget(ctx: BenchContext, label: string, origin: Origin, answer: string): Target {
  return {
    label,
    start: onFreePort((port) =>
      startProcess({
        name: label,
        cmd: Deno.execPath(),
        args: [
          "run",
          "-A",
          `${ctx.root}/bench/floors/map_hit.ts`,
          "--port",
          String(port),
          "--origin",
          origin.url,
          "--path",
          PATH,
          "--answer",
          answer,
        ],
        cwd: ctx.root,
        readyPort: port,
        readyText: /listening on /,
      })
    ),
  };
}

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
      floorTarget(ctx, FLOOR_RESPONSE, origin, "response"),
      floorTarget(ctx, FLOOR_BYTES, origin, "bytes"),
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
    const others = ["nginx", FLOOR_RESPONSE, FLOOR_BYTES, "haproxy", "varnish", "backend"];
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
        ...ratiosAgainst(rows, "proxy (redis)", ["proxy (memory)", "nginx", FLOOR_RESPONSE]),
      ],
      notes: [
        `wrk -t${ctx.threads} -c${ctx.connections} -d${ctx.durationSec}s ${PATH}, ` +
        `${ctx.rounds} alternating round(s), medians`,
      ],
    };
  },
};
