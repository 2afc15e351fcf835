import assert from "node:assert/strict";
import { startRedis } from "../../tests/helpers/redis.ts";
import { connectRedis } from "../redis/mod.ts";
import { RedisStore } from "./redis_store.ts";
import { STRICT_HEURISTIC } from "./policy.ts";
import { type CacheEntry, prepare } from "./entry.ts";
import { secondaryKey } from "./vary.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function entry(
  url: string,
  body: Uint8Array<ArrayBuffer>,
  vary: string[] = [],
  req = new Headers(),
): CacheEntry {
  const now = Date.now();
  return prepare({
    url,
    status: 200,
    headers: [["cache-control", "max-age=60"], ["etag", '"e1"']],
    body,
    requestTime: now,
    responseTime: now,
    varyNames: vary,
    varyKey: secondaryKey(vary, req)!,
    initialAge: 0,
  }, STRICT_HEURISTIC);
}

async function redisKeys(port: number): Promise<string[]> {
  const out = await new Deno.Command("redis-cli", { args: ["-p", String(port), "--scan"] })
    .output();
  return dec.decode(out.stdout).split("\n").filter((s) => s.length > 0).sort();
}

Deno.test("RedisStore: binary bodies, variants, TTL, purge confined to the prefix", async () => {
  const redis = await startRedis();
  const handle = connectRedis({ url: redis.url, commandTimeoutMs: 500 });
  try {
    assert.ok(await handle.ping(5000));
    assert.equal(handle.status(), "ok");
    await handle.client.set("other:keep", "1");
    await handle.client.set("t:rl:client", "1"); // the rate limiter shares the prefix
    const store = new RedisStore({
      client: handle.client,
      prefix: "t:",
      heuristic: STRICT_HEURISTIC,
    });
    const body = new Uint8Array(256).map((_, i) => i);
    await store.set("http://a/bin", entry("http://a/bin", body), 30);
    const got = await store.get("http://a/bin", new Headers());
    assert.ok(got);
    assert.deepEqual(got.body, body);
    assert.equal(got.etag, '"e1"');
    const ttl = await handle.client.ttl("t:http://a/bin");
    assert.ok(ttl > 25 && ttl <= 30, `ttl ${ttl}`);
    // A shorter TTL for another variant never shortens the key's life.
    const names = ["accept-encoding"];
    const gz = new Headers({ "accept-encoding": "gzip" });
    await store.set("http://a/v", entry("http://a/v", enc.encode("id"), names), 30);
    await store.set("http://a/v", entry("http://a/v", enc.encode("gz"), names, gz), 5);
    assert.ok((await handle.client.ttl("t:http://a/v")) > 25);
    assert.equal(dec.decode((await store.get("http://a/v", gz))!.body), "gz");
    assert.equal(dec.decode((await store.get("http://a/v", new Headers()))!.body), "id");
    // A fresh store (another instance) finds variants without a names hint.
    const other = new RedisStore({
      client: handle.client,
      prefix: "t:",
      heuristic: STRICT_HEURISTIC,
    });
    assert.equal(dec.decode((await other.get("http://a/v", gz))!.body), "gz");
    assert.equal(
      await other.get("http://a/v", new Headers({ "accept-encoding": "br" })),
      undefined,
    );
    await store.set("http://a/x/1", entry("http://a/x/1", enc.encode("1")), 30);
    await store.set("http://a/x/2", entry("http://a/x/2", enc.encode("2")), 30);
    assert.deepEqual(await redisKeys(redis.port), [
      "other:keep",
      "t:http://a/bin",
      "t:http://a/v",
      "t:http://a/x/1",
      "t:http://a/x/2",
      "t:rl:client",
    ]);
    assert.equal(await store.purgePrefix("http://a/x/"), 2);
    assert.equal(await store.delete("http://a/v"), true);
    assert.equal(await store.get("http://a/v", gz), undefined);
    assert.equal(await store.clear(), 1);
    assert.deepEqual(
      await redisKeys(redis.port),
      ["other:keep", "t:rl:client"],
      "nothing but cache keys",
    );
    assert.equal(store.errors, 0);
  } finally {
    await handle.close();
    await redis.stop();
  }
});

Deno.test("RedisStore: Redis down means misses and skipped writes, fast; back up means hits", async () => {
  const redis = await startRedis();
  const handle = connectRedis({ url: redis.url, commandTimeoutMs: 250 });
  try {
    assert.ok(await handle.ping(5000));
    const store = new RedisStore({
      client: handle.client,
      prefix: "t:",
      heuristic: STRICT_HEURISTIC,
    });
    await store.set("http://a/1", entry("http://a/1", enc.encode("1")), 30);
    await redis.kill();
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) {
      assert.equal(await store.get("http://a/1", new Headers()), undefined);
      await store.set("http://a/2", entry("http://a/2", enc.encode("2")), 30);
    }
    assert.ok(performance.now() - t0 < 2000, "every call fails fast");
    assert.equal(handle.status(), "degraded");
    await redis.restart();
    const deadline = Date.now() + 15_000;
    while (handle.status() !== "ok" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(handle.status(), "ok");
    await store.set("http://a/3", entry("http://a/3", enc.encode("3")), 30);
    assert.equal(dec.decode((await store.get("http://a/3", new Headers()))!.body), "3");
  } finally {
    await handle.close();
    await redis.stop();
  }
});
