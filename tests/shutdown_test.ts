/**
 * Graceful shutdown of the gateway (reverse mode): SIGTERM lets in-flight requests finish,
 * refuses new connections, does not wait for idle keep-alive clients, and cuts what is still
 * running after SHUTDOWN_TIMEOUT.
 */
import assert from "node:assert/strict";
import { startTestBackend, type TestBackend } from "./helpers/backend.ts";
import { openRaw } from "./helpers/rawhttp.ts";
import { startProxy } from "./helpers/proxy.ts";

/** Polls until the backend has received `n` requests for `path` (no sleeping on a guess). */
async function arrived(backend: TestBackend, path: string, n: number, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while ((await backend.stats()).paths[path] !== n) {
    if (Date.now() > deadline) throw new Error(`${n} requests for ${path} never arrived`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("reverse mode: SIGTERM drains in-flight requests, then exits 0 and refuses new ones", async () => {
  const backend = await startTestBackend("b");
  const proxy = await startProxy({ env: { BACKEND_SERVERS: backend.url, SHUTDOWN_TIMEOUT: "20" } });
  try {
    const inflight = Array.from(
      { length: 5 },
      () =>
        fetch(`${proxy.url}/delay/1500`).then(async (r) => ({
          status: r.status,
          body: await r.text(),
        })),
    );
    await arrived(backend, "/delay/1500", 5);
    const code = await proxy.signal("SIGTERM");
    const done = await Promise.all(inflight);
    assert.equal(code, 0, proxy.output());
    for (const d of done) assert.equal(d.status, 200);
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: proxy.port }));
  } finally {
    await proxy.stop();
    await backend.close();
  }
});

Deno.test("reverse mode: an idle keep-alive client does not hold up shutdown", async () => {
  const backend = await startTestBackend("b");
  const proxy = await startProxy({ env: { BACKEND_SERVERS: backend.url, SHUTDOWN_TIMEOUT: "20" } });
  const idle = await openRaw(proxy.port);
  try {
    await idle.write(`GET /json HTTP/1.1\r\nHost: x\r\n\r\n`);
    const res = await idle.response();
    assert.equal(res.status, 200);
    const started = Date.now();
    const code = await proxy.signal("SIGTERM");
    const ms = Date.now() - started;
    assert.equal(code, 0, proxy.output());
    assert.ok(ms < 5_000, `exit took ${ms} ms with SHUTDOWN_TIMEOUT=20 s and one idle client`);
  } finally {
    idle.close();
    await proxy.stop();
    await backend.close();
  }
});

Deno.test("reverse mode: a connection that never sent a request does not hold up shutdown", async () => {
  const backend = await startTestBackend("b");
  const proxy = await startProxy({ env: { BACKEND_SERVERS: backend.url, SHUTDOWN_TIMEOUT: "20" } });
  // One per serving thread and more: whichever thread accepted them, none may wait for a head.
  const silent = await Promise.all(Array.from({ length: 4 }, () => openRaw(proxy.port)));
  try {
    // The connections are accepted (counted open) before the signal, not still in the backlog.
    const deadline = Date.now() + 10_000;
    while ((await proxy.stats()).client_connections < 5) {
      assert.ok(Date.now() < deadline, "the silent connections were never accepted");
      await new Promise((r) => setTimeout(r, 50));
    }
    const started = Date.now();
    const code = await proxy.signal("SIGTERM");
    const ms = Date.now() - started;
    assert.equal(code, 0, proxy.output());
    assert.ok(ms < 5_000, `exit took ${ms} ms with SHUTDOWN_TIMEOUT=20 s and silent clients`);
  } finally {
    for (const c of silent) c.close();
    await proxy.stop();
    await backend.close();
  }
});

Deno.test("reverse mode: requests still running after SHUTDOWN_TIMEOUT are cut and the proxy exits", async () => {
  const backend = await startTestBackend("b");
  const proxy = await startProxy({ env: { BACKEND_SERVERS: backend.url, SHUTDOWN_TIMEOUT: "1" } });
  try {
    const slow = Array.from({ length: 2 }, () =>
      fetch(`${proxy.url}/delay/15000`).then(
        async (r) => ({ status: r.status, body: await r.text() }),
        (err) => ({ status: 0, body: String(err) }),
      ));
    await arrived(backend, "/delay/15000", 2);
    const started = Date.now();
    const code = await proxy.signal("SIGTERM");
    const ms = Date.now() - started;
    assert.equal(code, 0, proxy.output());
    assert.ok(ms >= 900, `exited after ${ms} ms: before SHUTDOWN_TIMEOUT (1 s)`);
    assert.ok(ms < 6_000, `exited after ${ms} ms: SHUTDOWN_TIMEOUT (1 s) was not applied`);
    for (const r of await Promise.all(slow)) {
      assert.notEqual(r.status, 200, "a cut request must not look complete");
    }
  } finally {
    await proxy.stop();
    await backend.close();
  }
});
