import assert from "node:assert/strict";
import { parseCidrList } from "./cidr.ts";
import { clientIpFrom, forwardedForValue } from "./forwarded.ts";

const trusted = parseCidrList("10.0.0.0/8, ::1/128");

Deno.test("an untrusted peer is the client, whatever X-Forwarded-For says", () => {
  assert.equal(clientIpFrom("198.51.100.1", "1.2.3.4", trusted), "198.51.100.1");
  assert.equal(clientIpFrom("198.51.100.1", null, trusted), "198.51.100.1");
  assert.equal(clientIpFrom("::ffff:198.51.100.1", "1.2.3.4", trusted), "198.51.100.1");
  // Replaced, not appended: the backend never sees the planted 1.2.3.4.
  assert.equal(forwardedForValue("198.51.100.1", "1.2.3.4", trusted), "198.51.100.1");
  assert.equal(forwardedForValue("198.51.100.1", null, trusted), "198.51.100.1");
});

Deno.test("behind trusted proxies the first untrusted hop from the right is the client", () => {
  assert.equal(clientIpFrom("10.0.0.2", "203.0.113.7", trusted), "203.0.113.7");
  // The client planted 6.6.6.6; the proxy chain appended the real address after it.
  assert.equal(clientIpFrom("10.0.0.2", "6.6.6.6, 203.0.113.7, 10.0.0.9", trusted), "203.0.113.7");
  assert.equal(clientIpFrom("::1", "[2001:db8::7]:4711", trusted), "2001:db8::7");
  assert.equal(clientIpFrom("10.0.0.2", "203.0.113.7:5555", trusted), "203.0.113.7");
  // All hops trusted: the leftmost is the best we know.
  assert.equal(clientIpFrom("10.0.0.2", "10.1.1.1, 10.2.2.2", trusted), "10.1.1.1");
  // Garbage stops the walk at the last hop we can believe.
  assert.equal(clientIpFrom("10.0.0.2", "1.1.1.1, garbage, 10.3.3.3", trusted), "10.3.3.3");
  assert.equal(clientIpFrom("10.0.0.2", "", trusted), "10.0.0.2");
  assert.equal(forwardedForValue("10.0.0.2", "203.0.113.7", trusted), "203.0.113.7, 10.0.0.2");
  assert.equal(forwardedForValue("10.0.0.2", "  ", trusted), "10.0.0.2");
});
