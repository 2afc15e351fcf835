/**
 * PURGE against a Redis-backed cache: it reaches the shared copy, and when Redis cannot be
 * reached the answer is 503 (shared copies may remain), never a false "purged".
 */
import assert from "node:assert/strict";
import { startTestBackend } from "./helpers/backend.ts";
import { startProxy } from "./helpers/proxy.ts";
import { startRedis } from "./helpers/redis.ts";

Deno.test("PURGE removes the shared copy, and answers 503 while Redis is unreachable", async () => {
  const redis = await startRedis();
  const backend = await startTestBackend("b");
  const proxy = await startProxy({
    env: {
      BACKEND_SERVERS: backend.url,
      CACHE_BACKEND: "redis",
      REDIS_URL: redis.url,
      REDIS_TIMEOUT: "300",
    },
  });
  const get = async (path: string) => {
    const res = await fetch(`${proxy.url}${path}`);
    await res.body?.cancel();
    return res.headers.get("x-cache");
  };
  const purge = async (path: string) => {
    const res = await fetch(`${proxy.url}${path}`, { method: "PURGE" });
    return { status: res.status, body: (await res.text()).trim() };
  };
  try {
    await get("/cache/60");
    assert.equal(await get("/cache/60"), "HIT");
    assert.deepEqual(await purge("/cache/60"), { status: 200, body: '{"purged":1}' });
    assert.equal(await get("/cache/60"), "MISS");
    assert.equal(await get("/cache/60"), "HIT");

    await redis.kill();
    const refused = await purge("/cache/60");
    assert.equal(refused.status, 503, `PURGE with Redis down: ${refused.body}`);
    assert.equal((await fetch(`${proxy.url}/healthz`)).status, 200, "the proxy keeps serving");
  } finally {
    await proxy.stop();
    await backend.close();
    await redis.stop();
  }
});
