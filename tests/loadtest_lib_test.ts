/**
 * The load generator against real local servers: counts, status codes,
 * body framings, rate mode with coordinated-omission correction, errors,
 * timeouts, rate-limit detection, abort, and forward-proxy mode (absolute-form
 * for http, CONNECT + TLS for https) through a small local proxy.
 */
import { TEST_CA, TEST_CERT, TEST_KEY } from "./helpers/tls.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { closedPort } from "./helpers/ports.ts";
import { formatReport, loadtest, OptionsError } from "../src/loadtest/mod.ts";
import * as http from "node:http";
import * as net from "node:net";

function assertGreater(a: number, b: number, msg?: string) {
  assert(a > b, msg ?? `expected ${a} > ${b}`);
}
function assertLess(a: number, b: number, msg?: string) {
  assert(a < b, msg ?? `expected ${a} < ${b}`);
}

interface Origin {
  url: string;
  port: number;
  hits: () => number;
  close: () => Promise<void>;
}

function origin(handler: (req: Request, n: number) => Response | Promise<Response>): Origin {
  let n = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => handler(req, n++),
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    port: server.addr.port,
    hits: () => n,
    close: () => server.shutdown(),
  };
}

Deno.test("count-based run sends exactly N requests and reports every status", async () => {
  const o = origin((_req, n) => new Response("hello", { status: n % 4 === 0 ? 404 : 200 }));
  try {
    const r = await loadtest({ url: `${o.url}/x`, requests: 400, concurrency: 8 });
    assertEquals(r.requests, 400);
    assertEquals(o.hits(), 400);
    assertEquals(r.errors_total, 0);
    assertEquals(r.status, { "200": 300, "404": 100 });
    assertEquals(r.latency_ms.count, 400);
    assert(r.latency_ms.min <= r.latency_ms.p50 && r.latency_ms.p50 <= r.latency_ms.p99);
    assert(r.latency_ms.p99 <= r.latency_ms.max);
    assertGreater(r.rps, 0);
    assertGreater(r.bytes_received, 400 * 5);
    assertGreater(r.timeline.length, 0);
    assertEquals(r.timeline.reduce((s, p) => s + p.requests, 0), 400);
    assertEquals(r.rate_limited, false);
    assertEquals(r.warnings, []);
  } finally {
    await o.close();
  }
});

Deno.test("keep-alive: many requests reuse a few connections", async () => {
  let conns = 0;
  const seen = new Set<number>();
  const s2 = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (_req, info) => {
      const port = (info.remoteAddr as Deno.NetAddr).port;
      if (!seen.has(port)) {
        seen.add(port);
        conns++;
      }
      return new Response("ok");
    },
  );
  try {
    const r = await loadtest({
      url: `http://127.0.0.1:${s2.addr.port}/`,
      requests: 300,
      concurrency: 3,
    });
    assertEquals(r.requests, 300);
    assertEquals(conns, 3);
  } finally {
    await s2.shutdown();
  }
});

Deno.test("chunked bodies, Connection: close, HEAD and POST bodies are framed right", async () => {
  const bodies: string[] = [];
  const o = origin(async (req) => {
    const url = new URL(req.url);
    if (req.method === "POST") {
      bodies.push(await req.text());
      return new Response("posted");
    }
    if (url.pathname === "/chunked") {
      const stream = new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode("a".repeat(3000)));
          c.enqueue(new TextEncoder().encode("b".repeat(70_000)));
          c.close();
        },
      });
      return new Response(stream);
    }
    if (url.pathname === "/close") {
      return new Response("bye", { headers: { connection: "close" } });
    }
    return new Response("z".repeat(100_000));
  });
  try {
    const chunked = await loadtest({ url: `${o.url}/chunked`, requests: 50, concurrency: 2 });
    assertEquals(chunked.status, { "200": 50 });
    assertGreater(chunked.bytes_received, 50 * 73_000);
    const big = await loadtest({ url: `${o.url}/big`, requests: 30, concurrency: 3 });
    assertEquals(big.status, { "200": 30 });
    assertGreater(big.bytes_received, 30 * 100_000);
    const close = await loadtest({ url: `${o.url}/close`, requests: 40, concurrency: 4 });
    assertEquals(close.status, { "200": 40 });
    assertEquals(close.errors_total, 0);
    const head = await loadtest({ url: `${o.url}/big`, method: "HEAD", requests: 20 });
    assertEquals(head.status, { "200": 20 });
    assertLess(head.bytes_received, 20 * 1000);
    const post = await loadtest({
      url: `${o.url}/p`,
      method: "POST",
      body: '{"k":1}',
      headers: [["Content-Type", "application/json"]],
      requests: 10,
    });
    assertEquals(post.status, { "200": 10 });
    assertEquals(bodies.length, 10);
    assert(bodies.every((b) => b === '{"k":1}'));
  } finally {
    await o.close();
  }
});

Deno.test("credentials in the URL become an Authorization header, headers can override", async () => {
  const seen: (string | null)[] = [];
  const o = origin((req) => {
    seen.push(req.headers.get("authorization"));
    return new Response("ok");
  });
  try {
    const withUser = o.url.replace("http://", "http://al%20ice:s3cr%3At@");
    const r = await loadtest({ url: `${withUser}/`, requests: 2 });
    assert(!r.url.includes("s3cr") && r.url.includes("***"), r.url);
    assertEquals(seen.splice(0), Array(2).fill(`Basic ${btoa("al ice:s3cr:t")}`));
    await loadtest({ url: `${withUser}/`, requests: 1, headers: [["Authorization", "Bearer x"]] });
    assertEquals(seen, ["Bearer x"]);
  } finally {
    await o.close();
  }
});

Deno.test("rate mode holds the rate and counts latency from the intended send time", async () => {
  // The first request stalls 600 ms. With one connection and 100 requests/s, the
  // ~60 requests due meanwhile must show that wait (coordinated omission corrected).
  const o = origin(async (_req, n) => {
    if (n === 0) await new Promise((r) => setTimeout(r, 600));
    return new Response("ok");
  });
  try {
    const started = performance.now();
    const r = await loadtest({ url: o.url, requests: 150, concurrency: 1, rate: 100 });
    const took = performance.now() - started;
    assertEquals(r.requests, 150);
    assertEquals(r.rate, 100);
    // 150 requests at 100/s take about 1.5 s: the rate was held, not exceeded.
    assertGreater(took, 1400);
    assertGreater(r.latency_ms.max, 550);
    assertGreater(r.latency_ms.p90, 200, "requests queued behind the stall count their wait");
  } finally {
    await o.close();
  }
});

Deno.test("rate mode in a timed run sends rate × duration requests", async () => {
  const o = origin(() => new Response("ok"));
  try {
    const r = await loadtest({ url: o.url, duration: 1, rate: 200, concurrency: 4 });
    // Requests due at 0, 5, 10 … 995 ms: 200 of them, never more; the last few may be cut
    // off by the end when a loaded machine delays them.
    assert(r.requests >= 150 && r.requests <= 200, `${r.requests} requests`);
    assertEquals(r.errors_total, 0);
  } finally {
    await o.close();
  }
});

Deno.test("time-based run stops at the duration", async () => {
  const o = origin(() => new Response("ok"));
  try {
    const started = performance.now();
    const r = await loadtest({ url: o.url, duration: 1, concurrency: 4 });
    const took = performance.now() - started;
    assertEquals(r.mode, "duration");
    assertGreater(r.requests, 10);
    assertGreater(took, 950);
    assertLess(took, 5000);
    assertLess(Math.abs(r.duration_s - 1), 0.3);
    assertEquals(r.errors_total, 0, JSON.stringify(r.errors_total));
    // Nothing after the end is counted, so the per-second chart has no inflated tail.
    assertEquals(r.timeline.length, 1, JSON.stringify(r.timeline));
    assertEquals(r.timeline[0].requests, r.requests);
  } finally {
    await o.close();
  }
});

Deno.test("the report shows the load generator's own CPU, so its limit is not taken for the target's", async () => {
  const o = origin(() => new Response("ok"));
  try {
    const r = await loadtest({ url: o.url, duration: 1, concurrency: 4 });
    const cpu = r.loadgen_cpu;
    assertEquals(cpu.threads, 1);
    assertGreater(cpu.user_s + cpu.system_s, 0);
    // This process served the origin too: at most every core for the whole second.
    assertLess(cpu.user_s + cpu.system_s, r.duration_s * navigator.hardwareConcurrency + 0.5);
    const share = ((cpu.user_s + cpu.system_s) / r.duration_s) * 100;
    assertLess(Math.abs(cpu.core_percent - share), 1, JSON.stringify(cpu));
    const saturated = r.warnings.some((w) => w.includes("load generator itself used"));
    assertEquals(saturated, cpu.core_percent >= 85, JSON.stringify(r.warnings));
    assert(formatReport(r).includes("% of one CPU core"), formatReport(r));
  } finally {
    await o.close();
  }
});

Deno.test("a target that is down gives connect errors, not responses", async () => {
  const port = closedPort();
  const r = await loadtest({ url: `http://127.0.0.1:${port}/`, requests: 20, concurrency: 2 });
  assertEquals(r.requests, 0);
  assertEquals(r.errors_total, 20);
  assertEquals(r.errors, { connect: 20 });
  assert(r.error_samples.connect.includes(`127.0.0.1:${port}`));
  assert(r.warnings.some((w) => w.includes("20 requests failed")));
});

Deno.test("a server that never answers gives timeout errors", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) held.push(c); // accepts, reads nothing, answers nothing
  })();
  try {
    const r = await loadtest({
      url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/`,
      requests: 4,
      concurrency: 2,
      timeout: 0.3,
    });
    assertEquals(r.errors, { timeout: 4 });
    assertEquals(r.requests, 0);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const c of held) c.close();
  }
});

Deno.test("429 and RateLimit-Remaining: 0 mark the report as rate limited", async () => {
  const o = origin((_req, n) => {
    if (n % 2 === 0) return new Response("slow down", { status: 429 });
    return new Response("ok", { headers: { "RateLimit-Remaining": n % 3 === 0 ? "0" : "5" } });
  });
  try {
    const r = await loadtest({ url: o.url, requests: 60, concurrency: 1 });
    assertEquals(r.status, { "200": 30, "429": 30 });
    assertEquals(r.rate_limited, true);
    assertEquals(r.rate_limited_responses, 40); // 30 × 429 + 10 × remaining 0
    assert(r.warnings.some((w) => w.includes("rate limit shaped these results")));
  } finally {
    await o.close();
  }
});

Deno.test("an abort signal stops a long run early with a partial report", async () => {
  const o = origin(() => new Response("ok"));
  try {
    const ac = new AbortController();
    const progress: number[] = [];
    const started = performance.now();
    setTimeout(() => ac.abort(), 400);
    const r = await loadtest({ url: o.url, duration: 30, concurrency: 2 }, {
      signal: ac.signal,
      progressIntervalMs: 50,
      onProgress: (p) => progress.push(p.fraction),
    });
    assertLess(performance.now() - started, 5000);
    assertEquals(r.aborted, true);
    assertGreater(r.requests, 0);
    assertEquals(r.errors_total, 0);
    assertGreater(progress.length, 2);
    assert(progress.every((f) => f >= 0 && f <= 1));
  } finally {
    await o.close();
  }
});

Deno.test("bad options are refused with a clear message", async () => {
  const bad: [Record<string, unknown>, string][] = [
    [{ url: "ftp://x/" }, "http:// or https://"],
    [{ url: "not a url" }, "not a valid URL"],
    [{ url: "http://x/", requests: 0 }, "--requests"],
    [{ url: "http://x/", requests: 5, duration: 1 }, "either"],
    [{ url: "http://x/", concurrency: 0 }, "--concurrency"],
    [{ url: "http://x/", rate: -1 }, "--rate"],
    [{ url: "http://x/", headers: [["X-A", "a\r\nInjected: 1"]] }, "line break"],
    [{ url: "http://x/", method: "GET /evil" }, "--method"],
    [{ url: "http://x/", proxy: "socks5://h:1" }, "--proxy"],
  ];
  for (const [opts, text] of bad) {
    try {
      await loadtest(opts as never);
      throw new Error(`accepted ${JSON.stringify(opts)}`);
    } catch (err) {
      assert(err instanceof OptionsError, String(err));
      assert(err.message.includes(text), `${err.message} should mention ${text}`);
    }
  }
});

/** A tiny forward proxy: absolute-form requests relayed with fetch, CONNECT piped raw. */
function forwardProxy() {
  const targets: string[] = [];
  const tunnels: string[] = [];
  const server = http.createServer(async (req, res) => {
    targets.push(req.url ?? "");
    const upstream = await fetch(req.url!, { method: req.method });
    res.writeHead(upstream.status, { "content-type": "text/plain", "x-via": "test-proxy" });
    res.end(new Uint8Array(await upstream.arrayBuffer()));
  });
  const sockets = new Set<net.Socket>();
  server.on("connection", (s: net.Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("connect", (req: http.IncomingMessage, client: net.Socket) => {
    tunnels.push(req.url ?? "");
    const [host, port] = (req.url ?? "").split(":");
    const up = net.connect(Number(port), host, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      up.pipe(client);
      client.pipe(up);
    });
    sockets.add(up);
    const end = () => {
      up.destroy();
      client.destroy();
    };
    up.on("error", end);
    client.on("error", end);
    up.on("close", () => {
      sockets.delete(up);
      end();
    });
    client.on("close", end);
  });
  return {
    targets,
    tunnels,
    listen: () =>
      new Promise<number>((resolve) =>
        server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port))
      ),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

Deno.test({
  name: "proxy mode: http targets in absolute-form, https targets through CONNECT",
  // node:http keeps internal timers briefly after close; the sockets themselves are destroyed.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const o = origin((req) => new Response(`plain ${new URL(req.url).pathname}`));
    const cert = TEST_CERT;
    const key = TEST_KEY;
    const tlsServer = Deno.serve(
      { hostname: "127.0.0.1", port: 0, cert, key, onListen() {} },
      () => new Response("secret"),
    );
    const proxy = forwardProxy();
    const proxyPort = await proxy.listen();
    try {
      const plain = await loadtest({
        url: `${o.url}/via`,
        proxy: `http://127.0.0.1:${proxyPort}`,
        requests: 20,
        concurrency: 2,
      });
      assertEquals(plain.status, { "200": 20 }, JSON.stringify(plain.error_samples));
      assertEquals(proxy.targets.length, 20);
      assert(proxy.targets.every((t) => t === `${o.url}/via`), proxy.targets[0]);
      assertEquals(plain.proxy, `http://127.0.0.1:${proxyPort}`);

      const secure = await loadtest({
        url: `https://localhost:${tlsServer.addr.port}/s`,
        proxy: `http://127.0.0.1:${proxyPort}`,
        caCerts: [TEST_CA],
        requests: 20,
        concurrency: 2,
      });
      assertEquals(secure.status, { "200": 20 }, JSON.stringify(secure.error_samples));
      assertEquals(proxy.tunnels.length, 2, "one tunnel per keep-alive connection");
      assertEquals(proxy.tunnels[0], `localhost:${tlsServer.addr.port}`);

      // Directly over TLS, without a proxy.
      const direct = await loadtest({
        url: `https://localhost:${tlsServer.addr.port}/s`,
        caCerts: [TEST_CA],
        requests: 30,
        concurrency: 3,
      });
      assertEquals(direct.status, { "200": 30 }, JSON.stringify(direct.error_samples));
      assertEquals(proxy.tunnels.length, 2, "no tunnel without --proxy");

      // Without the CA the TLS handshake fails and says so.
      const untrusted = await loadtest({
        url: `https://localhost:${tlsServer.addr.port}/s`,
        proxy: `http://127.0.0.1:${proxyPort}`,
        requests: 2,
        concurrency: 1,
      });
      assertEquals(untrusted.errors, { tls: 2 });

      const deadProxy = await loadtest({
        url: `${o.url}/`,
        proxy: `http://127.0.0.1:${closedPort()}`,
        requests: 3,
        concurrency: 1,
      });
      assertEquals(deadProxy.errors, { connect: 3 });
      assert(deadProxy.error_samples.connect.includes("proxy"));
    } finally {
      await proxy.close();
      await tlsServer.shutdown();
      await o.close();
    }
  },
});
