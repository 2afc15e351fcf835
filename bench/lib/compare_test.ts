import assert from "node:assert/strict";
import { startBackend } from "../../src/backend/mod.ts";
import { compareTargets, ratiosAgainst } from "./compare.ts";
import { StartError } from "./process.ts";
import { hasTool } from "./tools.ts";
import type { BenchContext, TargetRow } from "./types.ts";
import { ignoreUnless } from "../../tests/helpers/ignore.ts";

Deno.test({
  name: "compareTargets: measured, failed-to-start, wrong-answer and skipped rows",
  ignore: ignoreUnless(
    "bench compareTargets",
    hasTool("wrk"),
    "wrk is not installed (apt-get install wrk)",
  ),
  async fn() {
    const tmpDir = await Deno.makeTempDir();
    const b = await startBackend({ host: "127.0.0.1", port: 0, name: "o" });
    const cleanups: (() => Promise<void> | void)[] = [];
    const ctx: BenchContext = {
      durationSec: 1,
      connections: 4,
      threads: 1,
      rounds: 2,
      warmupSec: 0,
      root: "",
      tmpDir,
      tools: { wrk: true, nginx: false },
      log: () => {},
      defer: (fn) => void cleanups.push(fn),
    };
    try {
      const rows = await compareTargets(ctx, [
        { label: "good", start: () => Promise.resolve({ url: b.url, stop: async () => {} }) },
        {
          label: "broken",
          start: () => Promise.reject(new StartError("broken exited with code 1", "Error: no")),
        },
        {
          label: "wrong",
          // Answers 502 on the measured path: the check must fail the row.
          start: () => Promise.resolve({ url: `${b.url}/status/502?x=`, stop: async () => {} }),
        },
        { label: "needs-nginx", requires: ["nginx"], start: () => Promise.reject(new Error()) },
      ], {
        path: "/bytes/1024",
        originCounter: async () =>
          (await (await fetch(`${b.url}/__stats`)).json()).paths["/bytes/1024"] ?? 0,
      });

      const byName = Object.fromEntries(rows.map((r) => [r.target, r]));
      assert.equal(byName.good.status, "ok");
      assert.equal(byName.good.roundsRps!.length, 2);
      assert.ok(byName.good.rps! > 0 && byName.good.p99Ms! > 0);
      assert.equal(byName.good.errors, 0);
      // The good target is the origin itself: everything reaches it, nothing is a hit.
      assert.ok(byName.good.originRequests! >= byName.good.requests!);
      assert.match(byName.good.note!, /hits 0\.0%/);
      assert.equal(byName.broken.status, "failed");
      assert.match(byName.broken.note!, /broken failed to start: .*\nError: no/);
      assert.equal(byName.wrong.status, "failed");
      assert.match(byName.wrong.note!, /answered 502/);
      assert.equal(byName["needs-nginx"].status, "skipped");
      assert.match(byName["needs-nginx"].note!, /apt-get install -y nginx/);
    } finally {
      for (const fn of cleanups) await fn();
      await b.close();
      await Deno.remove(tmpDir, { recursive: true });
    }
  },
});

Deno.test("ratiosAgainst compares req/s and p99 of measured rows only", () => {
  const rows: TargetRow[] = [
    { target: "proxy", status: "ok", rps: 500, p99Ms: 4 },
    { target: "nginx", status: "ok", rps: 1000, p99Ms: 2 },
    { target: "peer", status: "failed" },
  ];
  assert.deepEqual(ratiosAgainst(rows, "proxy", ["nginx", "peer"]), [
    { label: "proxy/nginx req/s", value: 0.5 },
    { label: "proxy/nginx p99", value: 2 },
  ]);
});
