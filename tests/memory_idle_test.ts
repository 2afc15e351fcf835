/**
 * Issue 14 (lean): idle RSS with the default lists. The goal is ≤ 100 MiB (measured by
 * `deno task bench --only memory`, ~85–90 MiB with one serving thread); this test guards
 * against a regression with a generous bound, since a loaded machine and other tests change
 * nothing about a quiet process's memory but the runtime's own growth varies a little. It
 * caught the old ways: lists kept as strings and objects, parsed in workers, garbage kept
 * (217 MiB).
 */
import assert from "node:assert/strict";
import { ignoreUnless } from "./helpers/ignore.ts";
import { startProxy } from "./helpers/proxy.ts";

const MiB = 1 << 20;
const BOUND = 150 * MiB;

function rssOf(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!kb) throw new Error(`no VmRSS for ${pid}`);
  return Number(kb[1]) * 1024;
}

const NAME = "idle RSS with the default lists, one serving thread, stays under 150 MiB";
Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, Deno.build.os === "linux", "reads VmRSS from /proc/<pid>/status"),
  async fn() {
    const proxy = await startProxy({
      env: {
        REQUEST_FILTERS: "ads,trackers,malware",
        CACHE_BACKEND: "memory",
        SERVE_THREADS: "1",
      },
    });
    try {
      // The lists are in force.
      const stats = await proxy.stats();
      assert.ok(stats.filter?.rules?.ads > 50_000, JSON.stringify(stats.filter?.rules));
      const rss = rssOf(proxy.process.pid);
      assert.ok(rss <= BOUND, `idle RSS ${(rss / MiB).toFixed(1)} MiB > ${BOUND / MiB} MiB`);
    } finally {
      await proxy.stop();
    }
  },
});
