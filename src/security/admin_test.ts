import assert from "node:assert/strict";
import { Hono } from "hono";
import type { RequestContext, TargetForm } from "../context/mod.ts";
import { adminGuard, constantTimeEqual } from "./admin.ts";
import { createClientAcl } from "./acl.ts";
import { parseCidrList } from "./cidr.ts";

/** A real server whose context says the client is `x-test-client` (peer `x-test-peer`). */
type Env = { Variables: { ctx: RequestContext } };

function serve(mount: (app: Hono<Env>) => void) {
  const app = new Hono<Env>();
  app.use(async (c, next) => {
    const peer = c.req.header("x-test-peer") ?? "127.0.0.1";
    const ctx: RequestContext = {
      id: "t",
      kind: "http",
      conn: { remoteAddr: peer, remotePort: 1, form: "origin" as TargetForm, secure: false },
      startedAt: performance.now(),
      clientIp: c.req.header("x-test-client") ?? peer,
    };
    c.set("ctx", ctx);
    await next();
  });
  mount(app);
  app.get("*", (c) => c.text("ok"));
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, app.fetch);
  const url = `http://127.0.0.1:${server.addr.port}`;
  return { url, close: () => server.shutdown() };
}

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  return { status: res.status, body: await res.text(), headers: res.headers };
}

Deno.test("admin guard: loopback always, remote needs the token, no token means loopback only", async () => {
  const s = serve((app) => app.use("/proxy-stats", adminGuard({ token: "s3cret-token" })));
  const open = serve((app) => app.use("/proxy-stats", adminGuard({})));
  try {
    assert.equal((await get(`${s.url}/proxy-stats`)).status, 200);
    assert.equal((await get(`${s.url}/proxy-stats`, { "x-test-peer": "::1" })).status, 200);
    const remote = { "x-test-peer": "203.0.113.5" };
    const missing = await get(`${s.url}/proxy-stats`, remote);
    assert.equal(missing.status, 401);
    assert.match(missing.body, /missing admin token/);
    assert.equal(missing.headers.get("www-authenticate"), 'Bearer realm="proxy-admin"');
    const wrong = await get(`${s.url}/proxy-stats`, {
      ...remote,
      authorization: "Bearer s3cret-tokeN",
    });
    assert.equal(wrong.status, 401);
    assert.match(wrong.body, /wrong admin token/);
    assert.equal(
      (await get(`${s.url}/proxy-stats`, { ...remote, authorization: "Bearer s3cret-token" }))
        .status,
      200,
    );
    assert.equal(
      (await get(`${s.url}/proxy-stats`, { ...remote, "x-admin-token": "s3cret-token" })).status,
      200,
    );
    // A loopback peer forwarding an outside client (trusted proxy on the box) is not local.
    const relayed = await get(`${s.url}/proxy-stats`, {
      "x-test-peer": "127.0.0.1",
      "x-test-client": "8.8.8.8",
    });
    assert.equal(relayed.status, 401);
    const noToken = await get(`${open.url}/proxy-stats`, remote);
    assert.equal(noToken.status, 403);
    assert.match(noToken.body, /set ADMIN_TOKEN/);
    assert.equal((await get(`${open.url}/proxy-stats`)).status, 200);
    // Routes outside the guard are untouched.
    assert.equal((await get(`${s.url}/other`, remote)).status, 200);
  } finally {
    await s.close();
    await open.close();
  }
});

Deno.test("constantTimeEqual compares content of any length", () => {
  assert.ok(constantTimeEqual("abc", "abc"));
  assert.ok(!constantTimeEqual("abc", "abd"));
  assert.ok(!constantTimeEqual("abc", "abcd"));
  assert.ok(!constantTimeEqual("", "a"));
  assert.ok(constantTimeEqual("", ""));
});

Deno.test("constantTimeEqual takes the same time for an early and a late mismatch", () => {
  const secret = "x".repeat(4096);
  const early = "y" + "x".repeat(4095);
  const late = "x".repeat(4095) + "y";
  const time = (s: string) => {
    const t0 = performance.now();
    for (let i = 0; i < 2000; i++) constantTimeEqual(secret, s);
    return performance.now() - t0;
  };
  time(early); // warm up
  const runs = [0, 1, 2, 3, 4].map(() => [time(early), time(late)]);
  const ratio = runs.map(([a, b]) => a / b).sort()[2]; // median ratio resists scheduler noise
  assert.ok(ratio > 0.6 && ratio < 1.6, `early/late mismatch time ratio ${ratio}`);
});

Deno.test("client ACL: ALLOWED_CLIENTS membership (the 403 is the client-acl phase's, src/pipeline)", () => {
  const acl = createClientAcl({ allowed: parseCidrList("127.0.0.0/8, 10.0.0.0/8") });
  assert.ok(acl.isAllowedClient("10.2.3.4"));
  assert.ok(acl.isAllowedClient("::ffff:127.0.0.1"));
  assert.ok(!acl.isAllowedClient("8.8.8.8"));
  assert.throws(() => createClientAcl({ allowed: [] }), /ALLOWED_CLIENTS is empty/);
});
