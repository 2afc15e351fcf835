import assert from "node:assert/strict";

const assertEquals = <T>(actual: T, expected: T, msg?: string) =>
  assert.deepStrictEqual(actual, expected, msg);
const assertFalse = (v: unknown, msg?: string) => assert.ok(!v, msg);
import {
  type CacheHeuristic,
  correctedInitialAge,
  currentAge,
  deltaSeconds,
  etagMatches,
  type Freshness,
  freshness,
  type Heuristic,
  HEURISTIC_CAP_SEC,
  invalidatesOnSuccess,
  NOT_UPDATED,
  notModified,
  parseAge,
  parseCacheControl,
  parseHttpDate,
  requestRules,
  staleIfError,
  storable,
  type StorableInput,
  usability,
} from "./policy.ts";

const DATE = Date.UTC(2024, 0, 15, 12, 0, 0);
const httpDate = (ms: number) => new Date(ms).toUTCString();

Deno.test("parseCacheControl: tokens, values, quotes, case, first occurrence wins", () => {
  const d = parseCacheControl(
    'Max-Age=60, no-cache="Set-Cookie, X-A" ,PUBLIC,max-age=5, x="a\\"b"',
  );
  assertEquals(d["max-age"], "60");
  assertEquals(d["no-cache"], "Set-Cookie, X-A");
  assertEquals(d["public"], true);
  assertEquals(d["x"], 'a"b');
  assertEquals(Object.keys(parseCacheControl("")).length, 0);
  assertEquals(Object.keys(parseCacheControl(null)).length, 0);
  assertEquals(parseCacheControl(",,no-store,,")["no-store"], true);
  assertEquals(parseCacheControl('max-age="30"')["max-age"], "30");
  assertEquals(parseCacheControl("max-age = 30")["max-age"], "30");
});

Deno.test("deltaSeconds: valid, invalid (null), absent (undefined), capped", () => {
  const d = parseCacheControl("max-age=10, s-maxage=abc, min-fresh=-1, max-stale, x=99999999999");
  assertEquals(deltaSeconds(d, "max-age"), 10);
  assertEquals(deltaSeconds(d, "s-maxage"), null);
  assertEquals(deltaSeconds(d, "min-fresh"), null);
  assertEquals(deltaSeconds(d, "max-stale"), null);
  assertEquals(deltaSeconds(d, "nope"), undefined);
  assertEquals(deltaSeconds(d, "x"), 2147483648);
});

Deno.test("parseHttpDate: IMF-fixdate, RFC 850, asctime; rejects junk and 0", () => {
  const t = Date.UTC(1994, 10, 6, 8, 49, 37);
  assertEquals(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), t);
  assertEquals(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), t);
  assertEquals(parseHttpDate("Sun Nov  6 08:49:37 1994"), t);
  assertEquals(parseHttpDate("0"), undefined);
  assertEquals(parseHttpDate("-1"), undefined);
  assertEquals(parseHttpDate("tomorrow"), undefined);
  assertEquals(parseHttpDate(null), undefined);
  assertEquals(parseHttpDate("Sun, 06 Foo 1994 08:49:37 GMT"), undefined);
});

Deno.test("parseAge: integers only, first value, invalid is 0", () => {
  assertEquals(parseAge("30"), 30);
  assertEquals(parseAge("30, 40"), 30);
  assertEquals(parseAge("-5"), 0);
  assertEquals(parseAge("1.5"), 0);
  assertEquals(parseAge(null), 0);
});

function input(over: Partial<StorableInput> & { cc?: string; headers?: HeadersInit }) {
  const headers = new Headers(over.headers);
  if (over.cc !== undefined) headers.set("cache-control", over.cc);
  return {
    method: "GET",
    requestDirectives: parseCacheControl(null),
    authorization: false,
    status: 200,
    responseDirectives: parseCacheControl(headers.get("cache-control")),
    responseHeaders: headers,
    ...over,
  };
}

Deno.test("storable: methods and status codes", () => {
  assert(storable(input({})).storable);
  assertFalse(storable(input({ method: "HEAD" })).storable);
  assertFalse(storable(input({ method: "POST", cc: "max-age=60" })).storable);
  assertFalse(storable(input({ status: 206, cc: "max-age=60" })).storable);
  assertFalse(storable(input({ status: 304 })).storable);
  for (const s of [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]) {
    assert(storable(input({ status: s })).storable, `heuristic status ${s}`);
  }
  for (const s of [201, 302, 303, 307, 400, 403, 500, 502, 503]) {
    assertFalse(storable(input({ status: s })).storable, `status ${s} without freshness`);
    assert(storable(input({ status: s, cc: "max-age=10" })).storable, `status ${s} with max-age`);
  }
  assert(storable(input({ status: 302, headers: { expires: httpDate(DATE) } })).storable);
  assert(storable(input({ status: 302, cc: "public" })).storable);
  assert(storable(input({ status: 302, cc: "s-maxage=5" })).storable);
});

Deno.test("storable: no-store, private, must-understand", () => {
  assertFalse(storable(input({ cc: "no-store" })).storable);
  assertFalse(storable(input({ cc: "max-age=60, no-store" })).storable);
  assertFalse(storable(input({ requestDirectives: parseCacheControl("no-store") })).storable);
  assertFalse(storable(input({ cc: "private, max-age=60" })).storable);
  const qualified = storable(input({ cc: 'private="x-user", max-age=60' }));
  assert(qualified.storable);
  assertEquals(qualified.strip, ["x-user"]);
  assertEquals(storable(input({ cc: 'no-cache="x-a, X-B"' })).strip, ["x-a", "x-b"]);
  assert(storable(input({ cc: "must-understand, no-store, max-age=60" })).storable);
  assertFalse(
    storable(input({ status: 599, cc: "must-understand, no-store, max-age=6" })).storable,
  );
});

Deno.test("storable: Authorization needs public, s-maxage or must-revalidate", () => {
  assertFalse(storable(input({ authorization: true, cc: "max-age=60" })).storable);
  assertFalse(storable(input({ authorization: true })).storable);
  assert(storable(input({ authorization: true, cc: "public" })).storable);
  assert(storable(input({ authorization: true, cc: "s-maxage=60" })).storable);
  assert(storable(input({ authorization: true, cc: "must-revalidate, max-age=5" })).storable);
});

Deno.test("storable: Set-Cookie only when public, and then the cookie is stripped", () => {
  assertFalse(storable(input({ cc: "max-age=60", headers: { "set-cookie": "a=1" } })).storable);
  const pub = storable(input({ cc: "public, max-age=60", headers: { "set-cookie": "a=1" } }));
  assert(pub.storable);
  assert(pub.strip.includes("set-cookie"));
});

Deno.test("storable: Vary: * is never stored", () => {
  assertFalse(storable(input({ cc: "max-age=60", headers: { vary: "accept, *" } })).storable);
  assert(storable(input({ cc: "max-age=60", headers: { vary: "accept-encoding" } })).storable);
});

/** `defaultTtl` > 0: CACHE_HEURISTIC=always with that lifetime; 0: strict RFC 9111. */
function fresh(cc: string, headers: HeadersInit = {}, status = 200, defaultTtl = 0) {
  const h = new Headers(headers);
  const heuristic: Heuristic = defaultTtl > 0
    ? { mode: "always", maxSec: defaultTtl }
    : { mode: "last-modified", maxSec: 0 };
  return freshness(status, parseCacheControl(cc), h, DATE, heuristic);
}

Deno.test("freshness: s-maxage beats max-age beats Expires", () => {
  const exp = { expires: httpDate(DATE + 500_000) };
  assertEquals(fresh("s-maxage=10, max-age=20", exp).lifetime, 10);
  assertEquals(fresh("max-age=20", exp).lifetime, 20);
  assertEquals(fresh("", exp).lifetime, 500);
  assert(fresh("", exp).explicit);
  assert(fresh("s-maxage=10").mustRevalidate, "s-maxage implies proxy-revalidate");
  assert(fresh("max-age=1, proxy-revalidate").mustRevalidate);
  assert(fresh("max-age=1, must-revalidate").mustRevalidate);
  assertFalse(fresh("max-age=1").mustRevalidate);
});

Deno.test("freshness: invalid values mean stale, not default", () => {
  assertEquals(fresh("max-age=abc", {}, 200, 300).lifetime, 0);
  assertEquals(fresh("", { expires: "0" }, 200, 300).lifetime, 0);
  assertEquals(fresh("", { expires: httpDate(DATE - 1000) }, 200, 300).lifetime, 0);
  assertEquals(fresh("max-age=0", {}, 200, 300).lifetime, 0);
});

Deno.test("freshness: defaultTtl applies only without explicit freshness, where heuristics may", () => {
  const d = fresh("", {}, 200, 120);
  assertEquals(d.lifetime, 120);
  assert(d.defaulted);
  assertEquals(fresh("max-age=5", {}, 200, 120).lifetime, 5);
  assertEquals(fresh("", {}, 302, 120).lifetime, 0, "302 is not heuristically cacheable");
  assertEquals(fresh("public", {}, 302, 120).lifetime, 120);
});

Deno.test("freshness: strict mode (defaultTtl 0) uses 10% of Last-Modified age, capped", () => {
  const lm = { "last-modified": httpDate(DATE - 10_000_000) };
  assertEquals(fresh("", lm).lifetime, 1000);
  assertFalse(fresh("", lm).explicit);
  assertEquals(fresh("", {}).lifetime, 0, "nothing to go on: reuse only after validation");
  const old = { "last-modified": httpDate(DATE - 1000 * 86400 * 1000) };
  assertEquals(fresh("", old).lifetime, HEURISTIC_CAP_SEC);
  assertEquals(fresh("", lm, 302).lifetime, 0, "no heuristic for 302");
  assertEquals(fresh("", { "last-modified": httpDate(DATE + 5000) }).lifetime, 0);
});

Deno.test("freshness: CACHE_HEURISTIC last-modified is capped by CACHE_EXPIRATION; off gives none", () => {
  const lm = { "last-modified": httpDate(DATE - 10_000_000) }; // 10 % = 1000 s
  const h = (mode: CacheHeuristic, maxSec: number, headers: HeadersInit = lm) =>
    freshness(200, parseCacheControl(""), new Headers(headers), DATE, { mode, maxSec }).lifetime;
  assertEquals(h("last-modified", 300), 300);
  assertEquals(h("last-modified", 5000), 1000);
  assertEquals(h("last-modified", 300, {}), 0, "no Last-Modified: nothing to go on");
  assertEquals(h("always", 300, {}), 300);
  assertEquals(h("off", 300), 0);
  assertEquals(h("off", 300, { "cache-control": "max-age=5" }), 0, "header, not directive");
});

Deno.test("freshness: stale-while-revalidate, stale-if-error, no-cache", () => {
  const f = fresh("max-age=1, stale-while-revalidate=30, stale-if-error=60");
  assertEquals([f.swr, f.sie], [30, 60]);
  assert(fresh("no-cache").noCache);
  assertFalse(
    fresh('no-cache="set-cookie"').noCache,
    "qualified no-cache does not force validation",
  );
});

Deno.test("age: RFC 9111 §4.2.3 corrected initial age and current age", () => {
  // Response took 2 s, origin says Age 10, clock skew makes apparent age 5.
  const req = DATE + 1000;
  const res = DATE + 3000;
  assertEquals(correctedInitialAge("10", DATE - 2000, req, res), 12);
  assertEquals(correctedInitialAge(null, DATE - 2000, req, res), 5);
  // Origin clock ahead: apparent age clamps to 0; delay still counts.
  assertEquals(correctedInitialAge(null, DATE + 60_000, req, res), 2);
  assertEquals(currentAge(12, res, res + 8000), 20);
  assertEquals(currentAge(12, res, res - 8000), 12, "clock going backwards never lowers the age");
});

const f = (over: Partial<Freshness>): Freshness => ({
  lifetime: 60,
  explicit: true,
  defaulted: false,
  swr: 0,
  sie: 0,
  mustRevalidate: false,
  noCache: false,
  ...over,
});
const rules = (cc: string | null, pragma: string | null = null) => requestRules(cc, pragma);

Deno.test("usability: fresh and stale without request directives", () => {
  assertEquals(usability(f({}), 10, rules(null)), "fresh");
  assertEquals(usability(f({}), 60, rules(null)), "validate");
  assertEquals(usability(f({ swr: 30 }), 70, rules(null)), "swr");
  assertEquals(usability(f({ swr: 30 }), 95, rules(null)), "validate");
  assertEquals(usability(f({ swr: 30, mustRevalidate: true }), 70, rules(null)), "validate");
  assertEquals(usability(f({ noCache: true }), 1, rules(null)), "validate");
});

Deno.test("usability: request no-cache, Pragma, max-age, min-fresh, max-stale", () => {
  assertEquals(usability(f({}), 1, rules("no-cache")), "validate");
  assertEquals(usability(f({}), 1, rules(null, "no-cache")), "validate");
  assertEquals(usability(f({}), 1, rules("max-age=60", "no-cache")), "fresh", "CC beats Pragma");
  assertEquals(usability(f({}), 10, rules("max-age=5")), "validate");
  assertEquals(usability(f({}), 10, rules("max-age=20")), "fresh");
  assertEquals(usability(f({}), 0.5, rules("max-age=0")), "validate");
  assertEquals(usability(f({}), 50, rules("min-fresh=20")), "validate");
  assertEquals(usability(f({}), 30, rules("min-fresh=20")), "fresh");
  assertEquals(usability(f({}), 70, rules("max-stale")), "stale");
  assertEquals(usability(f({}), 70, rules("max-stale=20")), "stale");
  assertEquals(usability(f({}), 90, rules("max-stale=20")), "validate");
  assertEquals(usability(f({ mustRevalidate: true }), 70, rules("max-stale")), "validate");
  assertEquals(usability(f({}), 10, rules("max-age=abc")), "validate");
  assertEquals(usability(f({}), 10, rules("only-if-cached")), "fresh");
});

Deno.test("staleIfError: response and request directives, must-revalidate, unreachable origin", () => {
  assert(staleIfError(f({ sie: 30 }), 80, rules(null), false));
  assertFalse(staleIfError(f({ sie: 30 }), 100, rules(null), false));
  assert(staleIfError(f({}), 80, rules("stale-if-error=30"), false));
  assertFalse(staleIfError(f({}), 80, rules(null), false), "5xx without sie: not stale");
  assert(staleIfError(f({}), 80, rules(null), true), "origin unreachable: stale allowed");
  assertFalse(staleIfError(f({ mustRevalidate: true, sie: 30 }), 80, rules(null), true));
  assertFalse(staleIfError(f({ noCache: true }), 80, rules(null), true));
});

Deno.test("conditionals: If-None-Match weak comparison, If-Modified-Since", () => {
  assert(etagMatches('"a"', '"a"'));
  assert(etagMatches('W/"a"', '"a"'));
  assert(etagMatches('"x", W/"a"', 'W/"a"'));
  assert(etagMatches("*", '"a"'));
  assertFalse(etagMatches("*", null));
  assertFalse(etagMatches('"b"', '"a"'));
  assertFalse(etagMatches('"a,b"', '"a"'));
  const lm = httpDate(DATE);
  assert(notModified(null, httpDate(DATE), null, lm));
  assert(notModified(null, httpDate(DATE + 1000), null, lm));
  assertFalse(notModified(null, httpDate(DATE - 1000), null, lm));
  assertFalse(notModified(null, "garbage", null, lm));
  assertFalse(notModified('"b"', httpDate(DATE + 1000), '"a"', lm), "INM wins over IMS");
});

Deno.test("invalidatesOnSuccess: every method but the safe ones, unknown ones included (RFC 9111 §4.4)", () => {
  for (const m of ["POST", "PUT", "PATCH", "DELETE", "M-SEARCH", "PROPFIND", "purge"]) {
    assert(invalidatesOnSuccess(m), m);
  }
  for (const m of ["GET", "HEAD", "OPTIONS", "TRACE"]) assertFalse(invalidatesOnSuccess(m), m);
});

Deno.test("NOT_UPDATED: a 304 replaces Content-Type but not what describes the stored body", () => {
  assertFalse(NOT_UPDATED.has("content-type"), "RFC 9111 §3.2 lists no exception for it");
  for (const f of ["content-length", "content-encoding", "content-range", "content-md5"]) {
    assert(NOT_UPDATED.has(f), f);
  }
});
