/**
 * End-to-end: WebSocket upgrades that fail or die never leave anything open
 * (issue 12, issue 11 item 1): refused upgrades answer with the backend's
 * status and close both sides, dead peers close the other side, and a
 * thousand concurrent sockets come and go with the proxy's descriptors back
 * where they were.
 */
import assert from "node:assert/strict";
import { closedPort } from "./helpers/ports.ts";
import { startProxy, type TestProxy } from "./helpers/proxy.ts";
import { rawRequest } from "./helpers/rawhttp.ts";
import {
  closedOf,
  nextMessage,
  openFds,
  openWs,
  startWsOrigin,
  until,
  type WebSocket,
  type WsOrigin,
} from "./helpers/ws.ts";
import { freshPath, peerFor } from "./helpers/ws_suite.ts";

const KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
const upgradeHead = (path: string, extra = "") =>
  `GET ${path} HTTP/1.1\r\nHost: app.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `${extra}\r\n`;

/** Waits until the proxy's descriptors and the origin's connections are back to a baseline. */
async function settled(proxy: TestProxy, origin: WsOrigin, fds: number, conns: number) {
  const pid = proxy.process.pid;
  await until(
    () => origin.openConnections() <= conns && openFds(pid) <= fds + 2,
    () =>
      `origin connections ${origin.openConnections()} (was ${conns}), ` +
      `proxy fds ${openFds(pid)} (was ${fds})`,
  );
}

Deno.test("websocket faults: refusals, timeouts, dying peers, 1,000 sockets", async (t) => {
  const origin = await startWsOrigin();
  const proxy = await startProxy({
    env: { BACKEND_SERVERS: `http://127.0.0.1:${origin.port}`, CONNECTION_TIMEOUT: "2" },
  });
  const pid = proxy.process.pid;
  try {
    // One socket first, so whatever the proxy opens lazily is part of the baseline.
    const warm = await openWs(`ws://127.0.0.1:${proxy.port}${freshPath("warm")}`);
    warm.close();
    await closedOf(warm);
    await until(() => origin.openConnections() === 0, () => "the warm-up socket stayed open");
    const fds = openFds(pid);

    await t.step(
      "300 refused upgrades: the backend's answer reaches the client, nothing stays open",
      async () => {
        for (let batch = 0; batch < 10; batch++) {
          const answers = await Promise.all(
            Array.from({ length: 30 }, () =>
              // No Sec-WebSocket-Key: the origin refuses with 403 and keeps its connection open.
              rawRequest(proxy.port, upgradeHead("/chat"), {
                waitForClose: true,
                timeoutMs: 10_000,
              })),
          );
          for (const r of answers) {
            assert.equal(r.status, 403, r.raw.slice(0, 200));
            assert.equal(r.body, "refused by the origin\n");
            assert.equal(r.headers["x-origin"], "refused");
            assert.ok(r.closed, "the proxy closes the client connection after a refused upgrade");
          }
        }
        assert.equal(origin.refused, 300);
        await settled(proxy, origin, fds, 0);
      },
    );

    await t.step("a backend that never answers: 504, both sides closed", async () => {
      const r = await rawRequest(proxy.port, upgradeHead("/hang", KEY), {
        waitForClose: true,
        timeoutMs: 10_000,
      });
      assert.equal(r.status, 504);
      assert.ok(r.closed);
      await settled(proxy, origin, fds, 0);
    });

    await t.step("the backend dying mid-stream closes the client's socket", async () => {
      const path = freshPath("backend-dies");
      const ws = await openWs(`ws://127.0.0.1:${proxy.port}${path}`);
      const peer = await peerFor(origin, path);
      const echoed = nextMessage(ws);
      ws.send("still there?");
      await echoed;
      const closed = closedOf(ws);
      peer.socket.terminate(); // TCP gone without a close frame
      assert.equal((await closed).code, 1006);
      await settled(proxy, origin, fds, 0);
    });

    await t.step("the client dying mid-stream closes the backend's socket", async () => {
      const path = freshPath("client-dies");
      const ws = await openWs(`ws://127.0.0.1:${proxy.port}${path}`);
      const peer = await peerFor(origin, path);
      ws.terminate();
      assert.equal((await peer.closed).code, 1006);
      await settled(proxy, origin, fds, 0);
    });

    await t.step("1,000 concurrent sockets open, echo and close", async () => {
      const sockets: WebSocket[] = [];
      for (let batch = 0; batch < 10; batch++) {
        sockets.push(
          ...await Promise.all(
            Array.from(
              { length: 100 },
              () =>
                openWs(`ws://127.0.0.1:${proxy.port}${freshPath("many")}`, {
                  perMessageDeflate: false,
                }),
            ),
          ),
        );
      }
      assert.equal(origin.openConnections(), 1000);
      const stats = await proxy.stats();
      assert.equal(stats.websockets?.open, 1000, "all 1,000 counted as open");
      await Promise.all(sockets.map(async (ws, i) => {
        const echoed = nextMessage(ws);
        ws.send(`message ${i}`);
        assert.equal(new TextDecoder().decode((await echoed).data), `message ${i}`);
      }));
      await Promise.all(sockets.map((ws) => {
        const closed = closedOf(ws);
        ws.close(1000);
        return closed;
      }));
      await settled(proxy, origin, fds, 0);
      await until(
        async () => (await proxy.stats()).websockets?.open === 0,
        () => "open websockets never returned to 0",
      );
    });
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("websocket to a backend that is down: 502 and nothing left open", async () => {
  const proxy = await startProxy({ env: { BACKEND_SERVERS: `http://127.0.0.1:${closedPort()}` } });
  try {
    const r = await rawRequest(proxy.port, upgradeHead("/chat", KEY), {
      waitForClose: true,
      timeoutMs: 10_000,
    });
    assert.equal(r.status, 502);
    assert.ok(r.closed, "the client connection is closed");
  } finally {
    await proxy.stop();
  }
});
