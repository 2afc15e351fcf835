/**
 * The load tester through the real proxy (`main.ts serve` as a process):
 * http targets in absolute-form, https targets through a CONNECT tunnel,
 * and a rate limit that the report must name.
 */
import { TEST_CA, TEST_CERT, TEST_KEY } from "./helpers/tls.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { loadtest } from "../src/loadtest/mod.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Starts `proxy serve` on port 0 with the given settings; resolves with its address. */
async function startProxy(env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "serve"],
    env: {
      HOST: "127.0.0.1",
      PORT: "0",
      // "auto" would probe (and use) a shared Redis on 6379.
      CACHE_BACKEND: "memory",
      ACCESS_LOG: "false",
      ...env,
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const listening = Promise.withResolvers<string>();
  const draining = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const m = /proxy listening on (http:\/\/\S+)/.exec(text);
      if (m) listening.resolve(m[1]);
    }
    listening.reject(new Error(`the proxy exited before listening:\n${text}`));
  })();
  const timer = setTimeout(
    () => listening.reject(new Error(`the proxy did not start in 60 s:\n${text}`)),
    60_000,
  );
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
    await draining;
  };
  try {
    return { url: await listening.promise, stop };
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("through the real proxy: absolute-form, CONNECT + TLS, and a rate limit named in the report", async () => {
  const cert = TEST_CERT;
  const key = TEST_KEY;
  const plain = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => new Response(`plain ${new URL(req.url).pathname}`),
  );
  const secure = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert, key, onListen() {} },
    () => new Response("secure"),
  );
  const proxy = await startProxy({
    FORWARD_ALLOW_PRIVATE: "true", // the origins are on loopback
    CONNECT_PORTS: String(secure.addr.port),
    RATE_LIMIT_EXEMPT: "", // loopback is exempt by default; this test wants the limit
    RATE_LIMIT_REQUESTS: "60",
    RATE_LIMIT_WINDOW: "3600",
  });
  try {
    const tls = await loadtest({
      url: `https://localhost:${secure.addr.port}/`,
      proxy: proxy.url,
      caCerts: [TEST_CA],
      requests: 20,
      concurrency: 2,
    });
    assertEquals(tls.status, { "200": 20 }, JSON.stringify(tls.error_samples));
    assertEquals(tls.rate_limited, false);

    const r = await loadtest({
      url: `http://127.0.0.1:${plain.addr.port}/p`,
      proxy: proxy.url,
      requests: 150,
      concurrency: 3,
    });
    assertEquals(r.errors_total, 0, JSON.stringify(r.error_samples));
    assertEquals(r.requests, 150);
    const ok = r.status["200"] ?? 0;
    const limited = r.status["429"] ?? 0;
    assertEquals(ok + limited, 150, JSON.stringify(r.status));
    assert(ok > 0 && ok <= 60, `200s: ${ok}`);
    assert(limited >= 90, `429s: ${limited}`);
    assertEquals(r.rate_limited, true);
    assert(r.rate_limited_responses >= limited);
    assert(r.warnings.some((w) => w.includes("rate limit shaped these results")), r.warnings[0]);
  } finally {
    await proxy.stop();
    await plain.shutdown();
    await secure.shutdown();
  }
});
