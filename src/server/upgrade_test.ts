import assert from "node:assert/strict";
import { ProxyStats } from "../stats/mod.ts";
import { relayUpgrade } from "./upgrade.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A connected pair of TCP connections on loopback. */
async function pair(): Promise<[Deno.Conn, Deno.Conn]> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [a, b] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: (l.addr as Deno.NetAddr).port }),
    l.accept(),
  ]);
  l.close();
  return [a, b];
}

async function readUntil(conn: Deno.Conn, want: number): Promise<string> {
  const buf = new Uint8Array(65536);
  let got = "";
  while (got.length < want) {
    const n = await conn.read(buf);
    if (n === null) break;
    got += dec.decode(buf.subarray(0, n));
  }
  return got;
}

async function eof(conn: Deno.Conn): Promise<boolean> {
  const buf = new Uint8Array(1024);
  try {
    while ((await conn.read(buf)) !== null) { /* drain */ }
  } catch { /* reset is an end too */ }
  return true;
}

function setup() {
  return Promise.all([pair(), pair()]).then(([[client, proxyClient], [proxyUp, backend]]) => ({
    client,
    proxyClient,
    proxyUp,
    backend,
  }));
}

Deno.test("relayUpgrade sends the leftover first, relays both ways, counts bytes", async () => {
  const { client, proxyClient, proxyUp, backend } = await setup();
  const stats = new ProxyStats({ mode: "reverse", listener: "test" });
  const headers = new Headers([["upgrade", "websocket"], ["connection", "Upgrade"]]);
  const relay = relayUpgrade(
    proxyClient,
    enc.encode("early"),
    { status: 101, headers, conn: proxyUp, head: enc.encode("first") },
    stats,
  );
  assert.equal(await readUntil(backend, 5), "early");
  assert.equal(stats.snapshot().open_websockets, 1);
  await client.write(enc.encode("up!"));
  assert.equal(await readUntil(backend, 3), "up!");
  await backend.write(enc.encode("down"));
  assert.equal(await readUntil(client, 4), "down");
  // The client leaves: the backend's side is closed at once.
  client.close();
  assert.equal(await eof(backend), true);
  await relay;
  backend.close();
  assert.deepEqual(stats.snapshot().websockets, { open: 0, total: 1, bytes_up: 8, bytes_down: 9 });
});

Deno.test("relayUpgrade: the backend ending closes the client's side", async () => {
  const { client, proxyClient, proxyUp, backend } = await setup();
  const stats = new ProxyStats({ mode: "reverse", listener: "test" });
  const relay = relayUpgrade(
    proxyClient,
    new Uint8Array(0),
    { status: 101, headers: new Headers(), conn: proxyUp, head: new Uint8Array(0) },
    stats,
  );
  await backend.write(enc.encode("bye"));
  backend.close();
  assert.equal(await readUntil(client, 3), "bye", "bytes before the end are flushed");
  assert.equal(await eof(client), true);
  await relay;
  client.close();
  assert.equal(stats.snapshot().open_websockets, 0);
});

Deno.test("relayUpgrade moves 16 MiB each way at once intact", async () => {
  const { client, proxyClient, proxyUp, backend } = await setup();
  const stats = new ProxyStats({ mode: "reverse", listener: "test" });
  const relay = relayUpgrade(
    proxyClient,
    new Uint8Array(0),
    { status: 101, headers: new Headers(), conn: proxyUp, head: new Uint8Array(0) },
    stats,
  );
  const size = 16 * 1024 * 1024;
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 7) & 255;
  const send = async (c: Deno.Conn) => {
    let off = 0;
    while (off < size) off += await c.write(data.subarray(off));
  };
  const receive = async (c: Deno.Conn) => {
    const got = new Uint8Array(size);
    let off = 0;
    while (off < size) {
      const n = await c.read(got.subarray(off));
      if (n === null) break;
      off += n;
    }
    return off === size && got.every((v, i) => v === data[i]);
  };
  const [, , upOk, downOk] = await Promise.all([
    send(client),
    send(backend),
    receive(backend),
    receive(client),
  ]);
  assert.ok(upOk && downOk);
  client.close();
  await relay;
  backend.close();
  assert.equal(stats.webSocketBytesUp, size);
  assert.equal(stats.webSocketBytesDown, size);
});
