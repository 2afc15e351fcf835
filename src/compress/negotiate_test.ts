import assert from "node:assert/strict";
import { isCompressible, mergeVary, negotiate, weakenEtag } from "./negotiate.ts";
import type { Encoding } from "./codec.ts";

const ALL: Encoding[] = ["br", "zstd", "gzip", "deflate"];

Deno.test("negotiate follows q-values, then the server's preference", () => {
  assert.equal(negotiate("gzip, deflate, br, zstd", ALL), "br");
  assert.equal(negotiate("gzip, deflate, br, zstd", ["zstd", "gzip"]), "zstd");
  assert.equal(negotiate("br;q=0.5, gzip;q=0.8", ALL), "gzip");
  assert.equal(negotiate("GZIP;Q=0.9, deflate;q=0.1", ALL), "gzip");
  assert.equal(negotiate("x-gzip", ALL), "gzip");
});

Deno.test("negotiate honours q=0, identity and *", () => {
  assert.equal(negotiate("br;q=0, gzip", ALL), "gzip");
  assert.equal(negotiate("br;q=0, gzip;q=0", ALL), undefined);
  assert.equal(negotiate("identity", ALL), undefined);
  assert.equal(negotiate("gzip;q=0.5, identity", ALL), undefined, "identity preferred");
  assert.equal(negotiate("gzip, identity;q=0", ALL), "gzip");
  assert.equal(negotiate("*", ALL), "br");
  assert.equal(negotiate("*;q=0.5, br;q=0", ALL), "zstd");
  assert.equal(negotiate("*;q=0", ALL), undefined);
  assert.equal(negotiate(null, ALL), undefined, "no header: no compression");
  assert.equal(negotiate("", ALL), undefined);
  assert.equal(negotiate("compress, sdch", ALL), undefined, "unknown codings only");
});

Deno.test("isCompressible: text, JSON, JS, XML, SVG, WASM yes; media and archives no", () => {
  for (
    const t of [
      "text/html; charset=utf-8",
      "text/css",
      "application/json",
      "application/problem+json",
      "application/javascript",
      "application/xml",
      "application/atom+xml",
      "image/svg+xml",
      "application/wasm",
    ]
  ) assert.ok(isCompressible(t), t);
  for (
    const t of [
      "image/png",
      "image/jpeg",
      "video/mp4",
      "application/zip",
      "application/gzip",
      "font/woff2",
      "application/octet-stream",
      "text/event-stream",
      null,
    ]
  ) assert.ok(!isCompressible(t), String(t));
});

Deno.test("mergeVary and weakenEtag", () => {
  assert.equal(mergeVary(null), "Accept-Encoding");
  assert.equal(mergeVary("Origin"), "Origin, Accept-Encoding");
  assert.equal(mergeVary("origin, accept-encoding"), "origin, accept-encoding");
  assert.equal(mergeVary("*"), "*");
  assert.equal(weakenEtag('"abc"'), 'W/"abc"');
  assert.equal(weakenEtag('W/"abc"'), 'W/"abc"');
});
