/**
 * cache-miss: requests/s and p99 when every request is a cache miss that gets
 * stored — a 1 KiB cacheable response (`/bytes/1024?max_age=3600&n=<unique>`),
 * each request a new URL, so the cache looks up, goes to the origin, streams
 * the body while keeping a copy and stores it (in memory, or in memory and
 * Redis). Against the proxy with the cache off (what caching costs on a miss)
 * and nginx `proxy_cache` doing the same (lookup, fetch, write to its cache
 * directory). The hit path is the `cache-hit` scenario.
 *
 * The generic compare loop sends one fixed path, so this scenario runs its
 * own alternating rounds with a wrk `request()` hook that makes every URL new.
 *
 * @module
 */
import { ratiosAgainst, type Started, type Target } from "../lib/compare.ts";
import { startOrigin } from "../lib/proxy.ts";
import { nginxTarget, proxyTarget, proxyWithRedisTarget } from "../lib/targets.ts";
import { runWrk, type WrkResult } from "../lib/wrk.ts";
import type { BenchContext, Scenario, ScenarioResult, TargetRow } from "../lib/types.ts";

/** Every request a new URL: a per-thread tag (the Lua table's address) and a counter. */
const UNIQUE_PATHS = `
local counter = 0
local tag = string.gsub(tostring({}), "[^%w]", "")
request = function()
  counter = counter + 1
  return wrk.format(nil, "/bytes/1024?max_age=3600&n=" .. tag .. "-" .. counter)
end
`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const scenario: Scenario = {
  name: "cache-miss",
  description:
    "1 KiB cacheable misses, each URL new: proxy memory / memory+Redis / cache off, nginx",
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    ctx.log("starting the origin (src/backend)");
    const origin = await startOrigin(ctx.root);
    ctx.defer(() => origin.proc.stop());
    const targets: Target[] = [
      proxyTarget(ctx, "proxy (cache off)", origin, { CACHE_BACKEND: "off" }),
      proxyTarget(ctx, "proxy (memory)", origin, { CACHE_BACKEND: "memory" }),
      proxyWithRedisTarget(ctx, "proxy (redis)", origin),
      nginxTarget(ctx, origin, true),
    ];

    const rows = new Map<string, TargetRow>();
    const live: { label: string; started: Started; results: WrkResult[] }[] = [];
    for (const t of targets) {
      const missing = ["wrk", ...(t.requires ?? [])].find((tool) => !ctx.tools[tool]);
      if (missing) {
        rows.set(t.label, {
          target: t.label,
          status: "skipped",
          note: `${missing} not found (apt-get install ${missing})`,
        });
        continue;
      }
      ctx.log(`starting ${t.label}`);
      try {
        const started = await t.start();
        ctx.defer(() => started.stop());
        const res = await fetch(`${started.url}/bytes/1024?max_age=3600&n=check`);
        const body = await res.arrayBuffer();
        if (res.status !== 200 || body.byteLength !== 1024) {
          throw new Error(`check answered ${res.status} with ${body.byteLength} bytes`);
        }
        live.push({ label: t.label, started, results: [] });
      } catch (err) {
        rows.set(t.label, { target: t.label, status: "failed", note: (err as Error).message });
      }
    }
    const wrk = (url: string, durationSec: number) =>
      runWrk({
        url,
        durationSec,
        connections: ctx.connections,
        threads: ctx.threads,
        headers: { "accept-encoding": "identity" },
        tmpDir: ctx.tmpDir,
        prelude: UNIQUE_PATHS,
      });
    for (const l of live) if (ctx.warmupSec > 0) await wrk(l.started.url, ctx.warmupSec);
    for (let round = 1; round <= ctx.rounds; round++) {
      for (const l of live) {
        ctx.log(`round ${round}/${ctx.rounds}: ${l.label}`);
        l.results.push(await wrk(l.started.url, ctx.durationSec));
      }
    }
    for (const l of live) {
      const rs = l.results;
      const errors = rs.reduce((s, r) => s + r.socketErrors + r.non2xx, 0);
      rows.set(l.label, {
        target: l.label,
        status: "ok",
        rps: median(rs.map((r) => r.rps)),
        p50Ms: median(rs.map((r) => r.p50Ms)),
        p99Ms: median(rs.map((r) => r.p99Ms)),
        errors,
        requests: rs.reduce((s, r) => s + r.requests, 0),
        roundsRps: rs.map((r) => Math.round(r.rps)),
        note: errors > 0 ? `${errors} requests failed` : undefined,
      });
    }
    const ordered = targets.map((t) => rows.get(t.label)!);
    return {
      rows: ordered,
      ratios: [
        ...ratiosAgainst(ordered, "proxy (memory)", ["proxy (cache off)", "nginx"]),
        ...ratiosAgainst(ordered, "proxy (redis)", ["proxy (cache off)", "nginx"]),
      ],
      notes: [
        `wrk -t${ctx.threads} -c${ctx.connections} -d${ctx.durationSec}s, every request a new ` +
        `/bytes/1024?max_age=3600&n=… URL, ${ctx.rounds} alternating round(s), medians`,
      ],
    };
  },
};
