/** End-to-end: HTTPS through the proxy with CONNECT tunnels (curl -p -x, fetch with a proxy). */
import assert from "node:assert/strict";
import { curl, proxiedClient } from "./helpers/http.ts";
import { rawRequest } from "./helpers/rawhttp.ts";
import { startProxy } from "./helpers/proxy.ts";
import { startTlsOrigin, TEST_CA, TEST_CA_PATH } from "./helpers/tls.ts";

Deno.test("CONNECT: curl -p -x reaches a TLS origin and the tunnel's bytes are counted", async () => {
  const origin = startTlsOrigin();
  const proxy = await startProxy({
    env: { FORWARD_ALLOW_PRIVATE: "true", CONNECT_PORTS: `443,${origin.port}` },
  });
  try {
    const r = await curl("-p", "-x", proxy.url, "--cacert", TEST_CA_PATH, `${origin.url}/`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "secret over tls");
    // HTTPS_PROXY-style fetch: also a CONNECT tunnel.
    const client = proxiedClient(proxy.url, [TEST_CA]);
    const res = await fetch(`${origin.url}/`, { client });
    assert.equal(await res.text(), "secret over tls");
    client.close();
    let stats = await proxy.stats();
    for (let i = 0; i < 50 && stats.open_tunnels > 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      stats = await proxy.stats();
    }
    assert.equal(stats.tunnels.total, 2);
    assert.equal(stats.open_tunnels, 0);
    assert.ok(stats.tunnels.bytes_up > 300 && stats.tunnels.bytes_down > 300);
    assert.ok(stats.bytes_transferred >= stats.tunnels.bytes_up + stats.tunnels.bytes_down);
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("CONNECT only to CONNECT_PORTS: others get 403 naming the setting", async () => {
  const origin = startTlsOrigin();
  const proxy = await startProxy({ env: { FORWARD_ALLOW_PRIVATE: "true" } });
  try {
    const r = await rawRequest(
      proxy.port,
      `CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    assert.equal(r.status, 403);
    assert.match(r.body, /CONNECT_PORTS/);
  } finally {
    await proxy.stop();
    await origin.close();
  }
});
