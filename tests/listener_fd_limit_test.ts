/**
 * Out of file descriptors: a proxy whose hard open-file limit is 256 gets 300
 * connections at once. accept() fails with EMFILE; the proxy must log it at
 * most about once a second, stay up, and serve again once clients leave.
 */
import assert from "node:assert/strict";
import { startTestBackend } from "./helpers/backend.ts";
import { freePort, waitForPort } from "./helpers/ports.ts";
import { rawRequest } from "./helpers/rawhttp.ts";
import { TEST_DEFAULTS } from "./helpers/proxy.ts";

const ROOT = new URL("../", import.meta.url).pathname;

Deno.test({
  name: "EMFILE on accept is logged at most once a second and never ends the process",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const backend = await startTestBackend("fd");
    const port = freePort();
    const child = new Deno.Command("bash", {
      args: ["-c", `ulimit -n 256 && exec "${Deno.execPath()}" run --allow-all main.ts serve`],
      env: {
        ...TEST_DEFAULTS,
        PORT: String(port),
        BACKEND_SERVERS: backend.url,
        THREAD_POOL_SIZE: "1",
        // One listener: "at most once a second" is each listener's accept-error log.
        SERVE_THREADS: "1",
        HEADER_TIMEOUT: "60",
        PATH: Deno.env.get("PATH") ?? "",
      },
      clearEnv: true,
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let out = "";
    const dec = new TextDecoder();
    const pumps = Promise.all([child.stdout, child.stderr].map(async (s) => {
      for await (const c of s) out += dec.decode(c, { stream: true });
    }));
    const held: Deno.Conn[] = [];
    try {
      await waitForPort(port, 30_000);
      const started = performance.now();
      for (let i = 0; i < 300; i++) {
        held.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      }
      await new Promise((r) => setTimeout(r, 2500));
      const seconds = (performance.now() - started) / 1000;
      for (const c of held.splice(0)) c.close();
      // Serving again once the descriptors are free.
      let status = 0;
      for (let i = 0; i < 100 && status !== 200; i++) {
        status = (await rawRequest(port, `GET /json HTTP/1.1\r\nHost: x\r\n\r\n`)).status;
        if (status !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(status, 200, out);
      const logged = out.match(/cannot accept connections/g) ?? [];
      assert.ok(logged.length >= 1, `no accept error logged:\n${out}`);
      assert.ok(
        logged.length <= Math.ceil(seconds) + 2,
        `${logged.length} accept errors logged in ${seconds.toFixed(1)} s`,
      );
    } finally {
      for (const c of held) c.close();
      child.kill("SIGTERM");
      await child.status;
      await pumps;
      await backend.close();
    }
  },
});
