/**
 * End-to-end: 1 GiB down and 1 GiB up through the proxy with flat memory.
 * The proxy's peak RSS (VmHWM) is printed and must stay far below the size.
 */
import assert from "node:assert/strict";
import { startTestBackend } from "./helpers/backend.ts";
import { proxiedClient } from "./helpers/http.ts";
import { startProxy } from "./helpers/proxy.ts";
import { ignoreUnless } from "./helpers/ignore.ts";

const GIB = 1024 ** 3;

function peakRssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

Deno.test({
  name: "1 GiB download and 1 GiB upload stream through the proxy with flat memory",
  ignore: ignoreUnless("streaming memory", Deno.build.os === "linux", "reads /proc (Linux only)"),
  async fn() {
    const origin = await startTestBackend("origin");
    const proxy = await startProxy({
      env: { FORWARD_ALLOW_PRIVATE: "true", ENABLE_COMPRESSION: "false" },
    });
    const client = proxiedClient(proxy.url);
    try {
      const t0 = performance.now();
      const res = await fetch(`${origin.url}/bytes/${GIB}`, { client });
      assert.equal(res.status, 200);
      let received = 0;
      for await (const chunk of res.body!) received += chunk.length;
      assert.equal(received, GIB);
      const down = performance.now() - t0;

      const t1 = performance.now();
      let sent = 0;
      const chunk = new Uint8Array(1024 * 1024).fill(7);
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= GIB) return controller.close();
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      const up = await fetch(`${origin.url}/upload`, { method: "POST", body, client });
      assert.equal(up.status, 200);
      const summary = await up.json();
      assert.equal(summary.bytes, GIB);
      const upMs = performance.now() - t1;

      const peak = peakRssMiB(proxy.process.pid);
      console.log(
        `1 GiB down ${(GIB / 1024 ** 2 / (down / 1000)).toFixed(0)} MiB/s, ` +
          `up ${(GIB / 1024 ** 2 / (upMs / 1000)).toFixed(0)} MiB/s, proxy peak RSS ${
            peak.toFixed(0)
          } MiB`,
      );
      assert.ok(peak < 400, `peak RSS ${peak} MiB`);
    } finally {
      client.close();
      await proxy.stop();
      await origin.close();
    }
  },
});
