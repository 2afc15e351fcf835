/**
 * End-to-end: the WebSocket pass-through checks hold on every way in —
 * `PROXY_MODE=both`, `wss://` through the TLS listener, and a CONNECT tunnel
 * in forward mode (a plain tunnel: the proxy adds nothing).
 */
import { startProxy } from "./helpers/proxy.ts";
import { TEST_CA, TEST_CERT_PATH, TEST_KEY_PATH } from "./helpers/tls.ts";
import { startWsOrigin } from "./helpers/ws.ts";
import { dialTcp, dialTls, dialTunnel, passThroughSuite } from "./helpers/ws_suite.ts";

Deno.test("websocket through PROXY_MODE=both", async (t) => {
  const origin = await startWsOrigin();
  const proxy = await startProxy({
    env: { PROXY_MODE: "both", BACKEND_SERVERS: `http://127.0.0.1:${origin.port}` },
  });
  try {
    await passThroughSuite(t, {
      origin,
      url: (path) => `ws://127.0.0.1:${proxy.port}${path}`,
      client: {},
      dial: () => dialTcp(proxy.port),
      proxied: true,
      proto: "http",
    });
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("wss:// through the TLS listener", async (t) => {
  const origin = await startWsOrigin();
  const proxy = await startProxy({
    env: {
      BACKEND_SERVERS: `http://127.0.0.1:${origin.port}`,
      TLS_CERT: TEST_CERT_PATH,
      TLS_KEY: TEST_KEY_PATH,
    },
  });
  try {
    await passThroughSuite(t, {
      origin,
      url: (path) => `wss://localhost:${proxy.port}${path}`,
      client: { ca: TEST_CA },
      dial: () => dialTls(proxy.port, TEST_CA),
      proxied: true,
      proto: "https",
    });
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("websocket through a CONNECT tunnel in forward mode", async (t) => {
  const origin = await startWsOrigin();
  const proxy = await startProxy({
    env: {
      PROXY_MODE: "forward",
      FORWARD_ALLOW_PRIVATE: "true",
      CONNECT_PORTS: String(origin.port),
    },
  });
  const authority = `127.0.0.1:${origin.port}`;
  try {
    await passThroughSuite(t, {
      origin,
      url: (path) => `ws://${authority}${path}`,
      client: { connectVia: proxy.port },
      dial: () => dialTunnel(proxy.port, authority),
      proxied: false,
      proto: "http",
    });
  } finally {
    await proxy.stop();
    await origin.close();
  }
});
