/**
 * The one request pipeline, end to end over real sockets: every kind of
 * request (HTTP, cache hits, upgrades, CONNECT) meets the same phases on
 * every listener; the cache key and what reaches the backend agree; request
 * ids go upstream, come back and reach the access log.
 */
import assert from "node:assert/strict";
import { startProxy, type TestProxy } from "./helpers/proxy.ts";
import { rawRequest } from "./helpers/rawhttp.ts";

/** A backend that names the Host and X-Request-Id it got, cacheable for a minute; 101 for WebSocket. */
function hostEchoBackend() {
  const seen: { host: string | null; id: string | null }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    seen.push({ host: req.headers.get("host"), id: req.headers.get("x-request-id") });
    if (req.headers.get("upgrade")?.toLowerCase() === "websocket") {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onmessage = (e) => socket.send(e.data);
      return response;
    }
    return new Response(`host=${req.headers.get("host")}`, {
      headers: { "cache-control": "max-age=60", "content-type": "text/plain" },
    });
  });
  return { server, seen, url: `http://127.0.0.1:${server.addr.port}` };
}

async function withProxy(
  env: Record<string, string>,
  fn: (proxy: TestProxy, backend: ReturnType<typeof hostEchoBackend>) => Promise<void>,
) {
  const backend = hostEchoBackend();
  const proxy = await startProxy({ env: { BACKEND_SERVERS: backend.url, ...env } });
  try {
    await fn(proxy, backend);
  } finally {
    await proxy.stop();
    await backend.server.shutdown();
  }
}

Deno.test("reverse mode: an absolute-form request with another Host is never keyed one way and forwarded another", async () => {
  await withProxy({ PROXY_MODE: "reverse", CACHE_BACKEND: "memory" }, async (proxy, backend) => {
    const poison = await rawRequest(
      proxy.port,
      `GET http://127.0.0.1:${proxy.port}/x HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n`,
    );
    // Served for the request-target's authority (RFC 9112 §3.2.2), or refused: never for the Host field.
    if (poison.status === 200) assert.equal(poison.body, `host=127.0.0.1:${proxy.port}`);
    else assert.ok(poison.status >= 400 && poison.status < 500, `status ${poison.status}`);
    assert.ok(
      !backend.seen.some((s) => s.host === "attacker.example"),
      "backend saw the attacker's Host",
    );
    const later = await fetch(`${proxy.url}/x`);
    assert.equal(await later.text(), `host=127.0.0.1:${proxy.port}`);
  });
});
