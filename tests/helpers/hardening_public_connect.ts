/**
 * Scenario for tests/hardening_authority_test.ts, run inside a private network namespace
 * (tests/helpers/netns.ts) where nothing but loopback exists: CONNECT and GET to every
 * spelling of the *public* address 1.181.227.68 against the rule `||1.181.227.68^`.
 * Prints one JSON line: the status and body head of each request.
 */
import { rawRequest } from "./rawhttp.ts";
import { startProxy } from "./proxy.ts";

const dir = await Deno.makeTempDir();
const list = `${dir}/blocked.txt`;
await Deno.writeTextFile(list, "||1.181.227.68^\n");
const proxy = await startProxy({ env: { PROXY_MODE: "forward", FILTER_LISTS: list } });
const seen: Record<string, { status: number; body: string }> = {};
try {
  for (
    const host of [
      "1.181.227.68",
      "28697412",
      "0x1.0xb5.0xe3.0x44",
      "0001.0265.0343.0104",
      "1.11920196",
      "[::ffff:1.181.227.68]",
    ]
  ) {
    for (
      const [label, bytes] of [
        [`CONNECT ${host}:443`, `CONNECT ${host}:443 HTTP/1.1\r\nHost: ${host}:443\r\n\r\n`],
        [`GET http://${host}/`, `GET http://${host}/ HTTP/1.1\r\nHost: ${host}\r\n\r\n`],
      ]
    ) {
      const r = await rawRequest(proxy.port, bytes);
      seen[label] = { status: r.status, body: r.body.slice(0, 120) };
    }
  }
} finally {
  await proxy.stop();
  await Deno.remove(dir, { recursive: true });
}
console.log(JSON.stringify(seen));
