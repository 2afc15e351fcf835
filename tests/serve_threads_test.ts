/** End-to-end: SERVE_THREADS > 1 serves one port from several event-loop threads. */
import assert from "node:assert/strict";
import { startTestBackend } from "./helpers/backend.ts";
import { rawRequest } from "./helpers/rawhttp.ts";
import { startProxy } from "./helpers/proxy.ts";
import { ignoreUnless } from "./helpers/ignore.ts";

Deno.test({
  name: "two serving threads share the port; /proxy-stats and /metrics add both up exactly",
  ignore: ignoreUnless("serving threads", Deno.build.os === "linux", "SO_REUSEPORT is Linux only"),
  async fn() {
    const backend = await startTestBackend("a");
    const proxy = await startProxy({ env: { BACKEND_SERVERS: backend.url, SERVE_THREADS: "2" } });
    try {
      // The port answers as soon as the first thread listens; the line comes once all do.
      for (let i = 0; i < 200 && !/2 threads/.test(proxy.output()); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(proxy.output(), /listening on .* 2 threads/);
      // A new connection per request, so the kernel spreads them over both listeners.
      const statuses = await Promise.all(
        Array.from(
          { length: 200 },
          () =>
            rawRequest(proxy.port, "GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
              .then((r) => r.status),
        ),
      );
      assert.deepEqual(new Set(statuses), new Set([200]));
      const stats = await proxy.stats();
      assert.equal(stats.serve_threads, 2);
      assert.equal(stats.requests_total, 201); // + this /proxy-stats request
      assert.equal(stats.request_methods.GET, 201);
      assert.equal(stats.latency_ms.count, 200);
      const perThread = stats.threads.map((t: { requests_total: number }) => t.requests_total);
      assert.equal(perThread.length, 2);
      assert.ok(perThread.every((n: number) => n > 0), `both threads served: ${perThread}`);
      assert.ok("backends" in stats.threads[0] && "cache" in stats.threads[1]);
      const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
      // One proxy's metrics: the threads' samples added up, no per-thread series.
      assert.match(metrics, /^proxy_requests_total\{method="GET"\} 20[12]$/m);
      assert.doesNotMatch(metrics, /thread="/);
      assert.equal((metrics.match(/^# TYPE proxy_requests_total /gm) ?? []).length, 1);
      assert.equal(await proxy.signal("SIGTERM"), 0);
    } finally {
      await proxy.stop();
      await backend.close();
    }
  },
});

Deno.test({
  name: "forward mode on two serving threads: both threads forward and tunnel",
  ignore: ignoreUnless("serving threads", Deno.build.os === "linux", "SO_REUSEPORT is Linux only"),
  async fn() {
    const backend = await startTestBackend("a");
    const proxy = await startProxy({
      env: { SERVE_THREADS: "2", FORWARD_ALLOW_PRIVATE: "127.0.0.1/32" },
    });
    try {
      for (let i = 0; i < 200 && !/2 threads/.test(proxy.output()); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(proxy.output(), /listening on .*forward mode.* 2 threads/);
      const statuses = await Promise.all(
        Array.from(
          { length: 100 },
          () =>
            rawRequest(
              proxy.port,
              `GET ${backend.url}/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
            ).then((r) => r.status),
        ),
      );
      assert.deepEqual(new Set(statuses), new Set([200]));
      const stats = await proxy.stats();
      const perThread = stats.threads.map((t: { requests_total: number }) => t.requests_total);
      assert.ok(perThread.every((n: number) => n > 0), `both threads served: ${perThread}`);
    } finally {
      await proxy.stop();
      await backend.close();
    }
  },
});
