/** End-to-end: the proxy as a gateway in front of BACKEND_SERVERS. */
import assert from "node:assert/strict";
import { startTestBackend } from "./helpers/backend.ts";
import { curl } from "./helpers/http.ts";
import { closedPort } from "./helpers/ports.ts";
import { startProxy } from "./helpers/proxy.ts";

Deno.test("reverse proxy: round-robin across two backends, client Host reaches them", async () => {
  const a = await startTestBackend("a");
  const b = await startTestBackend("b");
  const proxy = await startProxy({ env: { BACKEND_SERVERS: `${a.url},${b.url}` } });
  try {
    const served: string[] = [];
    for (let i = 0; i < 10; i++) {
      // fetch does not let a script set Host; curl does.
      const r = await curl("-i", "-H", "Host: site.example", `${proxy.url}/headers`);
      served.push(/^x-backend: (\S+)/im.exec(r.stdout)![1]);
      const seen = JSON.parse(r.stdout.slice(r.stdout.indexOf("\r\n\r\n") + 4));
      const headers = Object.fromEntries(
        Object.entries(seen.headers ?? seen).map(([k, v]) => [k.toLowerCase(), v]),
      );
      assert.equal(headers["host"], "site.example");
      assert.equal(headers["x-forwarded-host"], "site.example");
    }
    assert.deepEqual(served.filter((n) => n === "a").length, 5);
    assert.deepEqual(served.filter((n) => n === "b").length, 5);
    for (let i = 1; i < served.length; i++) assert.notEqual(served[i], served[i - 1]);
    const stats = await proxy.stats();
    assert.equal(stats.mode, "reverse");
    const text = JSON.stringify(stats);
    assert.match(text, new RegExp(a.url.replace(/[/.]/g, "\\$&")));
  } finally {
    await proxy.stop();
    await a.close();
    await b.close();
  }
});

Deno.test("reverse proxy: 502 with a clear body when no backend is reachable", async () => {
  const proxy = await startProxy({
    env: { BACKEND_SERVERS: `http://127.0.0.1:${closedPort()},http://127.0.0.1:${closedPort()}` },
  });
  try {
    const res = await fetch(`${proxy.url}/json`);
    assert.ok(res.status === 502 || res.status === 503, String(res.status));
    assert.match(await res.text(), /backend/i);
  } finally {
    await proxy.stop();
  }
});

Deno.test("forward mode without backends: origin-form requests get 502 naming BACKEND_SERVERS", async () => {
  const proxy = await startProxy();
  try {
    const r = await curl("-i", `${proxy.url}/some/page`);
    assert.match(r.stdout, /^HTTP\/1\.1 502/);
    assert.match(r.stdout, /BACKEND_SERVERS/);
    const health = await (await fetch(`${proxy.url}/healthz`)).json();
    assert.equal(health.mode, "forward");
    assert.equal(health.status, "ok");
  } finally {
    await proxy.stop();
  }
});

Deno.test("a bad setting stops start-up with one line naming it", async () => {
  const proxy = await startProxy({ env: { PORT: "not-a-port" }, expectExit: true });
  const code = await proxy.signal("SIGTERM");
  assert.equal(code, 2);
  const lines = proxy.output().trim().split("\n");
  assert.equal(lines.length, 1, proxy.output());
  assert.match(lines[0], /PORT: invalid value "not-a-port"/);
});

/** Opens a WebSocket through the proxy to the backend's /ws echo and checks one message. */
async function echoThroughProxy(env: Record<string, string>, message: string) {
  const backend = await startTestBackend("a");
  const proxy = await startProxy({ env: { BACKEND_SERVERS: backend.url, ...env } });
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/ws`);
    const echoed = await new Promise<string>((resolve, reject) => {
      ws.onopen = () => ws.send(message);
      ws.onmessage = (e) => resolve(String(e.data));
      ws.onerror = () => reject(new Error("websocket failed"));
      setTimeout(() => reject(new Error("no echo within 10 s")), 10_000);
    });
    assert.equal(echoed, message);
    const closed = new Promise((r) => ws.onclose = r);
    ws.close();
    await closed;
  } finally {
    await proxy.stop();
    await backend.close();
  }
}

Deno.test("reverse proxy: WebSocket upgrades pass through to a backend", () =>
  echoThroughProxy({}, "hello through the proxy"));

Deno.test("both mode (node:http): WebSocket upgrades pass through to a backend too", () =>
  echoThroughProxy({ PROXY_MODE: "both" }, "hello over node:http"));
