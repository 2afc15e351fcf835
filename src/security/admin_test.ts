import assert from "node:assert/strict";
import { Hono } from "hono";
import type { RequestContext } from "../context/mod.ts";
import { normalizeIp } from "../server/tunnel.ts";
import { adminGuard, constantTimeEqual } from "./admin.ts";
import { createClientAcl } from "./acl.ts";
import { parseCidrList } from "./cidr.ts";
import { clientIpFrom } from "./forwarded.ts";

/**
 * A real server whose context is built as the proxy builds it: the peer is the socket's remote
 * address, the client address comes from X-Forwarded-For only when that peer is in `trusted`
 * (TRUSTED_PROXIES). Remote peers (outside loopback) are met in tests/off_loopback_test.ts,
 * which runs the real proxy with a client at a real non-loopback address.
 */
type Env = { Bindings: { ctx: RequestContext }; Variables: { ctx: RequestContext } };

function serve(mount: (app: Hono<Env>) => void, trusted = "") {
  const trustedProxies = parseCidrList(trusted);
  const app = new Hono<Env>();
  app.use(async (c, next) => {
    c.set("ctx", c.env.ctx);
    await next();
  });
  mount(app);
  app.get("*", (c) => c.text("ok"));
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (req, info) => {
      const peer = normalizeIp(info.remoteAddr.hostname);
      const ctx: RequestContext = {
        id: "t",
        kind: "http",
        conn: { remoteAddr: peer, remotePort: info.remoteAddr.port, form: "origin", secure: false },
        startedAt: performance.now(),
        clientIp: clientIpFrom(peer, req.headers.get("x-forwarded-for"), trustedProxies),
      };
      return app.fetch(req, { ctx });
    },
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  return { url, close: () => server.shutdown() };
}

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  return { status: res.status, body: await res.text(), headers: res.headers };
}

Deno.test("admin guard: a loopback peer is let in with or without a token, unless it forwards", async () => {
  const s = serve((app) => app.use("/proxy-stats", adminGuard({ token: "s3cret-token" })));
  const open = serve((app) => app.use("/proxy-stats", adminGuard({})));
  try {
    assert.equal((await get(`${s.url}/proxy-stats`)).status, 200);
    assert.equal((await get(`${open.url}/proxy-stats`)).status, 200);
    // A request that came through a proxy is never local, even from a loopback peer that is
    // not trusted: admin access never derives from a forwarded address.
    const forwarded = await get(`${open.url}/proxy-stats`, { "x-forwarded-for": "127.0.0.1" });
    assert.equal(forwarded.status, 403);
  } finally {
    await s.close();
    await open.close();
  }
});

Deno.test("admin guard: a loopback trusted proxy relaying an outside client needs the token", async () => {
  // A loopback peer forwarding an outside client (a trusted proxy on the box) is not local.
  const s = serve(
    (app) => app.use("/proxy-stats", adminGuard({ token: "s3cret-token" })),
    "127.0.0.1/32",
  );
  const open = serve((app) => app.use("/proxy-stats", adminGuard({})), "127.0.0.1/32");
  try {
    const relayed = { "x-forwarded-for": "203.0.113.5" };
    const missing = await get(`${s.url}/proxy-stats`, relayed);
    assert.equal(missing.status, 401);
    assert.match(missing.body, /missing admin token/);
    assert.equal(missing.headers.get("www-authenticate"), 'Bearer realm="proxy-admin"');
    const wrong = await get(`${s.url}/proxy-stats`, {
      ...relayed,
      authorization: "Bearer s3cret-tokeN",
    });
    assert.equal(wrong.status, 401);
    assert.match(wrong.body, /wrong admin token/);
    assert.equal(
      (await get(`${s.url}/proxy-stats`, { ...relayed, authorization: "Bearer s3cret-token" }))
        .status,
      200,
    );
    assert.equal(
      (await get(`${s.url}/proxy-stats`, { ...relayed, "x-admin-token": "s3cret-token" })).status,
      200,
    );
    const noToken = await get(`${open.url}/proxy-stats`, relayed);
    assert.equal(noToken.status, 403);
    assert.match(noToken.body, /set ADMIN_TOKEN/);
    // Routes outside the guard are untouched.
    assert.equal((await get(`${s.url}/other`, relayed)).status, 200);
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
  // The median ratio resists scheduler noise (sorted as numbers: the default sort compares text).
  const ratio = runs.map(([a, b]) => a / b).sort((a, b) => a - b)[2];
  assert.ok(ratio > 0.6 && ratio < 1.6, `early/late mismatch time ratio ${ratio}`);
});

Deno.test("client ACL: ALLOWED_CLIENTS membership (the 403 is the client-acl phase's, src/pipeline)", () => {
  const acl = createClientAcl({ allowed: parseCidrList("127.0.0.0/8, 10.0.0.0/8") });
  assert.ok(acl.isAllowedClient("10.2.3.4"));
  assert.ok(acl.isAllowedClient("::ffff:127.0.0.1"));
  assert.ok(!acl.isAllowedClient("8.8.8.8"));
  assert.throws(() => createClientAcl({ allowed: [] }), /ALLOWED_CLIENTS is empty/);
});
