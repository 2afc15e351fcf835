/**
 * The frame around every request's phases: request ids (a trusted peer's own,
 * else generated), X-Request-Id on every answer, and errors as answers.
 */
import assert from "node:assert/strict";
import type { ConnInfo } from "../context/mod.ts";
import { UpstreamError } from "../forward/errors.ts";
import { logger } from "../log/mod.ts";
import { parseCidrList } from "../security/mod.ts";
import { ProxyStats } from "../stats/mod.ts";
import { createBookkeeping } from "./bookkeeping.ts";

const conn = (remoteAddr: string): ConnInfo => ({
  remoteAddr,
  remotePort: 1,
  form: "origin",
  secure: false,
});

function book(trusted = "") {
  return createBookkeeping({
    stats: new ProxyStats({ mode: "reverse", listener: "test" }),
    log: logger("test"),
    trusted: trusted ? parseCidrList(trusted) : [],
    instance: "inst",
  });
}

Deno.test("request id: a trusted peer's X-Request-Id is kept; anyone else's is replaced; ids are unique", () => {
  const given = new Request("http://x/", { headers: { "x-request-id": "abc-123" } });
  const b = book("10.0.0.0/8");
  assert.equal(b.contextOf(given, conn("10.1.2.3"), "http").id, "abc-123");
  const untrusted = b.contextOf(given, conn("203.0.113.9"), "http").id;
  assert.notEqual(untrusted, "abc-123");
  assert.match(untrusted, /^inst-/);
  const bad = new Request("http://x/", { headers: { "x-request-id": "two words" } });
  assert.notEqual(b.contextOf(bad, conn("10.1.2.3"), "http").id, "two words");
  const noTrust = book();
  const ids = new Set(
    Array.from({ length: 100 }, () => noTrust.contextOf(given, conn("10.1.2.3"), "http").id),
  );
  assert.equal(ids.size, 100);
});

Deno.test("finish: X-Request-Id on every answer, immutable headers included", async () => {
  const b = book();
  const req = new Request("http://x/");
  const ctx = b.contextOf(req, conn("127.0.0.1"), "http");
  const own = b.finish(req, new Response("ok"), ctx);
  assert.equal(own.headers.get("x-request-id"), ctx.id);
  const immutable = Response.redirect("http://y/", 302); // immutable headers
  const answered = b.finish(req, immutable, ctx);
  assert.equal(answered.headers.get("x-request-id"), ctx.id);
  assert.equal(answered.status, 302);
  await own.body?.cancel();
});

Deno.test("errorResponse: an UpstreamError's status, a refusal's status, else 500", async () => {
  const b = book();
  const ctx = b.contextOf(new Request("http://x/"), conn("127.0.0.1"), "http");
  const timeout = b.errorResponse(new UpstreamError("response-timeout", "slow", true), ctx);
  assert.equal(timeout.status, 504);
  assert.match(await timeout.text(), /upstream error: slow/);
  const refused = b.errorResponse(Object.assign(new Error("busy"), { status: 503 }), ctx);
  assert.equal(refused.status, 503);
  await refused.body?.cancel();
  const bug = b.errorResponse(new TypeError("oops"), ctx);
  assert.equal(bug.status, 500);
  await bug.body?.cancel();
});
