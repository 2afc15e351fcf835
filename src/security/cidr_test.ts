import assert from "node:assert/strict";
import {
  type AddressClass,
  cidrContains,
  classifyAddress,
  formatIp,
  matchesAny,
  parseCidr,
  parseCidrList,
  parseIp,
} from "./cidr.ts";

Deno.test("parseIp accepts IPv4, IPv6, brackets, zones and IPv4-mapped forms", () => {
  assert.deepEqual(parseIp("1.2.3.4"), { family: 4, value: 0x01020304n });
  assert.deepEqual(parseIp("::1"), { family: 6, value: 1n });
  assert.deepEqual(parseIp("[::1]"), { family: 6, value: 1n });
  assert.deepEqual(parseIp("fe80::1%eth0"), { family: 6, value: (0xfe80n << 112n) | 1n });
  // IPv4-mapped IPv6 is the IPv4 address, in both spellings.
  assert.deepEqual(parseIp("::ffff:127.0.0.1"), { family: 4, value: 0x7f000001n });
  assert.deepEqual(parseIp("::ffff:7f00:1"), { family: 4, value: 0x7f000001n });
  assert.equal(formatIp(parseIp("2001:db8:0:0:1:0:0:1")!), "2001:db8::1:0:0:1");
  assert.equal(formatIp(parseIp("1:0:0:0:0:0:0:0")!), "1::");
  assert.equal(formatIp(parseIp("::")!), "::");
  assert.equal(formatIp(parseIp("10.0.0.255")!), "10.0.0.255");
});

Deno.test("parseIp rejects ambiguous and malformed input", () => {
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "01.2.3.4", // octal-looking: a known SSRF filter bypass
      "0x7f.0.0.1",
      "2130706433", // decimal form of 127.0.0.1
      "1.2.3.-4",
      ":::",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "12345::",
      "::ffff:1.2.3.256",
      "localhost",
      "g::1",
    ]
  ) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});

Deno.test("CIDR matching at block edges, across families and for mapped addresses", () => {
  const c = parseCidr("10.1.0.0/16");
  assert.ok(cidrContains(c, "10.1.0.0"));
  assert.ok(cidrContains(c, "10.1.255.255"));
  assert.ok(!cidrContains(c, "10.2.0.0"));
  assert.ok(!cidrContains(c, "10.0.255.255"));
  assert.ok(cidrContains(c, "::ffff:10.1.2.3"));
  assert.ok(!cidrContains(c, "::a01:203")); // IPv4-compatible is not IPv4-mapped
  assert.ok(cidrContains(parseCidr("0.0.0.0/0"), "255.255.255.255"));
  assert.ok(!cidrContains(parseCidr("0.0.0.0/0"), "::1"));
  assert.ok(cidrContains(parseCidr("::/0"), "2001:db8::1"));
  assert.ok(cidrContains(parseCidr("fd00::/8"), "fdff:ffff::1"));
  assert.ok(!cidrContains(parseCidr("fd00::/8"), "fc00::1"));
  assert.ok(cidrContains(parseCidr("1.2.3.4"), "1.2.3.4"));
  assert.ok(!cidrContains(parseCidr("1.2.3.4"), "1.2.3.5"));
  assert.ok(cidrContains(parseCidr("::ffff:10.0.0.0/104"), "10.255.1.1"));
  assert.equal(parseCidr("::ffff:10.0.0.0/104").bits, 8);
  assert.ok(!cidrContains(c, "not-an-ip"));
});

Deno.test("parseCidrList splits on commas and spaces and names every bad entry", () => {
  const list = parseCidrList(" 127.0.0.0/8, ::1/128  192.168.0.0/16,", "RATE_LIMIT_EXEMPT");
  assert.equal(list.length, 3);
  assert.ok(matchesAny(list, "::ffff:127.0.0.9"));
  assert.ok(matchesAny(list, "::1"));
  assert.ok(!matchesAny(list, "8.8.8.8"));
  assert.deepEqual(parseCidrList(""), []);
  assert.throws(
    () => parseCidrList("10.0.0.0/8,10.0.0.1/8,1.2.3.4/33,bogus", "ALLOWED_CLIENTS"),
    (e: Error) => {
      assert.match(e.message, /^ALLOWED_CLIENTS: /);
      assert.match(e.message, /did you mean 10\.0\.0\.0\/8/);
      assert.match(e.message, /at most \/32/);
      assert.match(e.message, /"bogus" is not an IP address/);
      return true;
    },
  );
});

Deno.test("classifyAddress follows the special-purpose registries", () => {
  const table: [string, AddressClass][] = [
    ["0.0.0.0", "unspecified"],
    ["0.1.2.3", "reserved"],
    ["10.0.0.1", "private"],
    ["100.64.0.1", "cgnat"],
    ["100.127.255.255", "cgnat"],
    ["100.128.0.0", "public"],
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["169.254.169.254", "link-local"],
    ["172.15.255.255", "public"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["172.32.0.0", "public"],
    ["192.0.0.8", "reserved"],
    ["192.0.2.1", "documentation"],
    ["192.168.1.1", "private"],
    ["198.18.0.1", "benchmarking"],
    ["198.19.255.255", "benchmarking"],
    ["198.51.100.7", "documentation"],
    ["203.0.113.9", "documentation"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["240.0.0.1", "reserved"],
    ["255.255.255.255", "broadcast"],
    ["8.8.8.8", "public"],
    ["1.1.1.1", "public"],
    ["::", "unspecified"],
    ["::1", "loopback"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:169.254.169.254", "link-local"],
    ["::ffff:8.8.8.8", "public"],
    ["64:ff9b::7f00:1", "loopback"], // NAT64 to 127.0.0.1
    ["64:ff9b::808:808", "public"],
    ["2002:7f00:1::", "loopback"], // 6to4 of 127.0.0.1
    ["2002:a00:1::1", "private"],
    ["::127.0.0.1", "reserved"], // deprecated IPv4-compatible
    ["fc00::1", "private"],
    ["fd12:3456::1", "private"],
    ["fe80::1", "link-local"],
    ["febf::1", "link-local"],
    ["fec0::1", "private"],
    ["ff02::1", "multicast"],
    ["2001:db8::1", "documentation"],
    ["2001::1", "reserved"],
    ["100::1", "reserved"],
    ["2606:4700:4700::1111", "public"],
    ["2a00:1450:4001::200e", "public"],
    ["4000::1", "reserved"], // outside 2000::/3: unallocated
    ["not-an-ip", "reserved"],
  ];
  for (const [ip, cls] of table) assert.equal(classifyAddress(ip), cls, ip);
});
