/**
 * Runs the scale-out deployment example (examples/cluster: three instances
 * behind HAProxy on a Redis Cluster) and checks what it reports: the shared
 * cache serves each object from the origin about once, and killing a proxy
 * instance and a Redis master under load fails no client request.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;
const haproxy = await new Deno.Command("haproxy", { args: ["-v"], stdout: "null", stderr: "null" })
  .output().then((o) => o.success, () => false);

Deno.test({
  name: "examples/cluster: three instances behind HAProxy on a Redis Cluster survive losing an " +
    "instance and a master under load",
  ignore: !haproxy, // .ci/run installs haproxy (Debian package) where it is missing
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "examples/cluster/run.ts",
        "--json",
        "--phase-seconds",
        "3",
        "--failover-seconds",
        "10",
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const log = new TextDecoder().decode(out.stderr);
    const text = new TextDecoder().decode(out.stdout).trim();
    console.log(log.trim());
    assert.ok(text.startsWith("{"), `no summary (exit ${out.code}):\n${log}`);
    const summary = JSON.parse(text);
    assert.equal(summary.failover.failed, 0, summary.failover.failures.join("\n"));
    assert.equal(summary.load_failed, 0);
    assert.ok(summary.failover.requests >= 200, `only ${summary.failover.requests} requests`);
    assert.equal(summary.failover.events.length, 2, "an instance and a master were killed");
    // 500 objects requested through 3 instances: shared, each reaches the origin about once.
    assert.ok(summary.cold.origin_requests <= 600, `origin saw ${summary.cold.origin_requests}`);
    assert.ok(summary.warm_hit_ratio >= 0.95, `warm hit ratio ${summary.warm_hit_ratio}`);
    assert.equal(out.code, 0, log);
  },
});
