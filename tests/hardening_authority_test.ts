/**
 * Issue 11, item 6: one authority parser for every kind of request. A filter rule on an
 * address holds however the client spells it — decimal, octal, hex, shortened IPv4 or
 * IPv4-mapped IPv6 — for CONNECT as for absolute-form GET, and the tunnel never connects.
 */
import assert from "node:assert/strict";
import { canonicalHost, parseAuthority } from "../src/server/authority.ts";
import { normalizeHost, RuleTable } from "../src/filter/matcher.ts";
import { RuleBuilder } from "../src/filter/compile.ts";
import { createAddressPolicy, literalHostRefusal } from "../src/security/ssrf.ts";
import { ignoreUnless } from "./helpers/ignore.ts";
import { NETNS_REASON, netnsUsable, runOffLoopback } from "./helpers/netns.ts";
import { rawRequest } from "./helpers/rawhttp.ts";
import { startProxy } from "./helpers/proxy.ts";

/** Every spelling of 1.181.227.68 that the resolver (inet_aton) or WHATWG URL accepts. */
const SPELLINGS_OF_1_181_227_68 = [
  "1.181.227.68",
  "28697412",
  "0x1.0xb5.0xe3.0x44",
  "0x1b5e344",
  "0001.0265.0343.0104",
  "1.181.58180",
  "1.11920196",
  "1.181.227.68.",
  "[::ffff:1.181.227.68]",
  "[::ffff:1b5:e344]",
  "[0:0:0:0:0:ffff:1.181.227.68]",
];

Deno.test("parseAuthority: every IPv4 notation and IPv4-mapped IPv6 give the same host", () => {
  for (const h of SPELLINGS_OF_1_181_227_68) {
    assert.deepEqual(parseAuthority(`${h}:443`), { host: "1.181.227.68", port: 443 }, h);
  }
  assert.deepEqual(parseAuthority("127.1:8443"), { host: "127.0.0.1", port: 8443 });
  assert.deepEqual(parseAuthority("Example.COM.:443"), { host: "example.com", port: 443 });
  assert.deepEqual(parseAuthority("[::1]:443"), { host: "::1", port: 443 });
  assert.deepEqual(parseAuthority("[2001:DB8:0::1]:443"), { host: "2001:db8::1", port: 443 });
});

Deno.test("parseAuthority: malformed authorities are refused", () => {
  for (
    const t of [
      "::1:443", // IPv6 without brackets
      "[1.2.3.4]:443", // IPv4 in brackets
      "[::1]443",
      "[fe80::1%25eth0]:443", // zone ids never leave the host
      "4294967296:443", // ends in a number, but too big for IPv4
      "1.2.3.256:443",
      "example.123:443", // ends in a number that is not IPv4
      "user@host:443",
      "host:0",
      "host:65536",
      "host:",
      ":443",
      "a/b:443",
      "a%41:443",
    ]
  ) {
    assert.equal(parseAuthority(t), undefined, t);
  }
});

Deno.test("canonicalHost and the filter's normalizeHost agree with WHATWG URL", () => {
  for (const h of SPELLINGS_OF_1_181_227_68) {
    assert.equal(canonicalHost(h), "1.181.227.68", h);
    // What an absolute-form GET's URL gives the filter, brackets and all.
    const hostname = new URL(`http://${h}/`).hostname;
    assert.equal(normalizeHost(hostname), "1.181.227.68", hostname);
    assert.equal(normalizeHost(`${hostname}:8080`), "1.181.227.68", hostname);
  }
  assert.equal(normalizeHost("[::FFFF:7F00:2]"), "127.0.0.2");
  assert.equal(normalizeHost("::ffff:7f00:2"), "127.0.0.2");
  assert.equal(normalizeHost("Ads.Example.com."), "ads.example.com");
});

Deno.test("a rule on an address blocks every spelling of it; rules are canonical too", () => {
  const rules = new RuleBuilder();
  rules.addBlock("||1.181.227.68^", "custom");
  rules.addBlock("||0x7f.0.0.3^", "custom");
  const table = new RuleTable(rules.build());
  for (const h of SPELLINGS_OF_1_181_227_68) {
    assert.equal(table.match(h)?.rule, "||1.181.227.68^", h);
  }
  assert.equal(table.match("127.0.0.3")?.rule, "||0x7f.0.0.3^");
  assert.equal(table.match("1.181.227.69"), undefined);
});

Deno.test("the SSRF guard judges a canonical CONNECT host as the address it is", () => {
  const policy = createAddressPolicy({ allowPrivate: "none" });
  for (const t of ["2130706433:443", "0x7f.1:443", "0177.0.0.1:443", "[::ffff:127.0.0.1]:443"]) {
    const a = parseAuthority(t);
    assert.ok(a, t);
    assert.equal(a.host, "127.0.0.1", t);
    assert.match(literalHostRefusal(policy, a.host) ?? "", /loopback/, t);
  }
});

/** A TCP listener that counts the connections it accepts (there must be none). */
function countingListener(hostname: string) {
  const listener = Deno.listen({ hostname, port: 0 });
  let accepted = 0;
  (async () => {
    for await (const conn of listener) {
      accepted++;
      conn.close();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    accepted: () => accepted,
    close: () => listener.close(),
  };
}

Deno.test("CONNECT and GET to any spelling of a blocked address: 403 from the filter, never connected", async () => {
  // 127.0.0.2 stands in for a public address: traffic stays on loopback, and
  // FORWARD_ALLOW_PRIVATE=true leaves the filter as the only thing that can refuse.
  const target = countingListener("127.0.0.2");
  const dir = await Deno.makeTempDir();
  const list = `${dir}/blocked.txt`;
  await Deno.writeTextFile(list, "||127.0.0.2^\n");
  const proxy = await startProxy({
    env: {
      PROXY_MODE: "forward",
      FORWARD_ALLOW_PRIVATE: "true",
      FILTER_LISTS: list,
      CONNECT_PORTS: `443,${target.port}`,
    },
  });
  try {
    const spellings = [
      "127.0.0.2",
      "2130706434", // decimal
      "0x7f.0.0.2", // hex
      "0x7f000002",
      "0177.0.0.02", // octal
      "127.2", // shortened
      "127.0.2",
      "[::ffff:127.0.0.2]", // IPv4-mapped IPv6
      "[::ffff:7f00:2]",
    ];
    for (const host of spellings) {
      const authority = `${host}:${target.port}`;
      const c = await rawRequest(
        proxy.port,
        `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`,
      );
      assert.equal(c.status, 403, `CONNECT ${authority}: ${c.status} ${c.body}`);
      assert.match(c.body, /blocked by proxy filter.*\|\|127\.0\.0\.2\^/, `CONNECT ${authority}`);
      const g = await rawRequest(
        proxy.port,
        `GET http://${authority}/ HTTP/1.1\r\nHost: ${authority}\r\n\r\n`,
      );
      assert.equal(g.status, 403, `GET http://${authority}/: ${g.status} ${g.body}`);
      assert.equal(g.headers["x-filter"], "blocked; category=custom; rule=||127.0.0.2^");
    }
    assert.equal(target.accepted(), 0, "no connection reached the blocked address");
  } finally {
    await proxy.stop();
    target.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the SSRF guard's literal check reads any spelling of an address", () => {
  const policy = createAddressPolicy({ allowPrivate: "none" });
  for (const h of ["2130706433", "0x7f.1", "0177.0.0.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]"]) {
    assert.match(literalHostRefusal(policy, h) ?? "", /loopback/, h);
  }
  assert.equal(literalHostRefusal(policy, "example.com"), undefined);
});

const PUBLIC_TEST =
  "CONNECT 28697412:443 and 0x1.0xb5.0xe3.0x44:443 are refused by ||1.181.227.68^";
Deno.test({
  name: PUBLIC_TEST,
  // A public address: run where nothing can leave the machine, a private network namespace.
  ignore: ignoreUnless(PUBLIC_TEST, netnsUsable(), NETNS_REASON),
  async fn() {
    const seen = await runOffLoopback<Record<string, { status: number; body: string }>>(
      new URL("./helpers/hardening_public_connect.ts", import.meta.url),
    );
    assert.equal(Object.keys(seen).length, 12);
    for (const [request, r] of Object.entries(seen)) {
      assert.equal(r.status, 403, `${request}: ${r.status} ${r.body}`);
      assert.match(r.body, /blocked by proxy filter.*\|\|1\.181\.227\.68\^/, request);
    }
  },
});
