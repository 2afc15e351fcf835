import assert from "node:assert/strict";
import { memoryCost, MemoryStore } from "./memory.ts";
import { type CacheEntry, pack, prepare, stored, unpack } from "./entry.ts";
import { normalizeAcceptEncoding, parseVary, secondaryKey } from "./vary.ts";
import { capture } from "./capture.ts";
import { storageTtl } from "./cache.ts";
import { STRICT_HEURISTIC } from "./policy.ts";

const enc = new TextEncoder();

function entry(url: string, body: string | number, vary: string[] = [], varyKey = ""): CacheEntry {
  const bytes = typeof body === "number" ? new Uint8Array(body) : enc.encode(body);
  const now = Date.now();
  return prepare({
    url,
    status: 200,
    headers: [["cache-control", "max-age=60"], ["content-type", "text/plain"]],
    body: bytes,
    requestTime: now,
    responseTime: now,
    varyNames: vary,
    varyKey,
    initialAge: 0,
  }, STRICT_HEURISTIC);
}

const none = new Headers();

Deno.test("MemoryStore: stores, finds, replaces and counts bytes", () => {
  const s = new MemoryStore({ maxBytes: 1 << 20 });
  assert.equal(s.lookup("http://a/x", none), undefined);
  const e = entry("http://a/x", "hello");
  s.put("http://a/x", e, 60);
  assert.equal(s.lookup("http://a/x", none), e);
  assert.equal(s.entries, 1);
  assert.equal(s.bytes, memoryCost("http://a/x", e));
  const e2 = entry("http://a/x", "hello again");
  s.put("http://a/x", e2, 60);
  assert.equal(s.lookup("http://a/x", none), e2);
  assert.equal(s.entries, 1);
  assert.equal(s.bytes, memoryCost("http://a/x", e2));
  assert.ok(s.remove("http://a/x"));
  assert.equal(s.bytes, 0);
  assert.equal(s.entries, 0);
});

Deno.test("MemoryStore: evicts least recently used past the byte budget", () => {
  const one = memoryCost("http://a/1", entry("http://a/1", 1000));
  const s = new MemoryStore({ maxBytes: one * 3 + 10 });
  for (const k of ["1", "2", "3"]) s.put(`http://a/${k}`, entry(`http://a/${k}`, 1000), 60);
  // Touch 1 repeatedly so it is recent; then 4 pushes out the least recently used (2).
  for (let i = 0; i < 5; i++) assert.ok(s.lookup("http://a/1", none));
  s.put("http://a/4", entry("http://a/4", 1000), 60);
  assert.equal(s.evictions, 1);
  assert.ok(s.lookup("http://a/1", none), "recently used survives");
  assert.equal(s.lookup("http://a/2", none), undefined, "least recently used is evicted");
  assert.ok(s.lookup("http://a/4", none));
  assert.ok(s.bytes <= one * 3 + 10);
});

Deno.test("memoryCost counts the key, headers and objects, not just the body", () => {
  const url = `http://a/${"p".repeat(3000)}`;
  const e = entry(url, 28);
  const cost = memoryCost(url, e);
  // The old count (body + headers + URL + 256) was about 3.4 KB; RSS grew 12-19 KB per entry.
  assert.ok(cost >= 3 * (url.length + 28), `${cost}`);
  assert.ok(cost > e.size * 3, `${cost} vs ${e.size}`);
  // Large bodies live off the V8 heap: they cost about their size.
  const big = entry("http://a/big", 1 << 20);
  assert.ok(memoryCost("http://a/big", big) < (1 << 20) + 16_384);
});

Deno.test("MemoryStore: objects bigger than the budget are not kept", () => {
  const s = new MemoryStore({ maxBytes: 500 });
  s.put("http://a/big", entry("http://a/big", 1000), 60);
  assert.equal(s.lookup("http://a/big", none), undefined);
  assert.equal(s.bytes, 0);
});

Deno.test("MemoryStore: entries expire after their TTL", () => {
  const s = new MemoryStore({ maxBytes: 1 << 20 });
  const t = Date.now();
  s.put("http://a/x", entry("http://a/x", "x"), 2, t);
  assert.ok(s.lookup("http://a/x", none, t + 1000));
  assert.equal(s.lookup("http://a/x", none, t + 2001), undefined);
  assert.equal(s.entries, 0);
});

Deno.test("MemoryStore: Vary variants live side by side; new Vary names replace them", () => {
  const s = new MemoryStore({ maxBytes: 1 << 20 });
  const gz = new Headers({ "accept-encoding": "gzip, br" });
  const id = new Headers();
  const names = ["accept-encoding"];
  s.put("http://a/v", entry("http://a/v", "gz", names, secondaryKey(names, gz)!), 60);
  s.put("http://a/v", entry("http://a/v", "id", names, secondaryKey(names, id)!), 60);
  assert.equal(s.entries, 2);
  const reordered = new Headers({ "accept-encoding": "br;q=1.0,gzip" });
  assert.equal(new TextDecoder().decode(s.lookup("http://a/v", reordered)!.body), "gz");
  assert.equal(new TextDecoder().decode(s.lookup("http://a/v", id)!.body), "id");
  assert.equal(s.lookup("http://a/v", new Headers({ "accept-encoding": "zstd" })), undefined);
  const lang = ["accept-language"];
  s.put("http://a/v", entry("http://a/v", "en", lang, secondaryKey(lang, id)!), 60);
  assert.equal(s.entries, 1, "variants with other Vary names are dropped");
  assert.equal(s.lookup("http://a/v", gz)!.varyNames[0], "accept-language");
});

Deno.test("MemoryStore: purge by prefix and clear", () => {
  const s = new MemoryStore({ maxBytes: 1 << 20 });
  for (const p of ["http://a/x/1", "http://a/x/2", "http://a/y", "http://b/x"]) {
    s.put(p, entry(p, "x"), 60);
  }
  assert.equal(s.removePrefix("http://a/x/"), 2);
  assert.equal(s.entries, 2);
  assert.equal(s.removeAll(), 2);
  assert.equal(s.bytes, 0);
});

Deno.test("vary: names parsed and Accept-Encoding normalised semantically", () => {
  assert.deepEqual(parseVary("Accept-Encoding, accept-language ,Accept-Encoding"), [
    "accept-encoding",
    "accept-language",
  ]);
  assert.deepEqual(parseVary("*"), ["*"]);
  assert.deepEqual(parseVary(null), []);
  assert.equal(normalizeAcceptEncoding("gzip, deflate, br"), "br,deflate,gzip");
  assert.equal(normalizeAcceptEncoding("br;q=0.5 , GZIP;q=1, deflate;q=0"), "br,gzip");
  assert.equal(secondaryKey(["*"], none), null);
  assert.notEqual(
    secondaryKey(["accept-language"], new Headers({ "accept-language": "" })),
    secondaryKey(["accept-language"], none),
    "absent and empty differ",
  );
  assert.equal(
    secondaryKey(["accept", "x-a"], new Headers({ accept: "text/html,  */*", "x-a": "1" })),
    secondaryKey(["accept", "x-a"], new Headers({ accept: "text/html, */*", "x-a": "1" })),
  );
});

Deno.test("entry: pack/unpack round-trips metadata and binary body", () => {
  const body = new Uint8Array([0, 255, 1, 254, 10, 13]);
  const e = prepare({
    url: "http://a/bin",
    status: 203,
    headers: [["etag", '"x"'], ["set-cookie-not", "é"]],
    body,
    requestTime: 1,
    responseTime: 2,
    varyNames: ["accept-encoding"],
    varyKey: "accept-encoding=gzip",
    initialAge: 3.5,
  }, STRICT_HEURISTIC);
  const back = unpack(pack(stored(e)))!;
  assert.deepEqual(back, stored(e));
  assert.equal(unpack(new Uint8Array([0, 0, 0, 9, 1])), undefined);
});

Deno.test("capture: client gets every byte, the copy is complete, and capped copies are dropped", async () => {
  const chunks = ["ab", "cd", "ef"].map((s) => enc.encode(s));
  const src = () =>
    new ReadableStream<Uint8Array>({
      start(c) {
        for (const ch of chunks) c.enqueue(ch);
        c.close();
      },
    });
  const a = capture(src(), 100);
  assert.equal(await new Response(a.stream).text(), "abcdef");
  assert.equal(new TextDecoder().decode((await a.done)!), "abcdef");
  const b = capture(src(), 3);
  assert.equal(await new Response(b.stream).text(), "abcdef", "oversized still streams");
  assert.equal(await b.done, null);
  // Client goes away after the first chunk: the rest is still read into the copy.
  const c = capture(src(), 100);
  const reader = c.stream.getReader();
  await reader.read();
  await reader.cancel();
  assert.equal(new TextDecoder().decode((await c.done)!), "abcdef");
});

Deno.test("storageTtl: freshness left + stale allowance, or the grace period with validators", () => {
  const now = Date.now();
  const e = (cc: string, extra: [string, string][] = []) =>
    prepare({
      url: "http://a/t",
      status: 200,
      headers: [["cache-control", cc], ...extra],
      body: new Uint8Array(1),
      requestTime: now,
      responseTime: now,
      varyNames: [],
      varyKey: "",
      initialAge: 10,
    }, STRICT_HEURISTIC);
  assert.equal(storageTtl(e("max-age=60"), now, 3600), 50);
  assert.equal(storageTtl(e("max-age=60, stale-while-revalidate=100"), now, 3600), 150);
  assert.equal(storageTtl(e("max-age=60, stale-if-error=500, must-revalidate"), now, 3600), 50);
  assert.equal(storageTtl(e("max-age=60", [["etag", '"x"']]), now, 3600), 3650);
  assert.equal(storageTtl(e("max-age=0"), now, 3600), 0, "nothing to reuse: not stored");
});
