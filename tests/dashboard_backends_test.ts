/**
 * What the dashboard needs from the proxy's admin surface, against a real
 * `proxy serve`: its own `/proxy-stats` polling (marked `X-Proxy-Monitor`)
 * stays out of the request stats and the access log when it comes from
 * loopback or with ADMIN_TOKEN, and backends are drained and enabled through
 * `POST /proxy-backends/<id>/drain|enable` (a drained backend gets no new
 * requests; those in flight finish).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { startTestBackend } from "./helpers/backend.ts";
import { startProxy } from "./helpers/proxy.ts";
import { rawRequest } from "./helpers/rawhttp.ts";

const TOKEN = "t0ken-for-tests";
/** A client outside this machine, as a trusted local reverse proxy reports it. */
const REMOTE = { "x-forwarded-for": "203.0.113.9" };

async function get(url: string, headers: Record<string, string> = {}, method = "GET") {
  const res = await fetch(url, { method, headers });
  const text = await res.text();
  return { status: res.status, text, backend: res.headers.get("x-backend") };
}

Deno.test("admin: the dashboard's own polling is neither counted nor logged, unless it could be anyone's", async () => {
  const proxy = await startProxy({
    env: {
      ACCESS_LOG: "true",
      LOG_LEVEL: "info",
      ADMIN_TOKEN: TOKEN,
      TRUSTED_PROXIES: "127.0.0.1",
    },
  });
  try {
    const total = async () => Number((await proxy.stats()).requests_total);
    const monitor = { "x-proxy-monitor": "dashboard" };
    const a = await total();
    for (let i = 0; i < 5; i++) {
      assertEquals((await get(`${proxy.url}/proxy-stats`, monitor)).status, 200);
    }
    const b = await total();
    assertEquals(b - a, 1, "only the unmarked request counts");
    // From outside without the token the mark means nothing: refused, counted and logged.
    assertEquals((await get(`${proxy.url}/proxy-stats`, { ...monitor, ...REMOTE })).status, 401);
    const c = await total();
    assertEquals(c - b, 2);
    // With the token it is the operator's monitor again.
    const withToken = { ...monitor, ...REMOTE, authorization: `Bearer ${TOKEN}` };
    assertEquals((await get(`${proxy.url}/proxy-stats`, withToken)).status, 200);
    const d = await total();
    assertEquals(d - c, 1);
    const snapshot = await proxy.stats();
    assertEquals(snapshot.active_connections, 1, "only this request is active");
    // Actions are the operator's record: a marked reload still counts and is logged.
    const reload = await get(`${proxy.url}/proxy-reload`, monitor, "POST");
    assertEquals(reload.status, 200, reload.text);
    assertEquals(Number((await proxy.stats()).requests_total) - d, 3);
  } finally {
    await proxy.stop();
  }
  const logged = proxy.output().split("\n").filter((l) => l.includes("GET /proxy-stats "));
  // a, b, the refused one, c, d and the two snapshots after: 7 lines, none of the monitor's own.
  assertEquals(logged.length, 7, logged.join("\n"));
  assert(proxy.output().includes("POST /proxy-reload 200"), "the marked reload is logged");
});

Deno.test("admin: drain sends a backend no new requests while its in-flight ones finish; enable brings it back", async () => {
  const a = await startTestBackend("a");
  const b = await startTestBackend("b");
  const proxy = await startProxy({
    env: {
      BACKEND_SERVERS: `${a.url},${b.url}`,
      LB_STRATEGY: "round-robin",
      ADMIN_TOKEN: TOKEN,
      TRUSTED_PROXIES: "127.0.0.1",
    },
  });
  try {
    const idA = `127.0.0.1:${a.port}`;
    // A slow request on each backend, so one is in flight on a when it is drained.
    const slow = [get(`${proxy.url}/delay/1500`), get(`${proxy.url}/delay/1500`)];
    const deadline = Date.now() + 20_000;
    while ((await a.stats()).paths["/delay/1500"] !== 1) {
      assert(Date.now() < deadline, "the slow request never reached a");
      await new Promise((r) => setTimeout(r, 50));
    }

    // Guarded like every admin endpoint.
    const remote = await get(`${proxy.url}/proxy-backends/${idA}/drain`, REMOTE, "POST");
    assertEquals(remote.status, 401);
    assertEquals((await get(`${proxy.url}/proxy-backends/${idA}/drain`, {}, "GET")).status, 405);
    const unknown = await get(`${proxy.url}/proxy-backends/127.0.0.1:1/drain`, {}, "POST");
    assertEquals(unknown.status, 404);
    assert(unknown.text.includes("no backend"), unknown.text);

    const drained = await get(`${proxy.url}/proxy-backends/${idA}/drain`, {}, "POST");
    assertEquals(drained.status, 200, drained.text);
    const snap = JSON.parse(drained.text);
    assertEquals(snap.state, "drained");
    assertEquals(snap.in_flight, 1, "the request in flight is still there");

    for (let i = 0; i < 10; i++) assertEquals((await get(`${proxy.url}/json`)).backend, "b");
    const finished = await Promise.all(slow);
    assertEquals(finished.map((r) => r.status), [200, 200]);
    assertEquals(finished.map((r) => r.backend).sort(), ["a", "b"], "the in-flight one finished");
    const listed = JSON.parse((await get(`${proxy.url}/proxy-backends`)).text);
    const entryA = listed.backends.find((x: { url: string }) => x.url === a.url);
    assertEquals([entryA.state, entryA.drained, entryA.in_flight], ["drained", true, 0]);

    // With the token, from outside, and by index: enabled again.
    const enabled = await get(`${proxy.url}/proxy-backends/0/enable`, {
      ...REMOTE,
      authorization: `Bearer ${TOKEN}`,
    }, "POST");
    assertEquals(enabled.status, 200, enabled.text);
    assertEquals(JSON.parse(enabled.text).state, "up");
    const seen = new Set<string | null>();
    for (let i = 0; i < 4; i++) seen.add((await get(`${proxy.url}/json`)).backend);
    assertEquals([...seen].sort(), ["a", "b"]);
  } finally {
    await proxy.stop();
    await a.close();
    await b.close();
  }
});

Deno.test({
  name: "admin: a drain reaches every serving thread (SERVE_THREADS=2)",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const a = await startTestBackend("a");
    const b = await startTestBackend("b");
    const proxy = await startProxy({
      env: { BACKEND_SERVERS: `${a.url},${b.url}`, SERVE_THREADS: "2" },
    });
    try {
      for (let i = 0; i < 200 && !/2 threads/.test(proxy.output()); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert(/listening on .* 2 threads/.test(proxy.output()), proxy.output());
      const drained = await get(
        `${proxy.url}/proxy-backends/127.0.0.1:${a.port}/drain`,
        {},
        "POST",
      );
      assertEquals(drained.status, 200, drained.text);
      // The other thread hears it over a channel: give it a moment, then only b answers.
      const deadline = Date.now() + 10_000;
      let backends: string[] = [];
      do {
        await new Promise((r) => setTimeout(r, 100));
        // A new connection per request, so the kernel spreads them over both threads.
        backends = await Promise.all(
          Array.from(
            { length: 40 },
            () =>
              rawRequest(proxy.port, "GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .then((r) => r.headers["x-backend"]),
          ),
        );
      } while (backends.includes("a") && Date.now() < deadline);
      assertEquals([...new Set(backends)], ["b"]);
      const stats = await proxy.stats();
      const served = stats.threads.map((t: { requests_total: number }) => t.requests_total);
      assert(served.every((n: number) => n > 0), `both threads served: ${served}`);
    } finally {
      await proxy.stop();
      await a.close();
      await b.close();
    }
  },
});
