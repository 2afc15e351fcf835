/**
 * Rate limiting end to end: real proxy processes, a real backend, a real
 * redis-server that the test kills and restarts.
 */
import assert from "node:assert/strict";
import { startProxy, type TestProxy } from "./helpers/proxy.ts";
import { startTestBackend } from "./helpers/backend.ts";
import { startRedis } from "./helpers/redis.ts";
import { rawRequest } from "./helpers/rawhttp.ts";

async function get(proxy: TestProxy, path = "/json") {
  const res = await fetch(`${proxy.url}${path}`);
  const body = await res.text();
  return { status: res.status, headers: res.headers, body };
}

async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Connections named "proxy-ratelimit" on the test Redis (CLIENT LIST via redis-cli). */
async function rateLimitClients(port: number): Promise<number> {
  const out = await new Deno.Command("redis-cli", { args: ["-p", String(port), "client", "list"] })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) =>
    l.includes("name=proxy-ratelimit")
  )
    .length;
}

/** Settings for a gateway in front of `backendUrl` that limits loopback clients too. */
const limited = (backendUrl: string, extra: Record<string, string> = {}) => ({
  BACKEND_SERVERS: backendUrl,
  RATE_LIMIT_REQUESTS: "5",
  RATE_LIMIT_WINDOW: "60",
  RATE_LIMIT_EXEMPT: "",
  ...extra,
});

Deno.test("the (N+1)th request in a window is refused with 429, Retry-After and RateLimit headers", async () => {
  const backend = await startTestBackend("rl");
  const proxy = await startProxy({ env: limited(backend.url) });
  try {
    for (let i = 0; i < 5; i++) {
      const r = await get(proxy);
      assert.equal(r.status, 200, `request ${i + 1}: ${r.body}`);
      assert.equal(r.headers.get("ratelimit-limit"), "5");
      assert.equal(r.headers.get("ratelimit-remaining"), String(4 - i));
      const reset = Number(r.headers.get("ratelimit-reset"));
      assert.ok(reset > 0 && reset <= 60, `reset ${reset}`);
    }
    const refused = await get(proxy);
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("ratelimit-remaining"), "0");
    const retry = Number(refused.headers.get("retry-after"));
    assert.ok(retry > 0 && retry <= 60, `retry-after ${retry}`);
    assert.match(refused.body, /more than 5 requests in 60 s/);
    assert.match(refused.body, /RATE_LIMIT_EXEMPT/);
    // The backend saw exactly the 5 admitted requests.
    assert.equal((await backend.stats()).paths["/json"], 5);
    const stats = await proxy.stats();
    assert.equal(stats.rate_limited_requests, 1);
    assert.equal(stats.rate_limit.store, "local");
    // The admin surface is not rate limited: operators can still look.
    assert.equal((await get(proxy, "/healthz")).status, 200);
  } finally {
    await proxy.stop();
    await backend.close();
  }
});

Deno.test("loopback is exempt by default, and RATE_LIMIT_EXEMPT lists are honoured", async () => {
  const backend = await startTestBackend("rl");
  const byDefault = await startProxy({
    env: { BACKEND_SERVERS: backend.url, RATE_LIMIT_REQUESTS: "2" },
  });
  const listed = await startProxy({
    env: limited(backend.url, {
      RATE_LIMIT_REQUESTS: "2",
      RATE_LIMIT_EXEMPT: "10.0.0.0/8,127.0.0.1/32",
    }),
  });
  const other = await startProxy({
    env: limited(backend.url, { RATE_LIMIT_REQUESTS: "2", RATE_LIMIT_EXEMPT: "10.0.0.0/8" }),
  });
  try {
    for (const proxy of [byDefault, listed]) {
      for (let i = 0; i < 10; i++) {
        const r = await get(proxy);
        assert.equal(r.status, 200);
        assert.equal(
          r.headers.get("ratelimit-limit"),
          null,
          "exempt clients get no RateLimit headers",
        );
      }
      const stats = await proxy.stats();
      assert.equal(stats.rate_limited_requests, 0);
      assert.equal(stats.rate_limit.exempt_requests, 10);
    }
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await get(other)).status);
    assert.deepEqual(statuses, [200, 200, 429]);
  } finally {
    await Promise.all([byDefault.stop(), listed.stop(), other.stop()]);
    await backend.close();
  }
});

Deno.test("two proxy instances on one Redis share one limit; Redis killed, they keep serving on local limits", async () => {
  const backend = await startTestBackend("rl");
  const redis = await startRedis();
  // A generous command timeout: on a loaded machine a slow answer would count as an outage and
  // the decision would be taken locally, which is what the second half tests, not the first.
  const env = limited(backend.url, {
    RATE_LIMIT_REQUESTS: "6",
    REDIS_URL: redis.url,
    REDIS_TIMEOUT: "2s",
  });
  const a = await startProxy({ env });
  const b = await startProxy({ env });
  try {
    // Wait until both instances are connected, so every decision below is taken in Redis.
    await until(
      async () => (await rateLimitClients(redis.port)) >= 2,
      "both proxies connected to Redis",
    );
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await get(i % 2 ? a : b)).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 429, 429]);
    const [sa, sb] = [await a.stats(), await b.stats()];
    assert.equal(sa.rate_limit.store, "redis");
    assert.equal(sb.rate_limit.store, "redis");
    assert.equal(sa.rate_limited_requests + sb.rate_limited_requests, 2);

    await redis.kill();
    // Still serving: the local limiter of each instance takes over, without errors or stalls.
    const t0 = performance.now();
    const after: number[] = [];
    for (let i = 0; i < 6; i++) after.push((await get(a)).status);
    assert.ok(performance.now() - t0 < 10_000, "requests were not held up by the dead Redis");
    assert.deepEqual(after, [200, 200, 200, 200, 200, 200]);
    assert.equal((await get(a)).status, 429, "the local limiter enforces the same limit");
    const s = await a.stats();
    assert.equal(s.rate_limit.store, "local");
    assert.equal(sa.rate_limit.redis_fallbacks, 0, "before the kill every decision was in Redis");
    assert.ok(s.rate_limit.redis_fallbacks >= 7, JSON.stringify(s.rate_limit));
    assert.equal((await get(b)).status, 200, "the other instance serves too");
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    await redis.stop();
    await backend.close();
  }
});

Deno.test("CONNECT tunnels count against the same limit and are refused with 429 and RateLimit headers", async () => {
  // 127.0.0.2:443 passes every other check (FORWARD_ALLOW_PRIVATE); nothing listens there, so an
  // admitted tunnel fails with 502, and the third attempt must be refused before connecting.
  const proxy = await startProxy({
    env: {
      RATE_LIMIT_REQUESTS: "2",
      RATE_LIMIT_EXEMPT: "",
      FORWARD_ALLOW_PRIVATE: "127.0.0.2/32",
    },
  });
  try {
    const tunnel = () =>
      rawRequest(proxy.port, "CONNECT 127.0.0.2:443 HTTP/1.1\r\nHost: 127.0.0.2:443\r\n\r\n", {
        timeoutMs: 15_000,
      });
    const first = [(await tunnel()).status, (await tunnel()).status];
    assert.ok(first.every((s) => s !== 429), `first two: ${first}`);
    const refused = await tunnel();
    assert.equal(refused.status, 429);
    assert.equal(refused.headers["ratelimit-limit"], "2");
    assert.equal(refused.headers["ratelimit-remaining"], "0");
    assert.ok(Number(refused.headers["retry-after"]) > 0);
    // Plain requests share the budget with tunnels.
    const plain = await rawRequest(
      proxy.port,
      "GET http://127.0.0.2:9/ HTTP/1.1\r\nHost: 127.0.0.2:9\r\n\r\n",
    );
    assert.equal(plain.status, 429);
    assert.equal((await proxy.stats()).rate_limited_requests, 2);
  } finally {
    await proxy.stop();
  }
});
