/**
 * The listener's timeouts against a real proxy process over raw sockets:
 * idle and dribbling heads (HEADER_TIMEOUT), idle keep-alive connections
 * (KEEPALIVE_TIMEOUT), stalled and trickling bodies (BODY_TIMEOUT,
 * BODY_MIN_RATE → 408), and slow uploaders that must not hold admission
 * slots (REQUEST_BUFFER_SIZE). Bounds are tight (timeout + 2.5 s), not the
 * 45 s a missing timeout would also pass.
 */
import assert from "node:assert/strict";
import { startTestBackend } from "./helpers/backend.ts";
import { startProxy } from "./helpers/proxy.ts";
import { openRaw, type RawConnection } from "./helpers/rawhttp.ts";
import { TEST_CA_PATH, TEST_CERT_PATH, TEST_KEY_PATH } from "./helpers/tls.ts";
import { ignoreUnless } from "./helpers/ignore.ts";

const CRLF = "\r\n";
/** Slack for a loaded 2-core machine: the sweep's tick, scheduling, process start-up. */
const SLACK_MS = 2500;

/** Waits until the server closes `c`; returns the answer and how long it took. */
async function untilClosed(c: RawConnection, limitMs: number) {
  const t0 = performance.now();
  const r = await c.response({ timeoutMs: limitMs, waitForClose: true });
  return { ...r, ms: performance.now() - t0 };
}

Deno.test("HEADER_TIMEOUT cuts idle connections and dribbled heads within the timeout", async () => {
  const backend = await startTestBackend("t");
  const proxy = await startProxy({ env: { BACKEND_SERVERS: backend.url, HEADER_TIMEOUT: "1" } });
  try {
    // Connections that never send a byte, many at once.
    const idle = await Promise.all(Array.from({ length: 50 }, () => openRaw(proxy.port)));
    const dribbler = await openRaw(proxy.port);
    await dribbler.write(`GET /json HTTP/1.1${CRLF}Host: x${CRLF}`);
    let dripping = true;
    const drip = (async () => {
      while (dripping) {
        await new Promise((r) => setTimeout(r, 200));
        await dribbler.write("X").catch(() => dripping = false);
      }
    })();
    const results = await Promise.all(idle.map((c) => untilClosed(c, 1000 + SLACK_MS + 5000)));
    for (const r of results) {
      assert.ok(r.closed, "an idle connection is still open");
      assert.ok(r.ms < 1000 + SLACK_MS, `an idle connection was held ${Math.round(r.ms)} ms`);
      assert.equal(r.status, 0, "an idle connection is closed without an answer");
    }
    const d = await untilClosed(dribbler, 1000 + SLACK_MS + 5000);
    dripping = false;
    await drip;
    assert.ok(d.closed, "the dribbling connection is still open");
    assert.ok(d.ms < 1000 + SLACK_MS, `the dribbling connection was held ${Math.round(d.ms)} ms`);
    assert.equal(d.status, 408, d.raw.slice(0, 200));
    for (const c of [...idle, dribbler]) c.close();
    const stats = await proxy.stats();
    assert.ok(stats.header_timeouts >= 51, `header_timeouts ${stats.header_timeouts}`);
    // The proxy still serves.
    const ok = await fetch(`${proxy.url}/json`);
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  } finally {
    await proxy.stop();
    await backend.close();
  }
});

const TLS_SILENT =
  "HEADER_TIMEOUT on the TLS port: a client that never finishes its handshake is cut";
Deno.test({
  name: TLS_SILENT,
  // The listener closes the connection at HEADER_TIMEOUT, but on Deno 2.9.6 Deno.TlsConn.close()
  // before the handshake completed leaves the TCP socket open until the client closes it.
  ignore: ignoreUnless(
    TLS_SILENT,
    false,
    "Deno 2.9.6 keeps the TCP socket of a TlsConn closed before its handshake (runtime bug)",
  ),
  fn: tlsHandshakeTimeout,
});

async function tlsHandshakeTimeout() {
  const backend = await startTestBackend("t");
  const proxy = await startProxy({
    env: {
      BACKEND_SERVERS: backend.url,
      HEADER_TIMEOUT: "1",
      TLS_CERT: TEST_CERT_PATH,
      TLS_KEY: TEST_KEY_PATH,
    },
  });
  try {
    // Plain TCP, no ClientHello: the handshake never starts.
    const c = await openRaw(proxy.port);
    const r = await untilClosed(c, 1000 + SLACK_MS + 5000);
    c.close();
    assert.ok(r.closed, "the silent TLS connection is still open");
    assert.ok(r.ms < 1000 + SLACK_MS, `held ${Math.round(r.ms)} ms`);
    // HTTPS still served.
    const client = Deno.createHttpClient({ caCerts: [Deno.readTextFileSync(TEST_CA_PATH)] });
    try {
      const res = await fetch(`https://localhost:${proxy.port}/json`, { client });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    } finally {
      client.close();
    }
  } finally {
    await proxy.stop();
    await backend.close();
  }
}

Deno.test("KEEPALIVE_TIMEOUT closes a kept-alive connection idle after its response", async () => {
  const backend = await startTestBackend("t");
  const proxy = await startProxy({
    env: { BACKEND_SERVERS: backend.url, KEEPALIVE_TIMEOUT: "1", HEADER_TIMEOUT: "30" },
  });
  try {
    const c = await openRaw(proxy.port);
    await c.write(`GET /json HTTP/1.1${CRLF}Host: x${CRLF}${CRLF}`);
    const first = await c.response({ timeoutMs: 10_000 });
    assert.equal(first.status, 200);
    assert.equal(first.closed, false, "kept alive after the response");
    const r = await untilClosed(c, 1000 + SLACK_MS + 5000);
    assert.ok(r.closed, "the idle keep-alive connection is still open");
    assert.ok(r.ms < 1000 + SLACK_MS, `held ${Math.round(r.ms)} ms`);
    c.close();
  } finally {
    await proxy.stop();
    await backend.close();
  }
});

Deno.test("BODY_TIMEOUT: a stalled request body gets 408 and the connection closes", async () => {
  const backend = await startTestBackend("t");
  const proxy = await startProxy({
    env: {
      BACKEND_SERVERS: backend.url,
      BODY_TIMEOUT: "1",
      // The second case streams (larger than the buffer): the app already has the request.
      REQUEST_BUFFER_SIZE: "4KiB",
    },
  });
  try {
    for (const length of [100, 100_000]) {
      const c = await openRaw(proxy.port);
      await c.write(
        `POST /echo HTTP/1.1${CRLF}Host: x${CRLF}Content-Length: ${length}${CRLF}${CRLF}0123456789`,
      );
      const r = await untilClosed(c, 1000 + SLACK_MS + 5000);
      c.close();
      assert.equal(r.status, 408, `${length}: ${r.raw.slice(0, 200)}`);
      assert.ok(r.closed, `${length}: still open`);
      assert.ok(r.ms < 1000 + SLACK_MS, `${length}: held ${Math.round(r.ms)} ms`);
      assert.match(r.body, /BODY_TIMEOUT/);
    }
    const stats = await proxy.stats();
    assert.equal(stats.body_timeouts, 2);
  } finally {
    await proxy.stop();
    await backend.close();
  }
});

Deno.test("BODY_MIN_RATE: a body trickling below the rate gets 408 after the 10 s grace", async () => {
  const backend = await startTestBackend("t");
  const proxy = await startProxy({
    env: { BACKEND_SERVERS: backend.url, BODY_TIMEOUT: "5", BODY_MIN_RATE: "1KiB" },
  });
  try {
    const c = await openRaw(proxy.port);
    await c.write(`POST /echo HTTP/1.1${CRLF}Host: x${CRLF}Content-Length: 100000${CRLF}${CRLF}`);
    // 20 bytes every 200 ms: 100 B/s, each pause well inside BODY_TIMEOUT.
    let dripping = true;
    const drip = (async () => {
      while (dripping) {
        await c.write("x".repeat(20)).catch(() => dripping = false);
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const r = await untilClosed(c, 25_000);
    dripping = false;
    await drip;
    c.close();
    assert.equal(r.status, 408, r.raw.slice(0, 200));
    assert.match(r.body, /BODY_MIN_RATE/);
    assert.ok(r.ms >= 9_000, `cut after ${Math.round(r.ms)} ms, before the grace period`);
    assert.ok(r.ms < 10_000 + SLACK_MS + 1000, `held ${Math.round(r.ms)} ms`);
  } finally {
    await proxy.stop();
    await backend.close();
  }
});

Deno.test("slow uploaders hold no admission slot: normal clients keep getting 200", async () => {
  const backend = await startTestBackend("t");
  const proxy = await startProxy({
    env: {
      BACKEND_SERVERS: backend.url,
      MAX_CONCURRENCY: "2",
      REQUEST_QUEUE_SIZE: "2",
      QUEUE_TIMEOUT: "1",
      BODY_TIMEOUT: "60",
    },
  });
  const slow: RawConnection[] = [];
  try {
    for (let i = 0; i < 120; i++) {
      const c = await openRaw(proxy.port);
      await c.write(`POST /echo HTTP/1.1${CRLF}Host: x${CRLF}Content-Length: 1000${CRLF}${CRLF}ab`);
      slow.push(c);
    }
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${proxy.url}/json`);
      const text = await res.text();
      assert.equal(res.status, 200, `request ${i}: ${text}`);
    }
    const stats = await proxy.stats();
    assert.ok(stats.in_flight_requests <= 1, `in flight: ${stats.in_flight_requests}`);
    assert.ok(stats.client_connections >= 120, `client connections ${stats.client_connections}`);
  } finally {
    for (const c of slow) c.close();
    await proxy.stop();
    await backend.close();
  }
});
