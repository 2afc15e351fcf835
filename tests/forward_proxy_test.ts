/**
 * End-to-end: the proxy in forward mode (no backends) with real clients —
 * curl -x, fetch through a proxy client, raw sockets.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { gunzipSync } from "node:zlib";
import { startTestBackend } from "./helpers/backend.ts";
import { curl, proxiedClient } from "./helpers/http.ts";
import { rawRequest } from "./helpers/rawhttp.ts";
import { closedPort } from "./helpers/ports.ts";
import { startProxy } from "./helpers/proxy.ts";

const FORWARD_ENV = { FORWARD_ALLOW_PRIVATE: "true" };

Deno.test("forward proxy: curl -x fetches from an origin and the proxy adds Via and X-Forwarded-For", async () => {
  const origin = await startTestBackend("origin");
  const proxy = await startProxy({ env: FORWARD_ENV });
  try {
    const r = await curl("-i", "-x", proxy.url, `${origin.url}/headers`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^HTTP\/1\.1 200/);
    assert.match(r.stdout, /^x-backend: origin/im);
    assert.match(r.stdout, /^via: .*1\.1 proxy-/im);
    const body = JSON.parse(r.stdout.slice(r.stdout.indexOf("\r\n\r\n") + 4));
    const headers = Object.fromEntries(
      Object.entries(body.headers ?? body).map(([k, v]) => [k.toLowerCase(), v]),
    );
    assert.equal(headers["x-forwarded-for"], "127.0.0.1");
    assert.equal(headers["x-forwarded-proto"], "http");
    assert.equal(headers["host"], `127.0.0.1:${origin.port}`);
    assert.match(String(headers["via"]), /1\.1 proxy-/);
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("forward proxy: every method carries its body both ways", async () => {
  const origin = await startTestBackend("origin");
  const proxy = await startProxy({ env: FORWARD_ENV });
  const client = proxiedClient(proxy.url);
  try {
    for (const method of ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]) {
      const body = ["POST", "PUT", "PATCH", "DELETE"].includes(method)
        ? `payload for ${method}`
        : undefined;
      const res = await fetch(`${origin.url}/echo?m=${method}`, { method, body, client });
      assert.equal(res.status, 200, method);
      if (method === "HEAD") {
        assert.equal(await res.text(), "");
        continue;
      }
      const echo = await res.json();
      assert.equal(echo.method, method);
      assert.equal(echo.body ?? "", body ?? "");
    }
  } finally {
    client.close();
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("forward proxy: hop-by-hop headers are not forwarded, end-to-end ones are", async () => {
  const origin = await startTestBackend("origin");
  const proxy = await startProxy({ env: FORWARD_ENV });
  try {
    const r = await rawRequest(
      proxy.port,
      `GET ${origin.url}/headers HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n` +
        "Connection: close, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n" +
        "Proxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\n" +
        "X-End-To-End: kept\r\n\r\n",
    );
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body);
    const names = Object.keys(seen.headers ?? seen).map((k) => k.toLowerCase());
    for (
      const hop of [
        "x-hop",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
      ]
    ) {
      assert.ok(!names.includes(hop), `${hop} was forwarded`);
    }
    assert.ok(names.includes("x-end-to-end"));
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("forward proxy: a gzip body reaches a gzip client byte for byte with matching headers", async () => {
  const origin = await startTestBackend("origin");
  const proxy = await startProxy({ env: FORWARD_ENV });
  try {
    const direct = await rawRequest(
      origin.port,
      `GET /gzip HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n`,
    );
    const viaProxy = await rawRequest(
      proxy.port,
      `GET ${origin.url}/gzip HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(viaProxy.status, 200);
    assert.equal(viaProxy.headers["content-encoding"], "gzip");
    assert.equal(Number(viaProxy.headers["content-length"]), viaProxy.body.length);
    assert.deepEqual(viaProxy.body, direct.body);
    const json = JSON.parse(
      new TextDecoder().decode(gunzipSync(Buffer.from(viaProxy.body, "latin1"))),
    );
    assert.equal(typeof json, "object");
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("forward proxy: 502 for an unreachable origin, 504 for one slower than CONNECTION_TIMEOUT", async () => {
  const origin = await startTestBackend("origin");
  const proxy = await startProxy({ env: { ...FORWARD_ENV, CONNECTION_TIMEOUT: "1" } });
  const client = proxiedClient(proxy.url);
  try {
    const dead = closedPort();
    const bad = await fetch(`http://127.0.0.1:${dead}/`, { client });
    assert.equal(bad.status, 502);
    assert.match(await bad.text(), /connect/i);
    const started = performance.now();
    const slow = await fetch(`${origin.url}/delay/4000`, { client });
    assert.equal(slow.status, 504);
    await slow.body?.cancel();
    assert.ok(performance.now() - started < 3500, "timed out at about 1 s");
    const ok = await fetch(`${origin.url}/json`, { client });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  } finally {
    client.close();
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("forward proxy: an origin dying mid-body fails the client's transfer", async () => {
  const origin = await startTestBackend("origin");
  const proxy = await startProxy({ env: FORWARD_ENV });
  try {
    const r = await curl("-x", proxy.url, "-o", "/dev/null", `${origin.url}/die-mid-body`);
    assert.notEqual(r.code, 0, "curl must report the short transfer");
    const after = await curl("-x", proxy.url, `${origin.url}/json`);
    assert.equal(after.code, 0);
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("forward proxy: redirects go back to the client, never followed", async () => {
  const origin = await startTestBackend("origin");
  const proxy = await startProxy({ env: FORWARD_ENV });
  try {
    const r = await rawRequest(
      proxy.port,
      `GET ${origin.url}/status/302 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(r.status, 302);
    const stats = await origin.stats();
    assert.equal(stats.requests_total, 1);
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("forward proxy: clients outside ALLOWED_CLIENTS get 403 for requests and tunnels", async () => {
  const origin = await startTestBackend("origin");
  const proxy = await startProxy({ env: { ...FORWARD_ENV, ALLOWED_CLIENTS: "10.0.0.0/8" } });
  try {
    const r = await rawRequest(
      proxy.port,
      `GET ${origin.url}/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(r.status, 403);
    assert.match(r.body, /ALLOWED_CLIENTS|not allowed/i);
    const t = await rawRequest(proxy.port, `CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(t.status, 403);
    assert.equal((await origin.stats()).requests_total, 0);
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("malformed input gets 400, 431 or 505 and the proxy keeps serving", async () => {
  const origin = await startTestBackend("origin");
  const proxy = await startProxy({ env: FORWARD_ENV });
  try {
    const cases: [string, number][] = [
      ["GARBAGE\r\n\r\n", 400],
      ["GET http://[::1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400],
      ["GET ftp://example.com/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400],
      ["CONNECT not-a-target HTTP/1.1\r\nHost: x\r\n\r\n", 400],
      ["CONNECT host:99999 HTTP/1.1\r\nHost: x\r\n\r\n", 400],
      [`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(40_000)}\r\n\r\n`, 431],
      [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
      ],
      ["GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400],
      // A well-formed version the proxy does not speak: 505 (RFC 9110 §15.6.6).
      ["GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505],
      ["GET / HTTP/1\r\nHost: x\r\n\r\n", 400],
    ];
    for (const [request, status] of cases) {
      const r = await rawRequest(proxy.port, request, { timeoutMs: 5000 });
      assert.equal(
        r.status,
        status,
        `${JSON.stringify(request.slice(0, 60))} → ${r.raw.split("\r\n")[0]}`,
      );
    }
    const ok = await curl("-x", proxy.url, `${origin.url}/json`);
    assert.equal(ok.code, 0);
    assert.match(ok.stdout, /{/);
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("/proxy-stats counts stay exact under 500 concurrent requests", async () => {
  const origin = await startTestBackend("origin");
  const proxy = await startProxy({ env: FORWARD_ENV });
  const client = proxiedClient(proxy.url);
  try {
    const before = await proxy.stats();
    const methods = ["GET", "POST", "PUT", "DELETE", "PATCH"];
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => {
      const method = methods[i % methods.length];
      return fetch(`${origin.url}/echo`, {
        method,
        body: method === "GET" ? undefined : "x",
        client,
      })
        .then(async (r) => {
          await r.arrayBuffer();
          return r.status;
        });
    }));
    assert.deepEqual(new Set(results), new Set([200]));
    const after = await proxy.stats();
    assert.equal(after.requests_total - before.requests_total, 501); // + the second /proxy-stats
    assert.equal(after.requests_success - before.requests_success, 501);
    assert.equal(after.request_methods.POST - before.request_methods.POST, 100);
    assert.equal(after.request_methods.PUT - before.request_methods.PUT, 100);
    assert.equal(after.request_methods.DELETE - before.request_methods.DELETE, 100);
    assert.equal(
      after.request_methods.OTHER + after.request_methods.PATCH - before.request_methods.OTHER -
        before.request_methods.PATCH,
      100,
    );
    for (
      const key of [
        "bytes_transferred",
        "cache_hits",
        "cache_misses",
        "cache_hit_ratio",
        "active_connections",
        "rate_limited_requests",
        "start_time",
        "uptime_seconds",
        "open_tunnels",
      ]
    ) {
      assert.ok(key in after, key);
    }
    assert.ok(after.latency_ms.p50 > 0 && after.latency_ms.p99 >= after.latency_ms.p50);
    assert.equal(after.active_connections, 1); // the stats request itself
  } finally {
    client.close();
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("SIGTERM lets in-flight requests finish, then the proxy exits 0", async () => {
  const origin = await startTestBackend("origin");
  const proxy = await startProxy({ env: FORWARD_ENV });
  const client = proxiedClient(proxy.url);
  try {
    const inflight = Array.from(
      { length: 5 },
      () =>
        fetch(`${origin.url}/delay/3000`, { client }).then(async (r) => ({
          status: r.status,
          body: await r.text(),
        })),
    );
    // SIGTERM once all five are in flight at the origin (not after a guessed pause).
    const deadline = Date.now() + 20_000;
    while (((await origin.stats()).paths["/delay/3000"] ?? 0) < 5) {
      if (Date.now() > deadline) throw new Error("the requests never reached the origin");
      await new Promise((r) => setTimeout(r, 20));
    }
    const code = await proxy.signal("SIGTERM");
    const done = await Promise.all(inflight);
    assert.equal(code, 0, proxy.output());
    for (const d of done) assert.equal(d.status, 200);
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: proxy.port }));
  } finally {
    client.close();
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("forward proxy: loopback and private destinations are refused by default (SSRF)", async () => {
  const origin = await startTestBackend("origin");
  const proxy = await startProxy();
  try {
    for (
      const host of [`127.0.0.1:${origin.port}`, `localhost:${origin.port}`, "169.254.169.254"]
    ) {
      const r = await rawRequest(
        proxy.port,
        `GET http://${host}/json HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      );
      assert.equal(r.status, 403, host);
      assert.match(r.body, /FORWARD_ALLOW_PRIVATE/);
    }
    const t = await rawRequest(proxy.port, `CONNECT localhost:443 HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(t.status, 403, t.raw); // refused before any connection attempt (SECURITY.md)
    assert.equal((await origin.stats()).requests_total, 0);
  } finally {
    await proxy.stop();
    await origin.close();
  }
});
