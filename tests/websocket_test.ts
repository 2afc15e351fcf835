/**
 * End-to-end: WebSockets through the reverse gateway are transparent (issue 12).
 * A real npm `ws` origin reports what reached it; the proxy relays bytes after
 * the backend's 101 and adds only what any proxied request gets.
 */
import assert from "node:assert/strict";
import { startProxy } from "./helpers/proxy.ts";
import { closedOf, nextMessage, openWs, startWsOrigin, until } from "./helpers/ws.ts";
import { dialTcp, freshPath, passThroughSuite, peerFor } from "./helpers/ws_suite.ts";

Deno.test("websocket through the reverse gateway", async (t) => {
  const origin = await startWsOrigin();
  const proxy = await startProxy({ env: { BACKEND_SERVERS: `http://127.0.0.1:${origin.port}` } });
  try {
    await passThroughSuite(t, {
      origin,
      url: (path) => `ws://127.0.0.1:${proxy.port}${path}`,
      client: {},
      dial: () => dialTcp(proxy.port),
      proxied: true,
      proto: "http",
    });

    await t.step("/proxy-stats and /metrics count open WebSockets and bytes each way", async () => {
      const before = (await proxy.stats()).websockets;
      assert.ok(before, "/proxy-stats has a websockets section");
      const path = freshPath("stats");
      const ws = await openWs(`ws://127.0.0.1:${proxy.port}${path}`, { perMessageDeflate: false });
      const peer = await peerFor(origin, path);
      await until(
        async () => (await proxy.stats()).websockets.open === before.open + 1,
        () => "open websockets never rose",
      );
      const echoed = nextMessage(ws);
      ws.send(new Uint8Array(100_000));
      await echoed;
      peer.socket.send(new Uint8Array(50_000));
      await nextMessage(ws);
      ws.close(1000);
      await closedOf(ws);
      let after = before;
      await until(async () => {
        after = (await proxy.stats()).websockets;
        return after.open === before.open;
      }, () => `open websockets stayed at ${after.open}`);
      assert.deepEqual(after.total, before.total + 1);
      const up = after.bytes_up - before.bytes_up, down = after.bytes_down - before.bytes_down;
      // Frame overhead and the close handshake add a little; no handshake head is counted.
      assert.ok(up >= 100_000 && up < 101_000, `bytes up ${up}`);
      assert.ok(down >= 150_000 && down < 151_000, `bytes down ${down}`);
      const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
      assert.match(metrics, /^proxy_open_websockets \d+$/m);
      assert.match(metrics, /^proxy_websockets_total \d+$/m);
      assert.match(metrics, /^proxy_websocket_bytes_total\{direction="up"\} \d+$/m);
      assert.match(metrics, /^proxy_websocket_bytes_total\{direction="down"\} \d+$/m);
    });
  } finally {
    await proxy.stop();
    await origin.close();
  }
});
