import assert from "node:assert/strict";
import { parseCidrList } from "./cidr.ts";
import {
  checkConnectPort,
  createAddressPolicy,
  createHostnameCheck,
  literalHostRefusal,
  parseAllowPrivate,
  parseConnectPorts,
} from "./ssrf.ts";

Deno.test("default policy refuses every non-public destination, naming the host and class", () => {
  const policy = createAddressPolicy({ allowPrivate: "none" });
  for (
    const ip of [
      "127.0.0.1",
      "::1",
      "::ffff:127.0.0.1",
      "0.0.0.0",
      "::",
      "10.1.2.3",
      "192.168.0.1",
      "172.20.0.1",
      "169.254.169.254",
      "fe80::1",
      "fd00::1",
      "224.0.0.1",
      "ff02::1",
      "100.64.0.1",
      "255.255.255.255",
      "240.0.0.1",
      "64:ff9b::a9fe:a9fe", // NAT64 of the metadata address
    ]
  ) {
    assert.ok(policy(ip, "evil.example"), `${ip} should be refused`);
  }
  assert.match(
    policy("169.254.169.254", "metadata.example")!,
    /metadata\.example \(169\.254\.169\.254\) is a link-local address.*FORWARD_ALLOW_PRIVATE/,
  );
  assert.match(policy("127.0.0.1", "localhost")!, /loopback/);
  assert.equal(policy("93.184.215.14", "example.com"), undefined);
  assert.equal(policy("2606:4700:4700::1111"), undefined);
  assert.match(policy("not-an-ip")!, /not an IP address/);
});

Deno.test("FORWARD_ALLOW_PRIVATE as a CIDR list opens exactly those blocks", () => {
  const policy = createAddressPolicy({ allowPrivate: parseCidrList("10.0.0.0/8, fd00::/8") });
  assert.equal(policy("10.9.8.7"), undefined);
  assert.equal(policy("fd00::5"), undefined);
  assert.ok(policy("192.168.1.1"));
  assert.ok(policy("127.0.0.1"));
  assert.ok(policy("169.254.169.254"));
  const all = createAddressPolicy({ allowPrivate: "all" });
  assert.equal(all("127.0.0.1"), undefined);
  assert.equal(all("169.254.169.254"), undefined);
});

Deno.test("parseAllowPrivate and parseConnectPorts read settings and name bad values", () => {
  assert.equal(parseAllowPrivate(""), "none");
  assert.equal(parseAllowPrivate("false"), "none");
  assert.equal(parseAllowPrivate("ALL"), "all");
  assert.equal((parseAllowPrivate("10.0.0.0/8") as unknown[]).length, 1);
  assert.throws(() => parseAllowPrivate("10.0.0.0/88"), /^Error: FORWARD_ALLOW_PRIVATE: /);
  assert.deepEqual(parseConnectPorts("443, 8443"), [443, 8443]);
  assert.deepEqual(parseConnectPorts("8000-8002"), [8000, 8001, 8002]);
  assert.equal(parseConnectPorts("*"), "*");
  assert.throws(() => parseConnectPorts("443,https"), /CONNECT_PORTS: "https"/);
  assert.throws(() => parseConnectPorts("70000"), /CONNECT_PORTS/);
  assert.equal(checkConnectPort(443, [443, 8443]), undefined);
  assert.match(checkConnectPort(22, [443, 8443])!, /port 22 is refused; allowed ports: 443,8443/);
  assert.equal(checkConnectPort(22, "*"), undefined);
});

Deno.test("literalHostRefusal refuses internal IP literals before any connection, not names", () => {
  const policy = createAddressPolicy({ allowPrivate: "none" });
  assert.match(literalHostRefusal(policy, "10.0.0.1")!, /private/);
  assert.match(literalHostRefusal(policy, "[::1]")!, /loopback/);
  assert.match(literalHostRefusal(policy, "[::ffff:169.254.169.254]")!, /link-local/);
  assert.equal(literalHostRefusal(policy, "8.8.8.8"), undefined);
  assert.equal(literalHostRefusal(policy, "localhost"), undefined); // checked once connected
});

Deno.test("createHostnameCheck refuses names resolving to internal addresses, cached per name", async () => {
  const policy = createAddressPolicy({ allowPrivate: "none" });
  const lookups: string[] = [];
  const table: Record<string, string[]> = {
    "internal.test": ["10.0.0.7"],
    "mixed.test": ["93.184.215.14", "127.0.0.1"], // one bad answer is enough to refuse
    "public.test": ["93.184.215.14"],
  };
  let clock = 0;
  const check = createHostnameCheck(policy, {
    ttlMs: 1_000,
    now: () => clock,
    lookup: (name) => {
      lookups.push(name);
      const found = table[name];
      return found ? Promise.resolve(found) : Promise.reject(new Error("ENOTFOUND"));
    },
  });
  assert.match(
    (await check("internal.test"))!,
    /internal\.test \(10\.0\.0\.7\) is a private address/,
  );
  assert.match((await check("MIXED.test"))!, /loopback/);
  assert.equal(await check("public.test"), undefined);
  assert.equal(await check("nowhere.test"), undefined);
  assert.match((await check("169.254.169.254"))!, /link-local/);
  assert.equal(await check("8.8.8.8"), undefined);
  assert.deepEqual(lookups, ["internal.test", "mixed.test", "public.test", "nowhere.test"]);
  await check("internal.test");
  assert.equal(lookups.length, 4, "cached verdict reused");
  clock = 2_000;
  await check("internal.test");
  assert.equal(lookups.length, 5, "expired verdict looked up again");
  // The real resolver honours /etc/hosts: localhost is loopback.
  const real = createHostnameCheck(policy);
  assert.match((await real("localhost"))!, /loopback/);
});
