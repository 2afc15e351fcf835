/**
 * Issue 11 item 9 (malformed Cache-Control read conservatively) and issue 15 item 1
 * (safe heuristic freshness by default): what a shared cache must not share.
 */
import assert from "node:assert/strict";
import { parseCacheControl, storable } from "../src/cache/policy.ts";
import { startProxy } from "./helpers/proxy.ts";

function storableWith(cacheControl: string): boolean {
  const headers = new Headers({ "cache-control": cacheControl, "content-type": "text/plain" });
  return storable({
    method: "GET",
    requestDirectives: parseCacheControl(null),
    authorization: false,
    status: 200,
    responseDirectives: parseCacheControl(cacheControl),
    responseHeaders: headers,
  }).storable;
}

/** Cache-Control values a shared cache must not store, however they are spelled. */
const NOT_SHARED = [
  "private;max-age=60",
  "private; max-age=60",
  '"no-store"',
  '"private"',
  "No-Store",
  "PRIVATE",
  "no-store=",
  "max-age=60, no-store",
  'max-age=60, ext="no-store"',
  'max-age=60, ext="x, private"',
  "max-age=60 no-store",
  "max-age=60,, ,Private",
  "max-age=60, no-store;",
  "max-age=60, =1",
  'max-age=60, ext="unterminated',
  "max-age=60;s-maxage=120",
];

Deno.test("malformed or private/no-store Cache-Control in any spelling is not stored", () => {
  for (const cc of NOT_SHARED) assert.equal(storableWith(cc), false, cc);
});

Deno.test("clean Cache-Control values are still stored", () => {
  for (
    const cc of [
      "max-age=60",
      "public, max-age=60",
      "max-age=60 , s-maxage=120",
      'max-age="60"',
      'private="set-cookie", max-age=60',
      "max-age=60, stale-while-revalidate=30",
      'max-age=60, ext="a \\" b"',
    ]
  ) {
    assert.equal(storableWith(cc), true, cc);
  }
});

/** An origin that answers each path with the Cache-Control given in `?cc=` and counts visits. */
function countingOrigin() {
  let visits = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    visits++;
    const headers = new Headers({ "content-type": "application/json" });
    const cc = url.searchParams.get("cc");
    if (cc !== null) headers.set("cache-control", cc);
    const lm = url.searchParams.get("lm");
    if (lm !== null) {
      headers.set("last-modified", new Date(Date.now() - Number(lm) * 1000).toUTCString());
    }
    return new Response(JSON.stringify({ visits }), { headers });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    visits: () => visits,
    close: () => server.shutdown(),
  };
}

Deno.test("through the proxy: a malformed private/no-store response is never a HIT", async () => {
  const origin = countingOrigin();
  const proxy = await startProxy({
    env: { PROXY_MODE: "reverse", BACKEND_SERVERS: origin.url, CACHE_BACKEND: "memory" },
  });
  try {
    for (const cc of NOT_SHARED) {
      const path = `/x?cc=${encodeURIComponent(cc)}`;
      const bodies: string[] = [];
      for (let i = 0; i < 2; i++) {
        const res = await fetch(`${proxy.url}${path}`);
        bodies.push(await res.text());
        assert.notEqual(res.headers.get("x-cache"), "HIT", `${cc}: served from cache`);
      }
      assert.notEqual(bodies[0], bodies[1], `${cc}: the second client got the first one's page`);
    }
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

/** Body and X-Cache of two GETs of the same path in a row. */
async function twice(base: string, path: string): Promise<{ bodies: string[]; xcache: string[] }> {
  const bodies: string[] = [];
  const xcache: string[] = [];
  for (let i = 0; i < 2; i++) {
    const res = await fetch(`${base}${path}`);
    bodies.push(await res.text());
    xcache.push(res.headers.get("x-cache") ?? "none");
  }
  return { bodies, xcache };
}

Deno.test("CACHE_HEURISTIC: a page without freshness or Last-Modified is not shared by default", async () => {
  const origin = countingOrigin();
  const proxy = await startProxy({
    env: { PROXY_MODE: "reverse", BACKEND_SERVERS: origin.url, CACHE_BACKEND: "memory" },
  });
  try {
    // A visit counter: no Cache-Control, no Expires, no validator.
    const counter = await twice(proxy.url, "/visits");
    assert.notEqual(counter.bodies[0], counter.bodies[1], "the visit counter was shared");
    assert.equal(counter.xcache[1], "MISS");
    // Last-Modified 2000 s ago: fresh for 10 % of that (200 s), capped by CACHE_EXPIRATION.
    const page = await twice(proxy.url, "/page?lm=2000");
    assert.equal(page.xcache[1], "HIT");
    assert.equal(page.bodies[0], page.bodies[1]);
    // Explicit freshness is unchanged.
    assert.equal((await twice(proxy.url, "/explicit?cc=max-age%3D60")).xcache[1], "HIT");
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("CACHE_HEURISTIC=last-modified: 10 % of the Last-Modified age, capped by CACHE_EXPIRATION", async () => {
  const origin = countingOrigin();
  const proxy = await startProxy({
    env: {
      PROXY_MODE: "reverse",
      BACKEND_SERVERS: origin.url,
      CACHE_BACKEND: "memory",
      CACHE_HEURISTIC: "last-modified",
      CACHE_EXPIRATION: "3",
    },
  });
  try {
    // 10 % of 10^6 s would be a day; CACHE_EXPIRATION=3 caps it at three seconds (not one: Date
    // has whole seconds, so a one-second entry can be stale at once on a loaded machine).
    const first = await twice(proxy.url, "/capped?lm=1000000");
    assert.equal(first.xcache[1], "HIT");
    await new Promise((r) => setTimeout(r, 4100));
    const res = await fetch(`${proxy.url}/capped?lm=1000000`);
    await res.body?.cancel();
    assert.notEqual(res.headers.get("x-cache"), "HIT", "the cap did not hold");
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("CACHE_HEURISTIC=always keeps the old behaviour; off stores nothing heuristically", async () => {
  const origin = countingOrigin();
  const always = await startProxy({
    env: {
      PROXY_MODE: "reverse",
      BACKEND_SERVERS: origin.url,
      CACHE_BACKEND: "memory",
      CACHE_HEURISTIC: "always",
    },
  });
  try {
    assert.equal((await twice(always.url, "/visits")).xcache[1], "HIT");
  } finally {
    await always.stop();
  }
  const off = await startProxy({
    env: {
      PROXY_MODE: "reverse",
      BACKEND_SERVERS: origin.url,
      CACHE_BACKEND: "memory",
      CACHE_HEURISTIC: "off",
    },
  });
  try {
    assert.equal((await twice(off.url, "/page?lm=2000")).xcache[1], "MISS");
    assert.equal((await twice(off.url, "/explicit?cc=max-age%3D60")).xcache[1], "HIT");
  } finally {
    await off.stop();
    await origin.close();
  }
});

Deno.test("CACHE_HEURISTIC: a bad value stops start-up naming the setting", async () => {
  const proxy = await startProxy({ env: { CACHE_HEURISTIC: "sometimes" }, expectExit: true });
  assert.match(proxy.output(), /CACHE_HEURISTIC/);
});
