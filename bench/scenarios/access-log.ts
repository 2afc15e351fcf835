/**
 * access-log: what writing one access-log line per request costs — cache
 * hits (`/bytes/1024?max_age=3600` from the in-process LRU) with ACCESS_LOG
 * off, and on with every line written (JSON lines to a file, so the harness
 * reading a pipe is not charged to the proxy). Issue 11 asks on ≥ 0.9× off.
 * The same rows are in cache-hit; this scenario runs only them, so more
 * rounds fit in the time.
 *
 * @module
 */
import { patternBytes } from "../../src/backend/mod.ts";
import { compareTargets, ratiosAgainst, type Target, verifyBytes } from "../lib/compare.ts";
import { startOrigin } from "../lib/proxy.ts";
import { proxyTarget } from "../lib/targets.ts";
import type { BenchContext, Scenario, ScenarioResult } from "../lib/types.ts";

const PATH = "/bytes/1024?max_age=3600";

export const scenario: Scenario = {
  name: "access-log",
  description: "1 KiB cache hits with the access log off and on (every line written to a file)",
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    ctx.log("starting the origin (src/backend)");
    const origin = await startOrigin(ctx.root);
    ctx.defer(() => origin.proc.stop());
    const logFile = `${ctx.tmpDir}/access.log`;
    const targets: Target[] = [
      proxyTarget(ctx, "access log off", origin, { CACHE_BACKEND: "memory" }),
      proxyTarget(ctx, "access log on", origin, {
        CACHE_BACKEND: "memory",
        ACCESS_LOG: "true",
        LOG_LEVEL: "info",
        LOG_FORMAT: "json",
        LOG_FILE: logFile,
        LOG_STDOUT: "false",
      }),
    ];
    const rows = await compareTargets(ctx, targets, {
      path: PATH,
      verify: verifyBytes(PATH, patternBytes(1024)),
    });
    // Every request of the run has its line: the count is the proof that nothing was dropped.
    const lines = (await Deno.readTextFile(logFile).catch(() => "")).split("\n")
      .filter((l) => l.includes('"logger":"proxy.access"')).length;
    return {
      rows,
      ratios: ratiosAgainst(rows, "access log on", ["access log off"]),
      notes: [
        `wrk -t${ctx.threads} -c${ctx.connections} -d${ctx.durationSec}s ${PATH}, ` +
        `${ctx.rounds} alternating round(s), medians`,
        `${lines} access-log lines written to ${logFile} over the whole run`,
      ],
    };
  },
};
