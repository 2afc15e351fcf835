/**
 * The load tester through the real proxy (`main.ts serve` as a process):
 * http targets in absolute-form, https targets through a CONNECT tunnel,
 * and a rate limit that the report must name.
 */
import { TEST_CA, TEST_CERT, TEST_KEY } from "./helpers/tls.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { loadtest } from "../src/loadtest/mod.ts";
import { startProxy } from "./helpers/proxy.ts";

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
    env: {
      FORWARD_ALLOW_PRIVATE: "true", // the origins are on loopback
      CONNECT_PORTS: String(secure.addr.port),
      RATE_LIMIT_EXEMPT: "", // loopback is exempt by default; this test wants the limit
      RATE_LIMIT_REQUESTS: "60",
      RATE_LIMIT_WINDOW: "3600",
    },
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
