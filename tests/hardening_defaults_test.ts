/**
 * Issue 15 items 2 and 3: defaults a user should not trip over.
 * - CONNECT_PORTS includes 80, because Node's undici ProxyAgent (and clients built on it)
 *   tunnel plain http:// URLs with `CONNECT host:80`; a refused CONNECT names the setting.
 * - RATE_LIMIT_EXEMPT's default is ALLOWED_CLIENTS' default: one list of "our own networks".
 */
import assert from "node:assert/strict";
// Node's own HTTP client (test only): the client whose CONNECT host:80 the default must admit.
import { ProxyAgent, request } from "undici";
import { loadConfig } from "../src/config/mod.ts";
import { SCHEMA } from "../src/config/schema.ts";
import { matchesAny, parseCidrList } from "../src/security/cidr.ts";
import { DEFAULT_CONNECT_PORTS } from "../src/security/ssrf.ts";
import { rawRequest } from "./helpers/rawhttp.ts";
import { ignoreUnless } from "./helpers/ignore.ts";
import { startProxy } from "./helpers/proxy.ts";

Deno.test("CONNECT_PORTS defaults to 80,443,8443", () => {
  assert.equal(SCHEMA.connectPorts.default, "80,443,8443");
  assert.deepEqual([...DEFAULT_CONNECT_PORTS], [80, 443, 8443]);
});

Deno.test("a refused CONNECT says which setting allows it", async () => {
  const proxy = await startProxy({ env: { PROXY_MODE: "forward" } });
  try {
    const r = await rawRequest(proxy.port, "CONNECT 127.0.0.1:25 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(r.status, 403);
    assert.match(r.body, /port 25/);
    assert.match(r.body, /add it to CONNECT_PORTS/);
  } finally {
    await proxy.stop();
  }
});

/** Port 80 needs privileges; the test binds it on a loopback address of its own. */
function listen80(hostname: string): Deno.HttpServer | undefined {
  try {
    return Deno.serve(
      { hostname, port: 80, onListen() {} },
      (req) => new Response(`plain http via ${new URL(req.url).pathname}`),
    );
  } catch {
    return undefined;
  }
}

const ORIGIN_HOST = "127.0.0.80";
const probe = listen80(ORIGIN_HOST);
await probe?.shutdown();

const UNDICI_TEST =
  "undici ProxyAgent fetches http:// through the proxy with default CONNECT_PORTS";
Deno.test({
  name: UNDICI_TEST,
  ignore: ignoreUnless(
    UNDICI_TEST,
    probe !== undefined,
    "binding port 80 needs root or CAP_NET_BIND_SERVICE",
  ),
  async fn() {
    const origin = listen80(ORIGIN_HOST)!;
    const proxy = await startProxy({
      env: { PROXY_MODE: "forward", FORWARD_ALLOW_PRIVATE: `${ORIGIN_HOST}/32` },
    });
    const agent = new ProxyAgent(proxy.url);
    try {
      const res = await request(`http://${ORIGIN_HOST}/hello`, { dispatcher: agent });
      const body = await res.body.text();
      assert.equal(res.statusCode, 200, body);
      assert.equal(body, "plain http via /hello");
      const stats = await proxy.stats();
      assert.equal(stats.tunnels.total, 1, "undici tunnelled the plain-http request");
    } finally {
      await agent.close();
      await proxy.stop();
      await origin.shutdown();
    }
  },
});

Deno.test("RATE_LIMIT_EXEMPT's default is ALLOWED_CLIENTS' default (a client in 100.64.0.0/10)", () => {
  assert.equal(SCHEMA.rateLimitExempt.default, SCHEMA.allowedClients.default);
  const { config } = loadConfig({
    args: [],
    env: {},
    readTextFile: () => {
      throw new Deno.errors.NotFound("no .env");
    },
  });
  const exempt = parseCidrList(config.rateLimitExempt.map((c) => c.text).join(","));
  const allowed = parseCidrList(config.allowedClients.map((c) => c.text).join(","));
  for (const ip of ["100.64.1.2", "100.127.255.254", "fe80::1", "10.1.2.3", "127.0.0.1"]) {
    assert.ok(matchesAny(allowed, ip), `${ip} allowed`);
    assert.ok(matchesAny(exempt, ip), `${ip} is allowed to use the proxy but rate-limited`);
  }
  assert.ok(!matchesAny(exempt, "203.0.113.9"), "public clients stay limited");
});
