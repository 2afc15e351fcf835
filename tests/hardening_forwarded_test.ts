/**
 * Issue 11 item 9: an unparseable X-Forwarded-For from a trusted peer counts as the peer
 * itself, never as loopback; admin access never derives from a forwarded address.
 */
import assert from "node:assert/strict";
import { parseCidrList } from "../src/security/cidr.ts";
import { clientIpFrom } from "../src/security/forwarded.ts";
import { rawRequest } from "./helpers/rawhttp.ts";
import { startProxy } from "./helpers/proxy.ts";

const GARBAGE = ["garbage", "unknown", "_hidden", "300.1.1.1", "1.2.3.4 5.6.7.8", ",", "[::1"];

Deno.test("unparseable X-Forwarded-For from a trusted peer: the peer, never loopback", () => {
  const trusted = parseCidrList("127.0.0.0/8, ::1/128, 10.0.0.0/8");
  for (const xff of GARBAGE) {
    // A trusted load balancer on the LAN: the client is that balancer.
    assert.equal(clientIpFrom("10.0.0.2", xff, trusted), "10.0.0.2", xff);
    // A trusted reverse proxy on this machine: the client is not "this machine".
    for (const peer of ["127.0.0.1", "::1", "::ffff:127.0.0.1"]) {
      const client = clientIpFrom(peer, xff, trusted);
      assert.equal(client, "unknown", `${peer} + ${JSON.stringify(xff)} → ${client}`);
    }
    // The last believable hop, when it is loopback, is no better.
    assert.equal(clientIpFrom("127.0.0.1", `${xff}, 127.0.0.5`, trusted), "unknown", xff);
  }
  // Parseable lists behave as before.
  assert.equal(clientIpFrom("127.0.0.1", "203.0.113.7", trusted), "203.0.113.7");
  assert.equal(clientIpFrom("127.0.0.1", "1.1.1.1, garbage, 10.3.3.3", trusted), "10.3.3.3");
  assert.equal(clientIpFrom("127.0.0.1", null, trusted), "127.0.0.1");
});

const get = (path: string, extra = "") =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}Connection: close\r\n\r\n`;

Deno.test("behind a trusted local proxy: no admin and no rate-limit exemption from X-Forwarded-For", async () => {
  const origin = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("ok"),
  );
  const proxy = await startProxy({
    env: {
      PROXY_MODE: "reverse",
      BACKEND_SERVERS: `http://127.0.0.1:${origin.addr.port}`,
      TRUSTED_PROXIES: "127.0.0.0/8",
      RATE_LIMIT_REQUESTS: "2",
      RATE_LIMIT_WINDOW: "60",
    },
  });
  try {
    // Direct from loopback, no forwarded header: the operator on the box.
    assert.equal((await rawRequest(proxy.port, get("/proxy-stats"))).status, 200);
    for (const xff of [...GARBAGE, "127.0.0.1", "::1"]) {
      const r = await rawRequest(proxy.port, get("/proxy-stats", `X-Forwarded-For: ${xff}\r\n`));
      assert.equal(r.status, 403, `X-Forwarded-For: ${xff} opened the admin surface`);
    }
    const forwarded = await rawRequest(
      proxy.port,
      get("/proxy-stats", `Forwarded: for=127.0.0.1\r\n`),
    );
    assert.equal(forwarded.status, 403, "Forwarded: for=127.0.0.1 opened the admin surface");

    // Garbage X-Forwarded-For is not the loopback exemption: the limit of 2 applies.
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await rawRequest(
        proxy.port,
        get("/x", "X-Forwarded-For: garbage\r\n"),
      );
      statuses.push(r.status);
    }
    assert.ok(statuses.includes(429), `garbage XFF was rate-limit exempt: ${statuses}`);
  } finally {
    await proxy.stop();
    await origin.shutdown();
  }
});
