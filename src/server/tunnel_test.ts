import assert from "node:assert/strict";
import { ProxyStats } from "../stats/mod.ts";
import { listenHttp1 } from "./http1/mod.ts";
import type { TunnelOptions } from "./tunnel.ts";

/** A TCP echo server on a free port. */
function echoServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      conn.readable.pipeTo(conn.writable).catch(() => {}).finally(() => conns.delete(conn));
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

function startNode(overrides: Partial<TunnelOptions> = {}) {
  const stats = new ProxyStats({ mode: "forward", listener: "http1" });
  const listener = listenHttp1({
    app: () => new Response("app"),
    stats,
    maxHeaderSize: 16384,
    maxHeaderCount: 100,
    headerTimeoutMs: 5000,
    keepAliveTimeoutMs: 5000,
    bodyTimeoutMs: 5000,
    bodyMinRate: 0,
    requestBufferSize: 1024 * 1024,
    tunnel: { stats, connectTimeoutMs: 5000, admit: () => undefined, ...overrides },
  }, { hostname: "127.0.0.1", port: 0, maxConnections: 10_000 });
  return { stats, listener };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

async function readUntil(conn: Deno.Conn, marker: string, max = 65536): Promise<string> {
  let text = "";
  const buf = new Uint8Array(4096);
  while (!text.includes(marker) && text.length < max) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += dec.decode(buf.subarray(0, n));
  }
  return text;
}

Deno.test("CONNECT opens a tunnel that carries bytes both ways and counts them", async () => {
  const echo = echoServer();
  const { stats, listener } = startNode();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
  await conn.write(enc.encode(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: x\r\n\r\n`));
  const head = await readUntil(conn, "\r\n\r\n");
  assert.match(head, /^HTTP\/1\.1 200 /);
  await conn.write(enc.encode("hello tunnel"));
  assert.equal(await readUntil(conn, "tunnel"), "hello tunnel");
  assert.equal(stats.openTunnels, 1);
  conn.close();
  for (let i = 0; i < 100 && stats.openTunnels > 0; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(stats.openTunnels, 0);
  assert.equal(stats.tunnelBytesUp, 12);
  assert.equal(stats.tunnelBytesDown, 12);
  await listener.close(1000);
  echo.close();
});

Deno.test("a thousand tunnels opened and closed by clients leave none open", async () => {
  const echo = echoServer();
  const { stats, listener } = startNode();
  const one = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
    await conn.write(enc.encode(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\n\r\nping`));
    const got = await readUntil(conn, "ping");
    assert.ok(got.endsWith("ping"), got);
    conn.close();
  };
  for (let batch = 0; batch < 20; batch++) await Promise.all(Array.from({ length: 50 }, one));
  for (let i = 0; i < 200 && stats.openTunnels > 0; i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.equal(stats.tunnelsTotal, 1000);
  assert.equal(stats.openTunnels, 0);
  await listener.close(1000);
  echo.close();
});

Deno.test("CONNECT refusals: bad target 400, admit hook status, unreachable 502", async () => {
  const { stats, listener } = startNode({
    admit: (req) =>
      req.authority.port === 25 ? { status: 403, reason: "port 25 not allowed" } : undefined,
  });
  const ask = async (target: string) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
    await conn.write(enc.encode(`CONNECT ${target} HTTP/1.1\r\n\r\n`));
    const text = await readUntil(conn, "\n\n", 4096).catch(() => "");
    let rest = text;
    const buf = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      rest += dec.decode(buf.subarray(0, n));
    }
    conn.close();
    return rest;
  };
  assert.match(await ask("no-port-here"), /^HTTP\/1\.1 400 [\s\S]*expected host:port/);
  assert.match(await ask("example.com:25"), /^HTTP\/1\.1 403 [\s\S]*port 25 not allowed/);
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (closed.addr as Deno.NetAddr).port;
  closed.close();
  assert.match(await ask(`127.0.0.1:${deadPort}`), /^HTTP\/1\.1 502 [\s\S]*cannot connect/);
  assert.equal(stats.tunnelsRefused, 3);
  assert.equal(stats.openTunnels, 0);
  await listener.close(1000);
});

/** A TCP server that records what each connection received, and when it ended. */
function sinkServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received: { bytes: number; closed: boolean }[] = [];
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const conn of listener) {
      const seen = { bytes: 0, closed: false };
      received.push(seen);
      conns.add(conn);
      (async () => {
        const buf = new Uint8Array(4096);
        try {
          while (true) {
            const n = await conn.read(buf);
            if (n === null) break;
            seen.bytes += n;
          }
        } catch { /* reset */ }
        seen.closed = true;
        conns.delete(conn);
        try {
          conn.close();
        } catch { /* closed */ }
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    received,
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

Deno.test("checkAddress refuses the connected address before any byte is relayed", async () => {
  const sink = sinkServer();
  const { listener, stats } = startNode({
    checkAddress: (ip) => ip === "127.0.0.1" ? "loopback refused" : undefined,
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
  // The client sends its first tunnel bytes right behind the CONNECT head, as TLS clients
  // that do not wait for the 200 do: they must not reach the refused address.
  await conn.write(
    enc.encode(`CONNECT localhost:${sink.port} HTTP/1.1\r\n\r\nEARLY-TUNNEL-BYTES`),
  );
  assert.match(await readUntil(conn, "refused"), /^HTTP\/1\.1 403 [\s\S]*loopback refused/);
  // The check runs on the connected address, so the destination saw a connection: wait until
  // the proxy closed it, then count what it received.
  const deadline = Date.now() + 10_000;
  while (!(sink.received.length === 1 && sink.received[0].closed)) {
    if (Date.now() > deadline) {
      throw new Error(`upstream not closed: ${JSON.stringify(sink.received)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual(
    sink.received,
    [{ bytes: 0, closed: true }],
    "bytes reached the refused address",
  );
  assert.equal(stats.tunnelsTotal, 0, "no tunnel was opened");
  assert.equal(stats.tunnelBytesUp, 0);
  conn.close();
  await listener.close(1000);
  sink.close();
});
