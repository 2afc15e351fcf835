/**
 * The request-filter phases over the real modules, through the real
 * `compose` and `buildPipeline`: each phase's refusal, its `passes` agreeing
 * with its wrapper, and GET and CONNECT getting the same refusal.
 */
import assert from "node:assert/strict";
import { createFilter } from "../filter/mod.ts";
import { createRateLimiter } from "../ratelimit/mod.ts";
import { createClientAcl, parseCidrList } from "../security/mod.ts";
import type { TunnelRequest } from "../server/tunnel.ts";
import { createBookkeeping } from "./bookkeeping.ts";
import { tunnelAdmission } from "./connect.ts";
import { buildPipeline, compose, type PhaseImpl, type PhaseSet } from "./phases.ts";
import * as phase from "./request_filters.ts";
import { ok, serveChain, testContext } from "./testing.ts";
import { ProxyStats } from "../stats/mod.ts";
import { logger } from "../log/mod.ts";

const run = (p: PhaseImpl, req: Request, ctx = testContext()) => compose(ok, p.wrap)(req, ctx);

Deno.test("client-acl: 403 naming the client for forward proxying; origin-form only when set explicitly", async () => {
  const acl = createClientAcl({ allowed: parseCidrList("127.0.0.0/8, 10.0.0.0/8") });
  const forwardOnly = phase.clientAcl(acl.isAllowedClient, false);
  const everyone = phase.clientAcl(acl.isAllowedClient, true);
  const s = serveChain(compose(ok, everyone.wrap));
  try {
    assert.equal((await fetch(s.url)).status, 200);
    const inside = await fetch(s.url, { headers: { "x-test-peer": "10.9.9.9" } });
    assert.equal(inside.status, 200);
    await inside.body?.cancel();
    const refused = await fetch(s.url, { headers: { "x-test-peer": "203.0.113.9" } });
    assert.equal(refused.status, 403);
    assert.match(await refused.text(), /client 203\.0\.113\.9 is not in ALLOWED_CLIENTS/);
  } finally {
    await s.close();
  }
  const outside = (form: "origin" | "absolute") => testContext({ clientIp: "203.0.113.9", form });
  const req = new Request("http://example.test/");
  assert.equal((await run(forwardOnly, req, outside("origin"))).status, 200);
  assert.equal((await run(forwardOnly, req, outside("absolute"))).status, 403);
  assert.equal(forwardOnly.passes!(req, outside("origin")), true);
  assert.equal(forwardOnly.passes!(req, outside("absolute")), false);
});

Deno.test("filter: 403 with X-Filter; `passes` looks without counting, the wrapper counts once", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/list.txt`, "||blocked.example^\n");
  const f = await createFilter({ categories: [], lists: [`${dir}/list.txt`] });
  try {
    const p = phase.filter(f);
    const blocked = new Request("http://www.blocked.example/a");
    assert.equal(p.passes!(blocked, testContext()), false);
    assert.equal(f.snapshot().blocked.custom ?? 0, 0);
    const res = await run(p, blocked);
    assert.equal(res.status, 403);
    assert.equal(res.headers.get("x-filter"), "blocked; category=custom; rule=||blocked.example^");
    assert.equal(f.snapshot().blocked.custom, 1);
    assert.equal(p.passes!(new Request("http://fine.example/"), testContext()), true);
  } finally {
    f.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("target: bad scheme 400, loop 508, inside name 403, CONNECT port outside CONNECT_PORTS 403", async () => {
  const p = phase.target({
    via: "1.1 proxy-test",
    checkHost: (host) => Promise.resolve(host === "inside.test" ? "resolves inside" : undefined),
    connectPorts: [443],
  });
  const abs = () => testContext({ form: "absolute" });
  assert.equal((await run(p, new Request("http://inside.test/"), abs())).status, 403);
  const loop = new Request("http://example.test/", { headers: { via: "1.1 proxy-test" } });
  assert.equal((await run(p, loop, abs())).status, 508);
  const ctx = abs();
  assert.equal((await run(p, new Request("http://example.test/x"), ctx)).status, 200);
  assert.equal(ctx.target?.href, "http://example.test/x");
  assert.equal(p.passes!(new Request("http://example.test/"), testContext()), true);
  assert.equal(p.passes!(new Request("http://example.test/"), abs()), false);
  const connect = (port: number, host = "example.test") => {
    const c = testContext({ form: "authority", kind: "connect" });
    c.authority = { host, port };
    return compose(ok, p.byKind!.connect!)(new Request(`http://${host}:${port}/`), c);
  };
  const port = await connect(25);
  assert.equal(port.status, 403);
  assert.match(await port.text(), /add it to CONNECT_PORTS \(now 443\)/);
  assert.equal((await connect(443, "inside.test")).status, 403);
  assert.equal((await connect(443)).status, 200);
});

Deno.test("rate-limit: exempt clients pass synchronously, counted once; others run the wrapper", async () => {
  const limiter = createRateLimiter({
    limit: 1,
    windowSec: 60,
    exempt: parseCidrList("10.0.0.0/8"),
  });
  try {
    assert.equal(phase.rateLimit(limiter, false), undefined);
    const p = phase.rateLimit(limiter, true)!;
    const req = new Request("http://example.test/");
    assert.equal(p.passes!(req, testContext({ clientIp: "10.1.1.1" })), true);
    assert.equal(p.passes!(req, testContext({ clientIp: "203.0.113.1" })), false);
    assert.equal(limiter.snapshot().exempt_requests, 1);
    const outside = () => testContext({ clientIp: "203.0.113.1" });
    assert.equal((await run(p, req, outside())).status, 200);
    assert.equal((await run(p, req, outside())).status, 429);
  } finally {
    limiter.close();
  }
});

Deno.test("body-limit: `passes` only for a body that cannot cross the limit", () => {
  assert.equal(phase.bodyLimit(0), undefined);
  const p = phase.bodyLimit(10)!;
  const post = (body: BodyInit, headers?: HeadersInit) =>
    new Request("http://example.test/", { method: "POST", body, headers });
  assert.equal(p.passes!(new Request("http://example.test/"), testContext()), true);
  // As the listener hands them over: with the Content-Length from the wire, or chunked.
  assert.equal(p.passes!(post("12345", { "content-length": "5" }), testContext()), true);
  assert.equal(p.passes!(post("12345678901", { "content-length": "11" }), testContext()), false);
  assert.equal(p.passes!(post("12345"), testContext()), false);
});

Deno.test("hygiene: `passes` agrees with the wrapper", async () => {
  const p = phase.hygiene({ maxHeaderCount: 3, maxHeaderSize: 1024 });
  const fine = new Request("http://example.test/", { headers: { a: "1" } });
  const flood = new Request("http://example.test/", {
    headers: { a: "1", b: "2", c: "3", d: "4" },
  });
  assert.equal(p.passes!(fine, testContext()), true);
  assert.equal((await run(p, fine)).status, 200);
  assert.equal(p.passes!(flood, testContext()), false);
  assert.equal((await run(p, flood)).status, 431);
});

Deno.test("GET and CONNECT meet ACL, rate limit and filter in one order and get the same refusal", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/list.txt`, "||blocked.example^\n");
  const f = await createFilter({ categories: [], lists: [`${dir}/list.txt`] });
  const limiter = createRateLimiter({ limit: 2, windowSec: 60 });
  const acl = createClientAcl({ allowed: parseCidrList("10.0.0.0/8") });
  const phases: PhaseSet = {
    "client-acl": phase.clientAcl(acl.isAllowedClient, false),
    "rate-limit": phase.rateLimit(limiter, true),
    filter: phase.filter(f),
    target: phase.target({ via: "1.1 t", connectPorts: [443] }),
    route: { wrap: () => ok },
  };
  const pipeline = buildPipeline(phases);
  const book = createBookkeeping({
    stats: new ProxyStats({ mode: "forward", listener: "test" }),
    log: logger("test"),
    trusted: [],
    instance: "t",
  });
  const admit = tunnelAdmission(pipeline, book.contextOf);
  const get = async (clientIp: string, host: string) => {
    const res = await pipeline.http(
      new Request(`http://${host}/`),
      testContext({ clientIp, form: "absolute" }),
    );
    return { status: res.status, reason: (await res.text()).trimEnd() };
  };
  const connect = async (clientIp: string, host: string) => {
    const t: TunnelRequest = { authority: { host, port: 443 }, clientIp, headers: new Headers() };
    const r = await admit(t);
    return r ? { status: r.status, reason: r.reason } : { status: 200, reason: "ok" };
  };
  try {
    // Outside ALLOWED_CLIENTS: the ACL answers before anything is counted.
    assert.deepEqual(
      await connect("203.0.113.1", "blocked.example"),
      await get("203.0.113.1", "blocked.example"),
    );
    assert.equal(limiter.snapshot().allowed_requests, 0);
    // A blocked host: counted by the rate limit (it runs before the filter), then the filter's 403.
    const g = await get("10.0.0.1", "blocked.example");
    assert.equal(g.status, 403);
    assert.deepEqual(await connect("10.0.0.2", "blocked.example"), g);
    // Over the limit: the rate limit answers before the filter for both.
    const g429 =
      (await get("10.0.0.1", "blocked.example"), await get("10.0.0.1", "blocked.example"));
    await connect("10.0.0.2", "blocked.example");
    const c429 = await connect("10.0.0.2", "blocked.example");
    assert.equal(g429.status, 429);
    assert.equal(c429.status, 429);
    assert.equal(c429.reason.replace("10.0.0.2", "X"), g429.reason.replace("10.0.0.1", "X"));
  } finally {
    f.close();
    limiter.close();
    await Deno.remove(dir, { recursive: true });
  }
});
