/**
 * Reloads (POST /proxy-reload and SIGHUP) apply every setting that needs no new
 * listener, all at once; a bad configuration is refused with the running one
 * kept; what needs a restart is named.
 */
import assert from "node:assert/strict";
import { startTestBackend } from "./helpers/backend.ts";
import { startProxy } from "./helpers/proxy.ts";

async function backendOf(url: string): Promise<string | null> {
  const res = await fetch(`${url}/get`);
  await res.body?.cancel();
  return res.headers.get("x-backend");
}

async function until(what: string, ok: () => Promise<boolean>) {
  const deadline = Date.now() + 15_000;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test({
  name:
    "reload: backends, limits and strategy change at once; a bad config is refused and the old one stays; restart-only settings are named",
  ignore: Deno.build.os === "windows",
  async fn() {
    const a = await startTestBackend("a");
    const b = await startTestBackend("b");
    const dir = await Deno.makeTempDir();
    const envFile = `${dir}/proxy.env`;
    await Deno.writeTextFile(envFile, `BACKEND_SERVERS=${a.url}\n`);
    const proxy = await startProxy({
      env: { PROXY_MODE: "reverse", LOG_LEVEL: "info" },
      args: ["--env-file", envFile],
    });
    const reload = async () => {
      const res = await fetch(`${proxy.url}/proxy-reload`, { method: "POST" });
      return { status: res.status, text: await res.text() };
    };
    try {
      assert.equal(await backendOf(proxy.url), "a");

      await Deno.writeTextFile(
        envFile,
        `BACKEND_SERVERS=${b.url}\nMAX_BODY_SIZE=10\nLB_STRATEGY=least-connections\nCACHE_MEMORY_SIZE=1MiB\n`,
      );
      assert.deepEqual(await reload(), { status: 200, text: "reloaded\n" });
      assert.equal(await backendOf(proxy.url), "b");
      const big = await fetch(`${proxy.url}/echo`, { method: "POST", body: "x".repeat(100) });
      assert.equal(big.status, 413);
      await big.body?.cancel();
      assert.equal((await proxy.stats()).backends.strategy, "least-connections");
      // The log line is written as the reload finishes: wait for it rather than race it.
      await until(
        "the restart-only setting is named",
        () => Promise.resolve(/need a restart[^\n]*CACHE_MEMORY_SIZE/.test(proxy.output())),
      );

      // A bad value anywhere: nothing of the new file is applied.
      await Deno.writeTextFile(envFile, `BACKEND_SERVERS=${a.url}\nLB_STRATEGY=bogus\n`);
      const refused = await reload();
      assert.equal(refused.status, 500);
      assert.match(refused.text, /LB_STRATEGY/);
      assert.equal(await backendOf(proxy.url), "b");

      // SIGHUP does the same.
      await Deno.writeTextFile(envFile, `BACKEND_SERVERS=${a.url}\n`);
      proxy.process.kill("SIGHUP");
      await until(
        "SIGHUP applies the new backends",
        async () => (await backendOf(proxy.url)) === "a",
      );
      const small = await fetch(`${proxy.url}/echo`, { method: "POST", body: "x".repeat(100) });
      assert.equal(small.status, 200, "MAX_BODY_SIZE back to its default");
      await small.body?.cancel();
    } finally {
      await proxy.stop();
      await a.close();
      await b.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
