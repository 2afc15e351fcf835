import assert from "node:assert/strict";
import { Redis } from "ioredis";
import type { RequestContext } from "../context/mod.ts";
import { compose } from "../pipeline/mod.ts";
import { ok } from "../pipeline/testing.ts";
import { parseCidrList } from "../security/mod.ts";
import { startRedis, type TestRedis } from "../../tests/helpers/redis.ts";
import { createRateLimiter, type RedisHandle } from "./limiter.ts";

function redisHandle(url: string): RedisHandle & { close(): void } {
  const client = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => 100,
    lazyConnect: false,
  });
  client.on("error", () => {}); // reconnects are expected in the fault tests
  return {
    client,
    status: () => (client.status === "ready" ? "ok" : client.status),
    close: () => client.disconnect(),
  };
}

async function until(cond: () => boolean, what: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const ctxFor = (clientIp: string, user?: string): RequestContext => ({
  id: "t",
  kind: "http",
  conn: { remoteAddr: clientIp, remotePort: 1, form: "absolute", secure: false },
  startedAt: 0,
  clientIp,
  user,
});

Deno.test({
  name:
    "two limiter instances on one Redis enforce one limit, with keys under the prefix and a TTL",
  async fn() {
    const redis = await startRedis();
    const h1 = redisHandle(redis.url), h2 = redisHandle(redis.url);
    try {
      await until(() => h1.status() === "ok" && h2.status() === "ok", "redis ready");
      const mk = (h: RedisHandle) =>
        createRateLimiter({ limit: 10, windowSec: 30, redis: h, prefix: "test:rl:" });
      const a = mk(h1), b = mk(h2);
      const results: boolean[] = [];
      for (let i = 0; i < 12; i++) {
        results.push((await (i % 2 ? a : b).check("ip:203.0.113.1")).allowed);
      }
      assert.deepEqual(results, [...Array(10).fill(true), false, false]);
      const refused = await a.check("ip:203.0.113.1");
      assert.equal(refused.store, "redis");
      assert.equal(refused.remaining, 0);
      assert.ok(refused.resetMs > 25_000 && refused.resetMs <= 30_000, `reset ${refused.resetMs}`);
      const keys = await h1.client.keys("test:rl:*");
      assert.deepEqual(keys, ["test:rl:ip:203.0.113.1"]);
      const ttl = await h1.client.pttl(keys[0]);
      assert.ok(ttl > 0 && ttl <= 30_000, `ttl ${ttl}`);
      assert.equal(a.snapshot().store, "redis");
      assert.equal(a.snapshot().redis_fallbacks, 0);
      a.close();
      b.close();
    } finally {
      h1.close();
      h2.close();
      await redis.stop();
    }
  },
});

Deno.test({
  name:
    "Redis killed: decisions go local without errors or delay, and back to Redis when it returns",
  async fn() {
    const redis: TestRedis = await startRedis();
    const h = redisHandle(redis.url);
    try {
      await until(() => h.status() === "ok", "redis ready");
      const rl = createRateLimiter({
        limit: 3,
        windowSec: 60,
        redis: h,
        prefix: "t:",
        redisTimeoutMs: 500,
      });
      assert.equal((await rl.check("k")).store, "redis");
      await redis.kill();
      // Right after the kill the client may still think it is connected: the command fails or
      // times out, and the decision is local either way.
      const t0 = performance.now();
      const d = await rl.check("k");
      assert.ok(performance.now() - t0 < 2_000);
      assert.equal(d.store, "local");
      assert.equal(d.allowed, true);
      await until(() => h.status() !== "ok", "client notices the dead server");
      const local = [await rl.check("k"), await rl.check("k"), await rl.check("k")];
      assert.deepEqual(local.map((x) => [x.store, x.allowed]), [["local", true], ["local", true], [
        "local",
        false,
      ]]);
      const snap = rl.snapshot();
      assert.equal(snap.store, "local");
      assert.ok(snap.redis_fallbacks >= 4);
      assert.ok(snap.last_redis_error);
      assert.equal(snap.rate_limited_requests, 0); // check() is the raw store call; decide() counts
      await redis.restart();
      await until(() => h.status() === "ok", "client reconnects");
      const back = await rl.check("k");
      assert.equal(back.store, "redis");
      assert.equal(rl.snapshot().store, "redis");
      rl.close();
    } finally {
      h.close();
      await redis.stop();
    }
  },
});

Deno.test("phase: RateLimit headers on every response, 429 with Retry-After, exempt and disabled", async () => {
  const rl = createRateLimiter({ limit: 2, windowSec: 60, exempt: parseCidrList("10.0.0.0/8") });
  const off = createRateLimiter({ limit: 0, windowSec: 60 });
  const limited = compose(ok, rl.phase);
  const unlimited = compose(ok, off.phase);
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const ctx = ctxFor(req.headers.get("x-test-client") ?? "203.0.113.9");
    return (req.url.includes("/limited/") ? limited : unlimited)(req, ctx);
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 3; i++) {
      last = await fetch(`${base}/limited/x`);
      statuses.push(last.status);
      if (i === 0) {
        assert.equal(last.headers.get("ratelimit-limit"), "2");
        assert.equal(last.headers.get("ratelimit-remaining"), "1");
        assert.equal(last.headers.get("ratelimit-reset"), "60");
        assert.equal(last.headers.get("retry-after"), null);
      }
      if (i < 2) await last.body?.cancel();
    }
    assert.deepEqual(statuses, [200, 200, 429]);
    assert.equal(last!.headers.get("retry-after"), "60");
    assert.equal(last!.headers.get("ratelimit-remaining"), "0");
    assert.match(
      await last!.text(),
      /more than 2 requests in 60 s from client address 203\.0\.113\.9.*RATE_LIMIT_EXEMPT/,
    );
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${base}/limited/x`, { headers: { "x-test-client": "10.1.1.1" } });
      assert.equal(r.status, 200);
      await r.body?.cancel();
    }
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${base}/off/x`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("ratelimit-limit"), null);
      await r.body?.cancel();
    }
    const snap = rl.snapshot();
    assert.equal(snap.rate_limited_requests, 1);
    assert.equal(snap.allowed_requests, 2);
    assert.equal(snap.exempt_requests, 5);
    assert.equal(snap.store, "local");
    const fam = rl.metrics().find((m) => m.name === "proxy_rate_limited_requests_total")!;
    assert.equal(fam.samples[0].value, 1);
  } finally {
    await server.shutdown();
    rl.close();
    off.close();
  }
});

Deno.test("keyBy user and header: clients are told apart by what the operator chose", async () => {
  const byUser = createRateLimiter({ limit: 1, windowSec: 60, keyBy: "user" });
  assert.ok((await byUser.decide(ctxFor("1.1.1.1", "alice"))).allowed);
  assert.ok(!(await byUser.decide(ctxFor("2.2.2.2", "alice"))).allowed); // same user, other IP
  assert.ok((await byUser.decide(ctxFor("2.2.2.2", "bob"))).allowed);
  assert.ok((await byUser.decide(ctxFor("3.3.3.3"))).allowed); // no user: by IP
  const byHeader = createRateLimiter({ limit: 1, windowSec: 60, keyBy: { header: "x-api-key" } });
  const hk = (v: string) => new Headers({ "x-api-key": v });
  assert.ok((await byHeader.decide(ctxFor("1.1.1.1"), hk("a"))).allowed);
  assert.ok(!(await byHeader.decide(ctxFor("2.2.2.2"), hk("a"))).allowed);
  assert.ok((await byHeader.decide(ctxFor("2.2.2.2"), hk("b"))).allowed);
  assert.throws(() => createRateLimiter({ limit: 5, windowSec: 0 }), /RATE_LIMIT_WINDOW/);
  byUser.close();
  byHeader.close();
});
