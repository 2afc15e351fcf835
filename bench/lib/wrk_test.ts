import assert from "node:assert/strict";
import { startBackend } from "../../src/backend/mod.ts";
import { hasTool } from "./tools.ts";
import { forwardProxyPrelude, parseWrkOutput, runWrk } from "./wrk.ts";
import { ignoreUnless } from "../../tests/helpers/ignore.ts";

Deno.test("parseWrkOutput reads the Lua summary line", () => {
  const r = parseWrkOutput(
    "Running 1s test\nWRK_JSON " +
      JSON.stringify({
        requests: 5000,
        duration_us: 2_000_000,
        bytes: 10,
        connect: 1,
        read: 2,
        write: 0,
        status: 7,
        timeout: 3,
        mean_us: 500.5,
        max_us: 9000,
        p50_us: 400,
        p90_us: 800,
        p99_us: 2500,
        p999_us: 8000,
      }) + "\n",
  );
  assert.equal(r.rps, 2500);
  assert.equal(r.socketErrors, 6);
  assert.equal(r.non2xx, 7);
  assert.equal(r.p50Ms, 0.4);
  assert.equal(r.p99Ms, 2.5);
  assert.throws(() => parseWrkOutput("no summary here"), /no summary/);
});

Deno.test({
  name: "runWrk measures a real server and counts non-2xx responses",
  ignore: ignoreUnless(
    "bench runWrk",
    hasTool("wrk"),
    "wrk is not installed (apt-get install wrk)",
  ),
  async fn() {
    const tmpDir = await Deno.makeTempDir();
    const b = await startBackend({ host: "127.0.0.1", port: 0, name: "w" });
    try {
      const base = { durationSec: 1, connections: 4, threads: 1, tmpDir };
      const ok = await runWrk({ ...base, url: `${b.url}/bytes/1024` });
      assert.ok(ok.requests > 100, `only ${ok.requests} requests`);
      assert.ok(ok.rps > 0);
      assert.equal(ok.non2xx, 0);
      assert.equal(ok.socketErrors, 0);
      assert.ok(ok.p99Ms >= ok.p50Ms && ok.p50Ms > 0);

      const bad = await runWrk({ ...base, url: `${b.url}/status/503` });
      assert.equal(bad.non2xx, bad.requests);
    } finally {
      await b.close();
      await Deno.remove(tmpDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "runWrk with forwardProxyPrelude sends absolute-form requests with the origin's Host",
  ignore: ignoreUnless(
    "bench runWrk",
    hasTool("wrk"),
    "wrk is not installed (apt-get install wrk)",
  ),
  async fn() {
    const tmpDir = await Deno.makeTempDir();
    // The origin answers absolute-form requests itself, so it can stand in
    // for the proxy: its counter shows the path wrk put in the request line.
    const b = await startBackend({ host: "127.0.0.1", port: 0, name: "w" });
    try {
      const r = await runWrk({
        durationSec: 1,
        connections: 1,
        threads: 1,
        tmpDir,
        url: b.url,
        prelude: forwardProxyPrelude("http://example.test:81/json"),
      });
      assert.ok(r.requests > 0);
      assert.equal(r.non2xx, 0);
      const stats = await (await fetch(`${b.url}/__stats`)).json();
      assert.equal(stats.paths["/json"], stats.requests_total);
    } finally {
      await b.close();
      await Deno.remove(tmpDir, { recursive: true });
    }
  },
});
