/**
 * The listener's hit path (src/server/http1/connection.ts → entry `hit`):
 * a plain fresh hit is written from the entry's serialised head without a
 * Request or a Response. These tests hold it to the Response path: the same
 * head byte for byte (but for Age, Date and X-Request-Id values), and every
 * check, count and log line the Response path has.
 */
import assert from "node:assert/strict";
import { startProxy } from "./helpers/proxy.ts";
import { rawRequest } from "./helpers/rawhttp.ts";

/** An origin whose response has fields sorted before `age`, after `x-request-id`, repeated ones and its own X-Request-Id. */
function startOrigin() {
  let count = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    count++;
    const headers = new Headers([
      ["cache-control", "public, max-age=3600"],
      ["accept-ranges", "bytes"],
      ["access-control-allow-origin", "*"],
      ["link", "</a.css>; rel=preload"],
      ["link", "</b.js>; rel=preload"],
      ["x-request-id", "from-the-origin"],
      ["x-zz-last", "after the request id"],
      ["content-type", "text/plain"],
    ]);
    return new Response(new URL(req.url).pathname.repeat(50), { headers });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests: () => count,
    close: () => server.shutdown(),
  };
}

/** The head's lines, with the values that differ per response masked. */
function headLines(raw: string): string[] {
  const head = raw.slice(0, raw.indexOf("\r\n\r\n"));
  return head.split("\r\n").map((line) =>
    line.replace(/^(age|date|x-request-id): .*$/, (_, name) => `${name}: <varies>`)
  );
}

const get = (path: string, extra = "", method = "GET") =>
  `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;

Deno.test("a hit written from the entry's serialised head is the Response path's head, GET and HEAD", async () => {
  const origin = startOrigin();
  const proxy = await startProxy({ env: { BACKEND_SERVERS: origin.url, CACHE_BACKEND: "memory" } });
  try {
    const miss = await rawRequest(proxy.port, get("/page"));
    assert.equal(miss.headers["x-cache"], "MISS");
    for (const method of ["GET", "HEAD"]) {
      // The parser cannot tell a HEAD answer complete (Content-Length without a body): it
      // stops waiting after this.
      const options = { timeoutMs: method === "HEAD" ? 1000 : 5000 };
      // Plain: the listener's hit path. With an If-Modified-Since older than the entry: the
      // Response path (a conditional request), which answers the full 200 just the same.
      const plain = await rawRequest(proxy.port, get("/page", "", method), options);
      const viaResponse = await rawRequest(
        proxy.port,
        get("/page", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n", method),
        options,
      );
      assert.equal(plain.status, 200);
      assert.equal(plain.headers["x-cache"], "HIT");
      assert.deepEqual(headLines(plain.raw), headLines(viaResponse.raw), method);
      assert.equal(plain.body, method === "GET" ? "/page".repeat(50) : "");
      assert.equal(plain.body, viaResponse.body);
      // The proxy's own request id replaces the origin's, on both paths.
      assert.match(plain.headers["x-request-id"], /^[0-9a-f]+-[0-9a-z]+$/);
      assert.notEqual(plain.headers["x-request-id"], viaResponse.headers["x-request-id"]);
    }
    assert.equal(origin.requests(), 1);
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("hits on the listener's path pass ALLOWED_CLIENTS, keep a trusted X-Request-Id, and are counted and logged", async () => {
  const origin = startOrigin();
  const proxy = await startProxy({
    env: {
      BACKEND_SERVERS: origin.url,
      CACHE_BACKEND: "memory",
      TRUSTED_PROXIES: "127.0.0.1/32",
      ALLOWED_CLIENTS: "10.0.0.1/32",
      ACCESS_LOG: "true",
      LOG_LEVEL: "info",
    },
  });
  const from = (ip: string, id = "") =>
    `X-Forwarded-For: ${ip}\r\n` + (id ? `X-Request-Id: ${id}\r\n` : "");
  try {
    assert.equal((await rawRequest(proxy.port, get("/acl", from("10.0.0.1")))).status, 200);
    const before = await proxy.stats();
    const hit = await rawRequest(proxy.port, get("/acl", from("10.0.0.1", "hit-path-42")));
    assert.equal(hit.status, 200);
    assert.equal(hit.headers["x-cache"], "HIT");
    assert.equal(hit.headers["x-request-id"], "hit-path-42");
    // A client the ACL refuses gets its 403 although the answer is in memory.
    const refused = await rawRequest(proxy.port, get("/acl", from("10.0.0.2")));
    assert.equal(refused.status, 403);
    assert.match(refused.body, /10\.0\.0\.2 is not in ALLOWED_CLIENTS/);
    // Counted like any request: the hit and the refusal, and the first stats request.
    const after = await proxy.stats();
    assert.equal(after.requests_total - before.requests_total, 3);
    assert.equal(after.cache_hits - before.cache_hits, 1);
    assert.ok(after.bytes_transferred - before.bytes_transferred >= "/acl".length * 50);
    // And logged, with the client after TRUSTED_PROXIES, the cache status and the request id.
    let line: string | undefined;
    for (let i = 0; i < 50 && line === undefined; i++) {
      line = proxy.output().split("\n").find((l) => l.includes("hit-path-42"));
      if (line === undefined) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(line, proxy.output());
    assert.match(line, /10\.0\.0\.1 GET \/acl 200 200 [\d.]+ms HIT - hit-path-42/);
    assert.equal(origin.requests(), 1);
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("a cached URL still gets its 304, Range, request Cache-Control and rate limit answers", async () => {
  const origin = startOrigin();
  const proxy = await startProxy({
    env: {
      BACKEND_SERVERS: origin.url,
      CACHE_BACKEND: "memory",
      RATE_LIMIT_REQUESTS: "6",
      RATE_LIMIT_EXEMPT: "",
    },
  });
  try {
    const first = await rawRequest(proxy.port, get("/cond"));
    assert.equal(first.status, 200);
    const date = first.headers["date"];
    const notModified = await rawRequest(
      proxy.port,
      get("/cond", `If-Modified-Since: ${date}\r\n`),
    );
    assert.equal(notModified.status, 304);
    assert.equal(notModified.body, "");
    const range = await rawRequest(proxy.port, get("/cond", "Range: bytes=0-1\r\n"));
    assert.equal(range.headers["x-cache"], "BYPASS");
    const noCache = await rawRequest(proxy.port, get("/cond", "Cache-Control: no-cache\r\n"));
    assert.notEqual(noCache.headers["x-cache"], "HIT");
    assert.equal((await rawRequest(proxy.port, get("/cond"))).headers["x-cache"], "HIT");
    assert.equal((await rawRequest(proxy.port, get("/cond"))).headers["x-cache"], "HIT");
    // The seventh request of this client within the window: refused, cached or not.
    const limited = await rawRequest(proxy.port, get("/cond"));
    assert.equal(limited.status, 429);
  } finally {
    await proxy.stop();
    await origin.close();
  }
});
