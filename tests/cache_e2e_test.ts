/**
 * The cache through the real proxy process (reverse mode in front of the test
 * backend): hits, revalidation, coalescing counted by the backend's /__stats,
 * PURGE and the admin endpoint, a shared Redis between two proxies, and the
 * cache status in /healthz and /proxy-stats.
 */
import assert from "node:assert/strict";
import { startProxy, type TestProxy } from "./helpers/proxy.ts";
import { startTestBackend, type TestBackend } from "./helpers/backend.ts";
import { startRedis } from "./helpers/redis.ts";
import { curl } from "./helpers/http.ts";

/** X-Cache of a GET with a given Host (fetch cannot set Host; curl can). */
async function xcacheWithHost(url: string, host: string): Promise<string> {
  const r = await curl("-o", "/dev/null", "-D", "-", "-H", `Host: ${host}`, url);
  return /^x-cache: (\w+)/im.exec(r.stdout)?.[1] ?? `none (curl ${r.code}: ${r.stderr})`;
}

async function get(url: string, init: RequestInit = {}) {
  const res = await fetch(url, init);
  const body = await res.text();
  return { status: res.status, xcache: res.headers.get("x-cache"), headers: res.headers, body };
}

async function withProxy(
  env: Record<string, string>,
  fn: (proxy: TestProxy, backend: TestBackend) => Promise<void>,
  backend?: TestBackend,
) {
  const b = backend ?? await startTestBackend("c");
  const proxy = await startProxy({ env: { BACKEND_SERVERS: b.url, ...env } });
  try {
    await fn(proxy, b);
  } finally {
    await proxy.stop();
    if (!backend) await b.close();
  }
}

Deno.test("e2e cache: hit after miss, coalescing, revalidation, purge, stats", async () => {
  const env = { CACHE_BACKEND: "memory", CACHE_MAX_OBJECT_SIZE: "128KiB" };
  await withProxy(env, async (proxy, backend) => {
    const url = `${proxy.url}/bytes/2048?max_age=3600`;
    const first = await get(url);
    assert.equal(first.status, 200);
    assert.equal(first.xcache, "MISS");
    assert.equal(first.body.length, 2048);
    const second = await get(url);
    assert.equal(second.xcache, "HIT");
    assert.equal(second.body, first.body);
    assert.ok(second.headers.get("age") !== null);
    const head = await fetch(url, { method: "HEAD" });
    await head.body?.cancel();
    assert.equal(head.headers.get("x-cache"), "HIT");
    assert.equal(head.headers.get("content-length"), "2048");

    // 100 concurrent requests for a cold URL reach the backend once.
    const cold = `${proxy.url}/bytes/4096?max_age=600&cold=1`;
    const all = await Promise.all(Array.from({ length: 100 }, () => get(cold)));
    assert.ok(all.every((r) => r.status === 200 && r.body.length === 4096));
    assert.equal((await backend.stats()).paths["/bytes/4096"], 1);

    // ETag + max-age=0, must-revalidate: every use is a conditional request answered 304.
    const tagged = `${proxy.url}/etag/v1`;
    assert.equal((await get(tagged)).xcache, "MISS");
    const again = await get(tagged);
    assert.equal(again.xcache, "REVALIDATED");
    assert.equal(again.status, 200);

    // A body larger than 64 KiB streams through the tee into the cache.
    const big = `${proxy.url}/bytes/90000?max_age=600`;
    const bigMiss = await get(big);
    assert.equal(bigMiss.xcache, "MISS");
    const bigHit = await get(big);
    assert.equal(bigHit.xcache, "HIT");
    assert.equal(bigHit.body, bigMiss.body);
    assert.equal(bigHit.body.length, 90000);
    // Above CACHE_MAX_OBJECT_SIZE it streams through and is not stored.
    const huge = `${proxy.url}/bytes/300000?max_age=600`;
    for (let i = 0; i < 2; i++) {
      const r = await get(huge);
      assert.equal(r.xcache, "MISS");
      assert.equal(r.body.length, 300000);
    }

    // PURGE from loopback needs no token.
    const purge = await fetch(url, { method: "PURGE" });
    assert.equal(purge.status, 200);
    assert.deepEqual(await purge.json(), { purged: 1 });
    assert.equal((await get(url)).xcache, "MISS");
    const admin = await fetch(`${proxy.url}/proxy-cache/purge`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ all: true }),
    });
    assert.equal(admin.status, 200);
    await admin.body?.cancel();
    assert.equal((await get(url)).xcache, "MISS");

    const stats = await proxy.stats();
    assert.equal(stats.cache.backend, "memory");
    assert.equal(stats.cache.status, "ok");
    assert.ok(stats.cache.cache_hits >= 2);
    const health = await (await fetch(`${proxy.url}/healthz`)).json();
    assert.equal(health.cache, "ok");
    const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
    assert.match(metrics, /proxy_cache_requests_total\{result="hit"\} \d+/);
  });
});

Deno.test("e2e cache: two proxies on one Redis share hits; Redis down degrades, never fails", async () => {
  const redis = await startRedis();
  const backend = await startTestBackend("shared");
  const env = { CACHE_BACKEND: "redis", REDIS_URL: redis.url, CACHE_PREFIX: "e2e:" };
  try {
    await withProxy(env, async (a) => {
      await withProxy(env, async (b) => {
        const path = "/bytes/1024?max_age=3600";
        // Instances behind one site address see the same Host: that is part of the key.
        assert.equal(await xcacheWithHost(`${a.url}${path}`, "shop.example"), "MISS");
        // The Redis write happens just after the response: wait until it landed.
        for (let i = 0; i < 100; i++) {
          const out = await new Deno.Command("redis-cli", {
            args: ["-p", String(redis.port), "--scan", "--pattern", "e2e:*"],
          }).output();
          if (new TextDecoder().decode(out.stdout).trim() !== "") break;
          await new Promise((r) => setTimeout(r, 50));
        }
        const fromB = await xcacheWithHost(`${b.url}${path}`, "shop.example");
        assert.equal(fromB, "HIT", "the second proxy hits what the first stored");
        assert.equal((await backend.stats()).paths["/bytes/1024"], 1);

        await redis.kill();
        for (let i = 0; i < 20; i++) {
          const r = await get(`${b.url}/bytes/${100 + i}?max_age=60`);
          assert.equal(r.status, 200);
          assert.equal(r.body.length, 100 + i);
        }
        assert.equal((await b.stats()).cache.status, "degraded");
        assert.equal((await (await fetch(`${b.url}/healthz`)).json()).cache, "degraded");
        await redis.restart();
        const deadline = Date.now() + 20_000;
        while ((await b.stats()).cache.status !== "ok" && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.equal((await b.stats()).cache.status, "ok");
      }, backend);
    }, backend);
  } finally {
    await backend.close();
    await redis.stop();
  }
});
