/**
 * The cache phase driven through `cache.wrap(next)` against a real local
 * origin (and a real redis-server where Redis matters).
 */
import assert from "node:assert/strict";
import {
  type Cache,
  type CacheOptions,
  createCache,
  purgeRoutes,
  STRICT_HEURISTIC,
} from "../src/cache/mod.ts";
import { call, ctx, fetchNext, type Origin, startOrigin } from "../src/cache/test_util.ts";
import { connectRedis, type RedisHandle } from "../src/redis/mod.ts";
import { startRedis, type TestRedis } from "./helpers/redis.ts";

const text = (body: string, headers: HeadersInit = {}, status = 200) =>
  new Response(body, { status, headers });

async function memoryCache(over: Partial<CacheOptions> = {}): Promise<Cache> {
  return await createCache({
    backend: "memory",
    memoryBytes: 8 << 20,
    maxObjectBytes: 1 << 20,
    heuristic: STRICT_HEURISTIC,
    prefix: "test:",
    ...over,
  });
}

/** Runs `fn` with an origin and a memory cache, cleaning both up. */
async function withCache(
  routes: Parameters<typeof startOrigin>[0],
  fn: (o: Origin, cache: Cache, h: ReturnType<Cache["wrap"]>) => Promise<void>,
  over: Partial<CacheOptions> = {},
) {
  const origin = startOrigin(routes);
  const cache = await memoryCache(over);
  try {
    await fn(origin, cache, cache.wrap(fetchNext));
  } finally {
    await cache.close();
    await origin.close();
  }
}

Deno.test("cache: miss then hit with Age; origin asked once", async () => {
  await withCache(
    { "/a": (_r, n) => text(`v${n}`, { "cache-control": "max-age=60" }) },
    async (o, cache, h) => {
      const a = await call(h, `${o.url}/a`);
      assert.equal(a.xcache, "MISS");
      assert.equal(a.body, "v1");
      const b = await call(h, `${o.url}/a`);
      assert.equal(b.xcache, "HIT");
      assert.equal(b.body, "v1");
      assert.equal(b.age, "0");
      assert.equal(b.headers.get("content-length"), "2");
      assert.equal(o.count("/a"), 1);
      const s = cache.snapshot();
      assert.equal(s.cache_hits, 1);
      assert.equal(s.cache_misses, 1);
      assert.equal(s.cache_hit_ratio, 0.5);
      assert.equal(s.bytes_served_from_cache, 2);
      assert.equal(s.l1_entries, 1);
      assert.ok(cache.metrics().some((m) => m.name === "proxy_cache_requests_total"));
      const fast = cache.serveHit(new Request(`${o.url}/a`), ctx());
      assert.equal(fast?.headers.get("x-cache"), "HIT");
      assert.equal(await fast?.text(), "v1");
      const nc = new Request(`${o.url}/a`, { headers: { "cache-control": "no-cache" } });
      assert.equal(
        cache.serveHit(nc, ctx()),
        undefined,
        "anything but a plain fresh hit: undefined",
      );
      assert.equal(cache.serveHit(new Request(`${o.url}/other`), ctx()), undefined);
    },
  );
});

Deno.test("cache: Age from upstream is carried; HEAD is served from a stored GET", async () => {
  await withCache({
    "/aged": () => text("x".repeat(100), { "cache-control": "max-age=600", age: "100" }),
  }, async (o, _cache, h) => {
    await call(h, `${o.url}/aged`);
    const head = await call(h, `${o.url}/aged`, { method: "HEAD" });
    assert.equal(head.xcache, "HIT");
    assert.equal(head.body, "");
    assert.equal(head.headers.get("content-length"), "100");
    assert.ok(Number(head.age) >= 100);
    assert.equal(o.count("/aged"), 1);
  });
});

Deno.test("cache: query strings are part of the key", async () => {
  await withCache(
    { "/q": (r) => text(new URL(r.url).search, { "cache-control": "max-age=60" }) },
    async (o, _c, h) => {
      assert.equal((await call(h, `${o.url}/q?a=1`)).body, "?a=1");
      assert.equal((await call(h, `${o.url}/q?a=2`)).body, "?a=2");
      assert.equal((await call(h, `${o.url}/q?a=1`)).xcache, "HIT");
    },
  );
});

Deno.test("cache: no-store, private and Set-Cookie responses are never served to another client", async () => {
  await withCache({
    "/nostore": (_r, n) => text(`s${n}`, { "cache-control": "no-store, max-age=60" }),
    "/private": (_r, n) => text(`user${n}`, { "cache-control": "private, max-age=60" }),
    "/cookie": (_r, n) => text(`c${n}`, { "cache-control": "max-age=60", "set-cookie": `id=${n}` }),
    "/pubcookie": (_r, n) =>
      text(`p${n}`, { "cache-control": "public, max-age=60", "set-cookie": `id=${n}` }),
  }, async (o, _cache, h) => {
    for (const p of ["/nostore", "/private", "/cookie"]) {
      const first = await call(h, `${o.url}${p}`);
      const second = await call(h, `${o.url}${p}`);
      assert.notEqual(first.body, second.body, p);
      assert.equal(second.xcache, "MISS", p);
      assert.equal(o.count(p), 2, p);
    }
    const first = await call(h, `${o.url}/pubcookie`);
    assert.equal(first.headers.get("set-cookie"), "id=1", "the first client gets its cookie");
    const second = await call(h, `${o.url}/pubcookie`);
    assert.equal(second.xcache, "HIT");
    assert.equal(second.headers.get("set-cookie"), null, "no one else's cookie from the cache");
  });
});

Deno.test("cache: Authorization responses are shared only when the origin says so", async () => {
  await withCache({
    "/auth": (_r, n) => text(`a${n}`, { "cache-control": "max-age=60" }),
    "/authpub": (_r, n) => text(`b${n}`, { "cache-control": "public, max-age=60" }),
  }, async (o, _cache, h) => {
    const auth = { headers: { authorization: "Bearer t" } };
    await call(h, `${o.url}/auth`, auth);
    assert.equal((await call(h, `${o.url}/auth`)).body, "a2");
    await call(h, `${o.url}/authpub`, auth);
    assert.equal((await call(h, `${o.url}/authpub`)).xcache, "HIT");
  });
});

Deno.test("cache: request no-cache / Pragma / max-age=0 revalidate; 304 refreshes headers", async () => {
  await withCache({
    "/v": (r, n) => {
      if (r.headers.get("if-none-match") === '"e1"') {
        return new Response(null, { status: 304, headers: { etag: '"e1"', "x-gen": `${n}` } });
      }
      return text("body", { "cache-control": "max-age=60", etag: '"e1"', "x-gen": `${n}` });
    },
  }, async (o, cache, h) => {
    await call(h, `${o.url}/v`);
    const variants: Record<string, string>[] = [
      { "cache-control": "no-cache" },
      { pragma: "no-cache" },
      { "cache-control": "max-age=0" },
    ];
    for (const headers of variants) {
      const r = await call(h, `${o.url}/v`, { headers });
      assert.equal(r.xcache, "REVALIDATED", JSON.stringify(headers));
      assert.equal(r.body, "body");
      assert.equal(o.last("/v")!.get("if-none-match"), '"e1"');
    }
    const after = await call(h, `${o.url}/v`);
    assert.equal(after.xcache, "HIT");
    assert.equal(after.headers.get("x-gen"), "4", "the 304's headers were stored");
    assert.equal(cache.snapshot().revalidations, 3);
  });
});

Deno.test("cache: response no-cache and max-age=0 with validators always revalidate; Last-Modified too", async () => {
  const lm = new Date(Date.now() - 3600_000).toUTCString();
  await withCache({
    "/nc": (r) =>
      r.headers.get("if-none-match") === '"x"'
        ? new Response(null, { status: 304, headers: { etag: '"x"' } })
        : text("nc", { "cache-control": "no-cache", etag: '"x"' }),
    "/lm": (r) =>
      r.headers.get("if-modified-since") === lm
        ? new Response(null, { status: 304 })
        : text("lm", { "cache-control": "max-age=0", "last-modified": lm }),
  }, async (o, _cache, h) => {
    for (const p of ["/nc", "/lm"]) {
      assert.equal((await call(h, `${o.url}${p}`)).xcache, "MISS");
      const r = await call(h, `${o.url}${p}`);
      assert.equal(r.xcache, "REVALIDATED", p);
      assert.equal(o.count(p), 2);
    }
  });
});

Deno.test("cache: max-stale, min-fresh, only-if-cached", async () => {
  await withCache({
    "/s": (_r, n) => text(`s${n}`, { "cache-control": "max-age=2", etag: `"s${n}"` }),
    "/f": (_r, n) => text(`f${n}`, { "cache-control": "max-age=60" }),
  }, async (o, _cache, h) => {
    const miss = await call(h, `${o.url}/s`, { headers: { "cache-control": "only-if-cached" } });
    assert.equal(miss.status, 504);
    assert.equal(o.count("/s"), 0);
    await call(h, `${o.url}/s`);
    assert.equal(
      (await call(h, `${o.url}/s`, { headers: { "cache-control": "only-if-cached" } })).xcache,
      "HIT",
    );
    // Date has one-second granularity: max-age=2 is fresh for at least a second, stale after 2.1 s.
    await new Promise((r) => setTimeout(r, 2100));
    const stale = await call(h, `${o.url}/s`, { headers: { "cache-control": "max-stale=60" } });
    assert.equal(stale.xcache, "STALE");
    assert.equal(stale.body, "s1");
    const refetched = await call(h, `${o.url}/s`);
    assert.equal(refetched.body, "s2", "stale without max-stale goes to the origin");
    await call(h, `${o.url}/f`);
    const mf = await call(h, `${o.url}/f`, { headers: { "cache-control": "min-fresh=120" } });
    assert.equal(mf.body, "f2", "not fresh enough for min-fresh");
  });
});

Deno.test("cache: s-maxage beats max-age; Expires works; invalid Expires is stale", async () => {
  await withCache({
    "/sm": (_r, n) => text(`${n}`, { "cache-control": "max-age=0, s-maxage=60" }),
    "/ex": (_r, n) => text(`${n}`, { expires: new Date(Date.now() + 60_000).toUTCString() }),
    "/ex0": (_r, n) => text(`${n}`, { expires: "0" }),
  }, async (o, _cache, h) => {
    for (const [p, hit] of [["/sm", true], ["/ex", true], ["/ex0", false]] as const) {
      await call(h, `${o.url}${p}`);
      assert.equal((await call(h, `${o.url}${p}`)).xcache, hit ? "HIT" : "MISS", p);
    }
  });
});

Deno.test("cache: defaultTtl gives freshness only where none is explicit", async () => {
  const routes = {
    "/plain": (_r: Request, n: number) => text(`${n}`),
    "/zero": (_r: Request, n: number) => text(`${n}`, { "cache-control": "max-age=0" }),
    "/302": (_r: Request, n: number) => text(`${n}`, { location: "/x" }, 302),
  };
  await withCache(routes, async (o, _cache, h) => {
    await call(h, `${o.url}/plain`);
    assert.equal((await call(h, `${o.url}/plain`)).xcache, "HIT");
    await call(h, `${o.url}/zero`);
    assert.equal((await call(h, `${o.url}/zero`)).body, "2", "explicit max-age=0 wins");
    await call(h, `${o.url}/302`);
    assert.equal((await call(h, `${o.url}/302`)).body, "2", "302 is not cacheable by default");
  }, { heuristic: { mode: "always", maxSec: 300 } });
  await withCache(routes, async (o, _cache, h) => {
    await call(h, `${o.url}/plain`);
    assert.equal((await call(h, `${o.url}/plain`)).body, "2", "strict RFC: nothing to go on");
  }, { heuristic: STRICT_HEURISTIC });
});

Deno.test("cache: Vary keeps variants apart; Accept-Encoding normalised; Vary: * never hits", async () => {
  await withCache({
    "/v": (r, n) =>
      text(`${r.headers.get("x-lang") ?? "none"}${n}`, {
        "cache-control": "max-age=60",
        vary: "X-Lang",
      }),
    "/star": (_r, n) => text(`${n}`, { "cache-control": "max-age=60", vary: "*" }),
  }, async (o, _cache, h) => {
    assert.equal((await call(h, `${o.url}/v`, { headers: { "x-lang": "en" } })).body, "en1");
    assert.equal((await call(h, `${o.url}/v`, { headers: { "x-lang": "de" } })).body, "de2");
    const en = await call(h, `${o.url}/v`, { headers: { "x-lang": "en" } });
    assert.equal(en.xcache, "HIT");
    assert.equal(en.body, "en1");
    assert.equal((await call(h, `${o.url}/v`)).body, "none3");
    assert.equal((await call(h, `${o.url}/v`, { headers: { "x-lang": "de" } })).body, "de2");
    await call(h, `${o.url}/star`);
    assert.equal((await call(h, `${o.url}/star`)).xcache, "MISS");
  });
  // Compression sits inside the cache: one variant per acceptable-coding set.
  await withCache({
    "/ae": (r, n) =>
      text(`${r.headers.get("x-ae")}${n}`, {
        "cache-control": "max-age=60",
        vary: "accept-encoding",
      }),
  }, async (o, cache, _h) => {
    // fetchNext forces identity upstream, so pass the client's value on in another header.
    const h = cache.wrap((req, c) => {
      const headers = new Headers(req.headers);
      headers.set("x-ae", req.headers.get("accept-encoding") ?? "-");
      return fetchNext(new Request(req.url, { headers }), c);
    });
    const gz = await call(h, `${o.url}/ae`, {
      headers: { "accept-encoding": "gzip, deflate, br" },
    });
    const same = await call(h, `${o.url}/ae`, {
      headers: { "accept-encoding": "br,gzip;q=0.8, deflate" },
    });
    assert.equal(same.xcache, "HIT");
    assert.equal(same.body, gz.body);
    const id = await call(h, `${o.url}/ae`, { headers: { "accept-encoding": "identity" } });
    assert.equal(id.xcache, "MISS");
    assert.equal(cache.snapshot().l1_entries, 2);
  });
});

Deno.test("cache: client conditionals are answered 304 from a fresh entry", async () => {
  await withCache({
    "/c": () =>
      text("c", {
        "cache-control": "max-age=60",
        etag: '"c1"',
        "last-modified": new Date(0).toUTCString(),
      }),
  }, async (o, _cache, h) => {
    const first = await call(h, `${o.url}/c`, { headers: { "if-none-match": '"c1"' } });
    assert.equal(first.status, 304, "even on a miss the full response is fetched and stored");
    const r = await call(h, `${o.url}/c`, { headers: { "if-none-match": 'W/"c1"' } });
    assert.equal(r.status, 304);
    assert.equal(r.xcache, "HIT");
    assert.equal(r.headers.get("etag"), '"c1"');
    const ims = await call(h, `${o.url}/c`, {
      headers: { "if-modified-since": new Date().toUTCString() },
    });
    assert.equal(ims.status, 304);
    const full = await call(h, `${o.url}/c`, { headers: { "if-none-match": '"other"' } });
    assert.equal(full.status, 200);
    assert.equal(full.body, "c");
    assert.equal(o.count("/c"), 1);
  });
});

Deno.test("cache: stale-while-revalidate serves stale and refreshes once in the background", async () => {
  await withCache({
    "/swr": (_r, n) => text(`v${n}`, { "cache-control": "max-age=0, stale-while-revalidate=60" }),
  }, async (o, cache, h) => {
    await call(h, `${o.url}/swr`);
    const results = await Promise.all(Array.from({ length: 10 }, () => call(h, `${o.url}/swr`)));
    for (const r of results) {
      assert.equal(r.xcache, "STALE");
      assert.equal(r.body, "v1");
    }
    await cache.settle();
    assert.equal(o.count("/swr"), 2, "one background refresh for ten stale hits");
    const next = await call(h, `${o.url}/swr`);
    assert.equal(next.body, "v2", "the refresh was stored");
  });
});

Deno.test("cache: stale-if-error serves stale on 5xx and on an unreachable origin, not past must-revalidate", async () => {
  let failing = false;
  await withCache({
    "/sie": (_r, n) =>
      failing
        ? text("down", {}, 503)
        : text(`ok${n}`, { "cache-control": "max-age=0, stale-if-error=60" }),
    "/mr": (_r, n) =>
      failing
        ? text("down", {}, 503)
        : text(`ok${n}`, { "cache-control": "max-age=0, must-revalidate, stale-if-error=60" }),
  }, async (o, cache, h) => {
    await call(h, `${o.url}/sie`);
    await call(h, `${o.url}/mr`);
    failing = true;
    const r = await call(h, `${o.url}/sie`);
    assert.equal(r.xcache, "STALE");
    assert.equal(r.body, "ok1");
    const mr = await call(h, `${o.url}/mr`);
    assert.equal(mr.status, 503, "must-revalidate forbids serving stale");
    await o.close();
    const gone = await call(h, `${o.url}/sie`);
    assert.equal(gone.xcache, "STALE");
    assert.equal(gone.body, "ok1");
    await assert.rejects(call(h, `${o.url}/mr`), /unreachable/);
    assert.ok(cache.snapshot().stale_served >= 2);
  });
});

Deno.test("cache: 100 concurrent misses reach the origin once", async () => {
  // The origin answers once the other 99 are waiting on the first: no guess at how long
  // 100 requests take to arrive on a loaded machine.
  const release = Promise.withResolvers<void>();
  await withCache({
    "/slow": async () => {
      await release.promise;
      return text("x".repeat(5000), { "cache-control": "max-age=60" });
    },
  }, async (o, cache, h) => {
    const pending = Promise.all(Array.from({ length: 100 }, () => call(h, `${o.url}/slow`)));
    const deadline = Date.now() + 20_000;
    while (cache.snapshot().coalesced_waiters < 99 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    release.resolve();
    const results = await pending;
    assert.equal(o.count("/slow"), 1);
    for (const r of results) assert.equal(r.body.length, 5000);
    assert.equal(results.filter((r) => r.xcache === "MISS").length, 1);
    assert.equal(cache.snapshot().coalesced_waiters, 99);
  });
});

Deno.test("cache: concurrent misses on an uncacheable URL are not serialised", async () => {
  // The origin holds every answer until all 20 are in at once (or 10 s passed): serialised
  // misses would show as fewer than 20 at the origin together, whatever the machine's speed.
  let arrived = 0;
  let together = 0;
  const allIn = Promise.withResolvers<void>();
  await withCache({
    "/priv": async (_r, n) => {
      if (++arrived === 20) allIn.resolve();
      const timer = setTimeout(allIn.resolve, 10_000);
      await allIn.promise;
      clearTimeout(timer);
      together = Math.max(together, arrived);
      return text(`${n}`, { "cache-control": "private" });
    },
  }, async (o, _cache, h) => {
    const results = await Promise.all(Array.from({ length: 20 }, () => call(h, `${o.url}/priv`)));
    assert.equal(new Set(results.map((r) => r.body)).size, 20, "each got its own response");
    assert.equal(together, 20, "waiters went to the origin in parallel");
  });
});

Deno.test("cache: a successful unsafe method invalidates the URI and same-origin Location", async () => {
  await withCache({
    "/item": (r, n) =>
      r.method === "GET"
        ? text(`g${n}`, { "cache-control": "max-age=60" })
        : text("ok", { location: "/other" }),
    "/other": (_r, n) => text(`o${n}`, { "cache-control": "max-age=60" }),
    "/fail": (r, n) =>
      r.method === "GET" ? text(`f${n}`, { "cache-control": "max-age=60" }) : text("no", {}, 500),
  }, async (o, _cache, h) => {
    await call(h, `${o.url}/item`);
    await call(h, `${o.url}/other`);
    await call(h, `${o.url}/fail`);
    const post = await call(h, `${o.url}/item`, { method: "POST", body: "x" });
    assert.equal(post.xcache, "BYPASS");
    const again = await call(h, `${o.url}/item`);
    assert.equal(again.xcache, "MISS");
    assert.equal((await call(h, `${o.url}/other`)).xcache, "MISS", "Location invalidated");
    await call(h, `${o.url}/fail`, { method: "DELETE" });
    assert.equal(
      (await call(h, `${o.url}/fail`)).xcache,
      "HIT",
      "failed DELETE invalidates nothing",
    );
  });
});

Deno.test("cache: PURGE and the admin endpoint purge by URL, prefix and all", async () => {
  await withCache({
    "/p/1": () => text("1", { "cache-control": "max-age=60" }),
    "/p/2": () => text("2", { "cache-control": "max-age=60" }),
    "/q": () => text("q", { "cache-control": "max-age=60" }),
  }, async (o, cache, h) => {
    const admin = purgeRoutes(cache);
    const warm = async () => {
      for (const p of ["/p/1", "/p/2", "/q"]) await call(h, `${o.url}${p}`);
    };
    const cached = async (p: string) => (await call(h, `${o.url}${p}`)).xcache === "HIT";
    await warm();
    let res = await admin.fetch(new Request(`${o.url}/p/1`, { method: "PURGE" }));
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { purged: 1 });
    res = await admin.fetch(new Request(`${o.url}/p/1`, { method: "PURGE" }));
    assert.equal(res.status, 404);
    await res.body?.cancel();
    assert.equal(await cached("/p/2"), true);
    const post = (body: unknown) =>
      admin.fetch(
        new Request("http://proxy/proxy-cache/purge", {
          method: "POST",
          body: JSON.stringify(body),
        }),
      );
    await warm();
    res = await post({ prefix: `${o.url}/p/` });
    assert.deepEqual(await res.json(), { purged: 2 });
    assert.equal(await cached("/q"), true);
    assert.equal(await cached("/p/1"), false);
    await warm();
    res = await post({ all: true });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.equal(await cached("/q"), false);
    res = await post({ url: `${o.url}/q` });
    assert.deepEqual(await res.json(), { purged: 1 });
    res = await post({ nope: 1 });
    assert.equal(res.status, 400);
    await res.body?.cancel();
  });
});

Deno.test("cache: an oversized object streams without buffering and is not stored", async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => release = r);
  await withCache({
    "/big": (_r, n) => {
      const chunk = new Uint8Array(64 * 1024).fill(n);
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (sent === 1 && n === 1) await released; // hold the rest until the client saw bytes
          if (sent++ === 32) return c.close();
          c.enqueue(chunk);
        },
      });
      return new Response(body, { headers: { "cache-control": "max-age=60" } });
    },
  }, async (o, cache, h) => {
    const res = await h(new Request(`${o.url}/big`), ctx());
    const reader = res.body!.getReader();
    const first = await reader.read();
    assert.ok(first.value && first.value.byteLength > 0, "bytes arrive before the origin finished");
    release();
    let total = first.value.byteLength;
    for (let r = await reader.read(); !r.done; r = await reader.read()) total += r.value.byteLength;
    assert.equal(total, 32 * 64 * 1024);
    await cache.settle();
    assert.equal((await call(h, `${o.url}/big`)).xcache, "MISS");
    assert.equal(o.count("/big"), 2);
    assert.equal(cache.snapshot().l1_entries, 0);
  }, { maxObjectBytes: 256 * 1024 });
});

Deno.test("cache: a client that goes away mid-body still leaves a stored object", async () => {
  await withCache({
    "/half": () => text("y".repeat(200_000), { "cache-control": "max-age=60" }),
  }, async (o, cache, h) => {
    const res = await h(new Request(`${o.url}/half`), ctx());
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
    await cache.settle();
    const r = await call(h, `${o.url}/half`);
    assert.equal(r.xcache, "HIT");
    assert.equal(r.body.length, 200_000);
  });
});

Deno.test("cache: backend off passes everything through", async () => {
  await withCache(
    { "/a": (_r, n) => text(`${n}`, { "cache-control": "max-age=60" }) },
    async (o, cache, h) => {
      assert.equal(cache.backendName, "off");
      await call(h, `${o.url}/a`);
      assert.equal((await call(h, `${o.url}/a`)).body, "2");
      assert.equal(cache.status(), "off");
    },
    { backend: "off" },
  );
});

// ---- Redis ----

async function withRedis(fn: (redis: TestRedis, handle: RedisHandle) => Promise<void>) {
  const redis = await startRedis();
  const handle = connectRedis({ url: redis.url, commandTimeoutMs: 250, name: "cache-test" });
  try {
    await fn(redis, handle);
  } finally {
    await handle.close();
    await redis.stop();
  }
}

async function scanKeys(port: number): Promise<string[]> {
  const out = await new Deno.Command("redis-cli", { args: ["-p", String(port), "--scan"] })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((s) => s.length > 0).sort();
}

Deno.test("cache+redis: a second instance on the same Redis hits; keys stay under the prefix", async () => {
  await withRedis(async (redis, handle) => {
    const origin = startOrigin({
      "/shared": (_r, n) =>
        text(`s${n}`, { "cache-control": "max-age=60", vary: "accept-encoding" }),
    });
    const opts = { backend: "auto" as const, redis: handle, prefix: "px:" };
    const a = await memoryCache(opts);
    const b = await memoryCache(opts);
    try {
      assert.equal(a.backendName, "redis");
      assert.equal(a.status(), "ok");
      await handle.client.set("unrelated", "1");
      // Both instances listen for invalidations before the traffic starts.
      const t0 = Date.now();
      while (Date.now() - t0 < 5000) {
        const [, subs] = await handle.client.pubsub("NUMSUB", "px:invalidate") as [string, number];
        if (subs === 2) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal((await call(a.wrap(fetchNext), `${origin.url}/shared`)).xcache, "MISS");
      await a.settle();
      const fromB = await call(b.wrap(fetchNext), `${origin.url}/shared`);
      assert.equal(fromB.xcache, "HIT");
      assert.equal(fromB.body, "s1");
      assert.equal(
        (await call(b.wrap(fetchNext), `${origin.url}/shared`)).xcache,
        "HIT",
        "promoted to L1",
      );
      assert.equal(origin.count("/shared"), 1);
      assert.deepEqual(await scanKeys(redis.port), [`px:${origin.url}/shared`, "unrelated"]);
      // A purge through one instance reaches the other's memory too.
      assert.equal(await a.purge({ all: true }), 1);
      const deadline = Date.now() + 5000;
      while (b.snapshot().l1_entries > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal((await call(b.wrap(fetchNext), `${origin.url}/shared`)).xcache, "MISS");
      await b.settle(); // that MISS stores again in the background: count keys once it landed
      assert.deepEqual(await scanKeys(redis.port), [`px:${origin.url}/shared`, "unrelated"]);
    } finally {
      await a.close();
      await b.close();
      await origin.close();
    }
  });
});

Deno.test("cache+redis: Redis killed mid-traffic fails no request; restarted, caching resumes", async () => {
  await withRedis(async (redis, handle) => {
    let i = 0;
    const origin = startOrigin({
      "/t": (r) => text(new URL(r.url).search, { "cache-control": "max-age=60" }),
    });
    const cache = await memoryCache({ backend: "redis", redis: handle, prefix: "px:" });
    const h = cache.wrap(fetchNext);
    let failures = 0;
    let done = false;
    const traffic = async () => {
      while (!done) {
        // L1 hits resolve in microtasks only: yield so timers and sockets get their turn.
        await new Promise((r) => setTimeout(r, 1));
        // Every other request is a new URL, so lookups and stores keep hitting Redis.
        const n = i % 2 === 0 ? i : i % 50;
        i++;
        try {
          const r = await call(h, `${origin.url}/t?n=${n}`);
          if (r.status !== 200 || r.body !== `?n=${n}`) failures++;
        } catch {
          failures++;
        }
      }
    };
    try {
      const workers = Array.from({ length: 8 }, traffic);
      const until = async (what: string, ok: () => boolean) => {
        const deadline = Date.now() + 15_000;
        while (!ok()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      await until("traffic through Redis", () => i > 20);
      await redis.kill();
      await until("the cache to notice Redis is gone", () => cache.status() === "degraded");
      const beforeRestart = i;
      await until("traffic while Redis is down", () => i > beforeRestart + 20);
      assert.equal(cache.snapshot().status, "degraded");
      await redis.restart();
      const deadline = Date.now() + 15_000;
      while (cache.status() !== "ok" && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      done = true;
      await Promise.all(workers);
      assert.equal(failures, 0);
      assert.equal(cache.status(), "ok");
      assert.ok(i > 100, `traffic kept flowing (${i} requests)`);
      // The restarted Redis is empty; a new object lands there again.
      await call(h, `${origin.url}/t?after=1`);
      await cache.settle();
      const keys = await scanKeys(redis.port);
      assert.ok(keys.includes(`px:${origin.url}/t?after=1`));
      assert.ok(keys.every((k) => k.startsWith("px:")));
    } finally {
      done = true;
      await cache.close();
      await origin.close();
    }
  });
});

Deno.test("cache+redis: auto falls back to memory when Redis does not answer", async () => {
  const handle = connectRedis({ port: 1, commandTimeoutMs: 100 });
  const cache = await memoryCache({ backend: "auto", redis: handle });
  try {
    assert.equal(cache.backendName, "memory");
    assert.equal(cache.status(), "ok");
  } finally {
    await cache.close();
    await handle.close();
  }
});

Deno.test("cache+redis: a hung Redis delays a request by the command timeout at most", async () => {
  await withRedis(async (_redis, handle) => {
    const origin = startOrigin({
      "/h": (r) => text(new URL(r.url).search, { "cache-control": "max-age=60" }),
    });
    const a = await memoryCache({ backend: "redis", redis: handle, prefix: "px:" });
    const b = await memoryCache({ backend: "redis", redis: handle, prefix: "px:" });
    assert.ok(await handle.ping(5000));
    const info = await handle.client.info("server");
    const pid = Number(/process_id:(\d+)/.exec(info)![1]);
    const signal = (sig: string) =>
      new Deno.Command("kill", { args: [`-${sig}`, String(pid)] }).output();
    try {
      await call(a.wrap(fetchNext), `${origin.url}/h?x=1`);
      await a.settle();
      await signal("STOP"); // Redis hangs: connected, but never answers
      const t0 = performance.now();
      const r = await call(b.wrap(fetchNext), `${origin.url}/h?x=1`);
      const elapsed = performance.now() - t0;
      assert.equal(r.status, 200);
      assert.equal(r.body, "?x=1");
      assert.equal(r.xcache, "MISS", "L2 lookup timed out: treated as a miss");
      assert.ok(elapsed < 2000, `took ${elapsed.toFixed(0)} ms`);
      assert.ok(b.snapshot().redis_errors >= 1);
      await signal("CONT");
      await b.settle();
      const c = await memoryCache({ backend: "redis", redis: handle, prefix: "px:" });
      try {
        const again = await call(c.wrap(fetchNext), `${origin.url}/h?x=1`);
        assert.equal(again.xcache, "HIT", "Redis answers again");
      } finally {
        await c.close();
      }
    } finally {
      await signal("CONT");
      await a.close();
      await b.close();
      await origin.close();
    }
  });
});

Deno.test("cache: an origin that breaks off a body fails that request with 502 and stores nothing", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const served = (async () => {
    for await (const conn of listener) {
      const buf = new Uint8Array(4096);
      await conn.read(buf);
      await conn.write(new TextEncoder().encode(
        "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nCache-Control: max-age=60\r\n\r\nshort",
      ));
      conn.close();
    }
  })();
  const cache = await memoryCache();
  try {
    const h = cache.wrap(fetchNext);
    const url = `http://127.0.0.1:${port}/broken`;
    const results = await Promise.allSettled([call(h, url), call(h, url)]);
    for (const r of results) {
      assert.equal(r.status, "rejected");
      assert.equal((r as PromiseRejectedResult).reason.status, 502);
    }
    assert.equal(cache.snapshot().l1_entries, 0);
  } finally {
    await cache.close();
    listener.close();
    await served.catch(() => {});
  }
});

Deno.test("cache+redis: a stale L1 copy is replaced by a copy another instance refreshed", async () => {
  await withRedis(async (_redis, handle) => {
    const origin = startOrigin({
      "/r": (r) =>
        r.headers.get("if-none-match") === '"r1"'
          ? new Response(null, {
            status: 304,
            headers: { etag: '"r1"', "cache-control": "max-age=2" },
          })
          : text("r", { etag: '"r1"', "cache-control": "max-age=2" }),
    });
    assert.ok(await handle.ping(5000));
    const a = await memoryCache({ backend: "redis", redis: handle, prefix: "px:" });
    const b = await memoryCache({ backend: "redis", redis: handle, prefix: "px:" });
    try {
      const url = `${origin.url}/r`;
      assert.equal((await call(a.wrap(fetchNext), url)).xcache, "MISS");
      await a.settle();
      assert.equal((await call(b.wrap(fetchNext), url)).xcache, "HIT");
      // Date has one-second granularity: max-age=2 is fresh for at least a second, stale after 2.1 s.
      await new Promise((r) => setTimeout(r, 2100));
      assert.equal((await call(a.wrap(fetchNext), url)).xcache, "REVALIDATED");
      await a.settle();
      const fromB = await call(b.wrap(fetchNext), url);
      assert.equal(fromB.xcache, "HIT", "b took a's refreshed copy from Redis");
      assert.equal(fromB.body, "r");
      assert.equal(origin.count("/r"), 2, "one fetch and one revalidation in all");
    } finally {
      await a.close();
      await b.close();
      await origin.close();
    }
  });
});

Deno.test("cache: waiters stop waiting for a leader whose client reads slowly", async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => release = r);
  await withCache({
    "/slowbody": (_r, n) => {
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (n === 1 && sent === 1) await released;
          if (sent++ === 4) return c.close();
          c.enqueue(new Uint8Array(32 * 1024).fill(n));
        },
      });
      return new Response(body, { headers: { "cache-control": "max-age=60" } });
    },
  }, async (o, cache, h) => {
    const leader = await h(new Request(`${o.url}/slowbody`), ctx());
    const reader = leader.body!.getReader();
    await reader.read(); // the leader's client reads one chunk, then stalls
    const t0 = performance.now();
    const waiter = await call(h, `${o.url}/slowbody`);
    assert.ok(performance.now() - t0 < 3000, "gave up waiting after the lock timeout");
    assert.equal(waiter.body.length, 4 * 32 * 1024);
    assert.equal(o.count("/slowbody"), 2);
    release();
    while (!(await reader.read()).done) { /* drain */ }
    await cache.settle();
  }, { lockTimeoutMs: 300 });
});

Deno.test("cache: a HEAD response freshens the stored GET, or drops it when validators differ", async () => {
  let version = "a";
  await withCache({
    "/hd": (r, n) => {
      const cc = r.method === "HEAD" ? "max-age=60" : "max-age=0";
      // Deno.serve sends the headers (with Content-Length) and no body for HEAD.
      return text(`body-${version}`, {
        etag: `"${version}"`,
        "cache-control": cc,
        "x-gen": `${n}`,
      });
    },
  }, async (o, _cache, h) => {
    const url = `${o.url}/hd`;
    assert.equal((await call(h, url)).xcache, "MISS");
    const head = await call(h, url, { method: "HEAD" });
    assert.equal(head.xcache, "MISS", "stale entry: HEAD went to the origin");
    const hit = await call(h, url);
    assert.equal(hit.xcache, "HIT", "the HEAD's max-age=60 freshened the stored GET");
    assert.equal(hit.body, "body-a");
    assert.equal(hit.headers.get("x-gen"), "2");
    version = "b";
    await call(h, url, { method: "HEAD", headers: { "cache-control": "no-cache" } });
    const after = await call(h, url);
    assert.equal(after.xcache, "MISS", "different validators: the stored body was dropped");
    assert.equal(after.body, "body-b");
  });
});

Deno.test("cache: a method of unknown safety (M-SEARCH) invalidates like POST (RFC 9111 §4.4)", async () => {
  await withCache({
    "/dev": (r, n) =>
      r.method === "GET" ? text(`g${n}`, { "cache-control": "max-age=60" }) : text("found"),
  }, async (o, _cache, h) => {
    await call(h, `${o.url}/dev`);
    assert.equal((await call(h, `${o.url}/dev`)).xcache, "HIT");
    const search = await call(h, `${o.url}/dev`, { method: "M-SEARCH", body: "x" });
    assert.equal(search.xcache, "BYPASS");
    const again = await call(h, `${o.url}/dev`);
    assert.equal(again.xcache, "MISS", "the stored GET response was dropped");
    assert.equal(again.body, "g3");
    await call(h, `${o.url}/dev`, { method: "OPTIONS" });
    assert.equal(
      (await call(h, `${o.url}/dev`)).xcache,
      "HIT",
      "a safe method invalidates nothing",
    );
  });
});

Deno.test("cache: a 304 replaces the stored Content-Type but keeps Content-MD5 (RFC 9111 §3.2)", async () => {
  await withCache({
    "/t": (r) =>
      r.headers.get("if-none-match") === '"t1"'
        ? new Response(null, {
          status: 304,
          headers: {
            etag: '"t1"',
            "content-type": "text/plain;charset=utf-8",
            "content-md5": "N7UdGUp1E+RbVvZSTy1R8g==",
          },
        })
        : text("body", {
          "cache-control": "max-age=0",
          etag: '"t1"',
          "content-type": "text/plain",
          "content-md5": "rL0Y20zC+Fzt72VPzMSk2A==",
        }),
  }, async (o, _cache, h) => {
    await call(h, `${o.url}/t`);
    const r = await call(h, `${o.url}/t`);
    assert.equal(r.xcache, "REVALIDATED");
    assert.equal(r.body, "body");
    assert.equal(r.headers.get("content-type"), "text/plain;charset=utf-8");
    assert.equal(
      r.headers.get("content-md5"),
      "rL0Y20zC+Fzt72VPzMSk2A==",
      "digest of the stored body",
    );
  });
});

Deno.test("cache: If-Modified-Since against a stored response without Last-Modified compares its Date (RFC 9111 §4.3.2)", async () => {
  const date = new Date(Date.now() - 10_000).toUTCString();
  await withCache({
    "/d": () => text("d", { "cache-control": "max-age=60", date }),
  }, async (o, _cache, h) => {
    await call(h, `${o.url}/d`);
    const later = await call(h, `${o.url}/d`, {
      headers: { "if-modified-since": new Date().toUTCString() },
    });
    assert.equal(later.status, 304, "stored before the client's copy: not modified");
    assert.equal(later.xcache, "HIT");
    const earlier = await call(h, `${o.url}/d`, {
      headers: { "if-modified-since": new Date(Date.now() - 3600_000).toUTCString() },
    });
    assert.equal(earlier.status, 200, "the client's copy is older than the stored one");
    assert.equal(earlier.body, "d");
    assert.equal(o.count("/d"), 1);
  });
});
