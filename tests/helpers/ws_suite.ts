/**
 * The WebSocket pass-through checks every way of reaching a backend must pass
 * (reverse gateway, `PROXY_MODE=both`, `wss://` through the TLS listener, a
 * CONNECT tunnel in forward mode): headers, subprotocols in every spelling,
 * pings and pongs both ways, close codes, large and fragmented messages,
 * permessage-deflate. Each check talks to a real npm `ws` origin that reports
 * what reached it.
 */
import assert from "node:assert/strict";
import net from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import {
  closedOf,
  connectTunnel,
  nextMessage,
  type OpenOptions,
  openWs,
  type OriginPeer,
  rawHeader,
  until,
  type WsOrigin,
} from "./ws.ts";

/** How a client reaches the origin in one mode. */
export interface WsRoute {
  origin: WsOrigin;
  /** `ws://…` or `wss://…` URL the client uses for `path`. */
  url(path: string): string;
  /** Options every client of this route needs (CA, CONNECT tunnel). */
  client: OpenOptions;
  /** A raw byte stream to where `url()` points (handshakes written by hand). */
  dial(): Promise<Duplex>;
  /** The proxy handles HTTP (adds X-Forwarded-*, Via); false for a CONNECT tunnel. */
  proxied: boolean;
  /** "http" or "https": the scheme the client used to reach the proxy. */
  proto: "http" | "https";
}

/** Waits for the origin's side of the socket opened for `path`. */
export async function peerFor(origin: WsOrigin, path: string): Promise<OriginPeer> {
  let found: OriginPeer | undefined;
  await until(
    () => (found = origin.peers.find((p) => p.url === path)) !== undefined,
    () => `the origin never accepted ${path}`,
  );
  return found!;
}

let unique = 0;
/** A path no other check uses, so each check finds its own peer. */
export const freshPath = (name: string) => `/${name}/${++unique}`;

/** Writes a handshake by hand; resolves with the status and the lower-cased response headers. */
export async function rawHandshake(
  route: WsRoute,
  path: string,
  headerLines: string[],
): Promise<{ status: number; headers: Map<string, string>; socket: Duplex }> {
  const socket = await route.dial();
  const head = [
    `GET ${path} HTTP/1.1`,
    `Host: app.example`,
    "Upgrade: websocket",
    ...(headerLines.some((l) => /^connection:/i.test(l)) ? [] : ["Connection: Upgrade"]),
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ...headerLines,
  ].join("\r\n") + "\r\n\r\n";
  return await new Promise((resolve, reject) => {
    let got = "";
    const onData = (chunk: Uint8Array) => {
      got += new TextDecoder("latin1").decode(chunk);
      const end = got.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      const lines = got.slice(0, end).split("\r\n");
      const headers = new Map<string, string>();
      for (const line of lines.slice(1)) {
        const i = line.indexOf(":");
        headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
      }
      resolve({ status: Number(lines[0].split(" ")[1]), headers, socket });
    };
    socket.on("data", onData);
    socket.once("error", reject);
    socket.resume();
    socket.write(head);
  });
}

/** Dials the proxy port in plain TCP. */
export function dialTcp(port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
}

/** Dials the proxy port over TLS (SNI localhost, trusting `ca`). */
export function dialTls(port: number, ca: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = tls.connect(
      { port, host: "127.0.0.1", servername: "localhost", ca },
      () => resolve(s),
    );
    s.once("error", reject);
  });
}

/** Opens a CONNECT tunnel to `authority` through the proxy. */
export const dialTunnel = (port: number, authority: string): Promise<Duplex> =>
  connectTunnel(port, authority).then((s) => {
    s.resume();
    return s;
  });

const CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4000];

/** Runs every pass-through check against `route` as steps of `t`. */
export async function passThroughSuite(t: Deno.TestContext, route: WsRoute): Promise<void> {
  const { origin } = route;

  await t.step("every end-to-end header reaches the backend, hop-by-hop ones do not", async () => {
    const path = freshPath("headers") + "?q=1";
    const ws = await openWs(route.url(path), {
      ...route.client,
      protocols: ["chat.v1"],
      headers: {
        Host: "app.example:8443",
        Cookie: "session=abc123; theme=dark",
        Authorization: "Bearer t0k3n",
        Origin: "https://app.example",
        "X-Custom": "custom value, with comma",
        "Keep-Alive": "timeout=5",
      },
    });
    const peer = await peerFor(origin, path);
    const h = (name: string) => rawHeader(peer, name);
    assert.deepEqual(h("cookie"), "session=abc123; theme=dark");
    assert.deepEqual(h("authorization"), "Bearer t0k3n");
    assert.deepEqual(h("origin"), "https://app.example");
    assert.deepEqual(h("x-custom"), "custom value, with comma");
    assert.deepEqual(h("host"), "app.example:8443", "the client's Host reaches the backend");
    assert.deepEqual(h("sec-websocket-protocol"), "chat.v1");
    assert.deepEqual(h("sec-websocket-version"), "13");
    assert.ok(h("sec-websocket-key"), "Sec-WebSocket-Key forwarded");
    assert.match(h("sec-websocket-extensions") ?? "", /permessage-deflate/);
    assert.deepEqual(h("upgrade")?.toLowerCase(), "websocket");
    assert.match(h("connection") ?? "", /upgrade/i);
    if (route.proxied) {
      assert.deepEqual(h("keep-alive"), undefined, "hop-by-hop Keep-Alive removed");
      assert.deepEqual(h("x-forwarded-for"), "127.0.0.1");
      assert.deepEqual(h("x-forwarded-proto"), route.proto);
      assert.deepEqual(h("x-forwarded-host"), "app.example:8443");
      assert.match(h("via") ?? "", /^1\.1 proxy-/);
    }
    const echoed = nextMessage(ws);
    ws.send("hello");
    assert.deepEqual(new TextDecoder().decode((await echoed).data), "hello");
    ws.close();
    await closedOf(ws);
    if (!route.proxied) return;
    // Headers the client's Connection names are hop-by-hop too, as are TE and Trailer.
    const p = freshPath("hop-by-hop");
    const r = await rawHandshake(route, p, [
      "Connection: Upgrade, X-Hop",
      "X-Hop: for the proxy only",
      "TE: trailers",
      "X-End-To-End: kept",
    ]);
    try {
      assert.deepEqual(r.status, 101);
      const peer = await peerFor(origin, p);
      assert.deepEqual(rawHeader(peer, "x-hop"), undefined);
      assert.deepEqual(rawHeader(peer, "te"), undefined);
      assert.deepEqual(rawHeader(peer, "x-end-to-end"), "kept");
      assert.match(rawHeader(peer, "connection") ?? "", /^upgrade$/i);
    } finally {
      r.socket.destroy();
    }
  });

  await t.step("subprotocol lists in every spelling negotiate end to end", async () => {
    // npm ws writes "chat.v1,chat.v2": no space.
    const path = freshPath("protocols");
    const ws = await openWs(route.url(path), {
      ...route.client,
      protocols: ["chat.v1", "chat.v2"],
    });
    assert.deepEqual(ws.protocol, "chat.v1");
    assert.deepEqual(
      rawHeader(await peerFor(origin, path), "sec-websocket-protocol"),
      "chat.v1,chat.v2",
    );
    ws.close();
    await closedOf(ws);
    for (
      const [lines, sent] of [
        [["Sec-WebSocket-Protocol: chat.v1, chat.v2"], "chat.v1, chat.v2"],
        [["Sec-WebSocket-Protocol: chat.v1,chat.v2"], "chat.v1,chat.v2"],
        [["Sec-WebSocket-Protocol: chat.v1", "Sec-WebSocket-Protocol: chat.v2"], undefined],
      ] as const
    ) {
      const p = freshPath("protocols-raw");
      const r = await rawHandshake(route, p, [...lines]);
      try {
        assert.deepEqual(r.status, 101, `handshake with ${JSON.stringify(lines)}`);
        assert.deepEqual(r.headers.get("sec-websocket-protocol"), "chat.v1");
        const peer = await peerFor(origin, p);
        assert.deepEqual(peer.offeredProtocols, ["chat.v1", "chat.v2"]);
        if (sent !== undefined) assert.deepEqual(rawHeader(peer, "sec-websocket-protocol"), sent);
      } finally {
        r.socket.destroy();
      }
    }
  });

  await t.step("pings and pongs reach the other end, both ways", async () => {
    const path = freshPath("ping");
    const ws = await openWs(route.url(path), route.client);
    const peer = await peerFor(origin, path);
    const clientPongs: string[] = [], clientPings: string[] = [];
    ws.on("pong", (d: Uint8Array) => clientPongs.push(new TextDecoder().decode(d)));
    ws.on("ping", (d: Uint8Array) => clientPings.push(new TextDecoder().decode(d)));
    for (let i = 0; i < 10; i++) ws.ping(`c${i}`);
    for (let i = 0; i < 10; i++) peer.socket.ping(`s${i}`);
    const want = (p: string) => Array.from({ length: 10 }, (_, i) => `${p}${i}`);
    await until(
      () =>
        peer.pings.length === 10 && clientPongs.length === 10 && clientPings.length === 10 &&
        peer.pongs.length === 10,
      () =>
        `pings at backend ${peer.pings.length}, pongs at client ${clientPongs.length}, ` +
        `pings at client ${clientPings.length}, pongs at backend ${peer.pongs.length}`,
    );
    assert.deepEqual(peer.pings, want("c"), "the client's pings reach the backend");
    assert.deepEqual(clientPongs, want("c"), "the backend's pongs reach the client");
    assert.deepEqual(clientPings, want("s"));
    assert.deepEqual(peer.pongs, want("s"));
    ws.close();
    await closedOf(ws);
  });

  await t.step("close codes and reasons arrive unchanged, both ways", async () => {
    await Promise.all(CLOSE_CODES.flatMap((code) => [
      (async () => {
        const path = freshPath(`close-client-${code}`);
        const ws = await openWs(route.url(path), route.client);
        const peer = await peerFor(origin, path);
        const clientSaw = closedOf(ws);
        ws.close(code, `client says ${code}`);
        assert.deepEqual(await peer.closed, { code, reason: `client says ${code}` });
        assert.deepEqual(
          (await clientSaw).code,
          code,
          "the backend's echoed close reaches the client",
        );
      })(),
      (async () => {
        const path = freshPath(`close-origin-${code}`);
        const ws = await openWs(route.url(path), route.client);
        const peer = await peerFor(origin, path);
        const clientSaw = closedOf(ws);
        peer.socket.close(code, `origin says ${code}`);
        assert.deepEqual(await clientSaw, { code, reason: `origin says ${code}` });
        assert.deepEqual((await peer.closed).code, code);
      })(),
    ]));
  });

  await t.step("16 MiB messages, text and binary, pass intact", async () => {
    const path = freshPath("big");
    const ws = await openWs(route.url(path), { ...route.client, perMessageDeflate: false });
    const binary = new Uint8Array(16 * 1024 * 1024);
    for (let i = 0; i < binary.length; i += 65536) {
      crypto.getRandomValues(binary.subarray(i, i + 65536));
    }
    let echoed = nextMessage(ws);
    ws.send(binary);
    let got = await echoed;
    assert.ok(got.binary);
    assert.deepEqual(got.data.length, binary.length);
    assert.ok(bytesEqual(got.data, binary), "16 MiB binary message echoed byte for byte");
    const text = "é".repeat(8 * 1024 * 1024); // 16 MiB of UTF-8
    echoed = nextMessage(ws);
    ws.send(text);
    got = await echoed;
    assert.ok(!got.binary);
    assert.deepEqual(got.data.length, 16 * 1024 * 1024);
    assert.ok(new TextDecoder().decode(got.data) === text, "16 MiB text message echoed intact");
    ws.close();
    await closedOf(ws);
  });

  await t.step("permessage-deflate is negotiated end to end", async () => {
    const path = freshPath("deflate");
    const ws = await openWs(route.url(path), { ...route.client, perMessageDeflate: true });
    assert.match(
      ws.extensions,
      /permessage-deflate/,
      "the backend's acceptance reaches the client",
    );
    const peer = await peerFor(origin, path);
    assert.match(rawHeader(peer, "sec-websocket-extensions") ?? "", /permessage-deflate/);
    const text = "compress me ".repeat(100_000);
    const echoed = nextMessage(ws);
    ws.send(text);
    assert.deepEqual(new TextDecoder().decode((await echoed).data), text);
    ws.close();
    await closedOf(ws);
  });

  await t.step("fragmented messages with a ping between fragments pass as sent", async () => {
    const path = freshPath("fragments");
    const ws = await openWs(route.url(path), { ...route.client, perMessageDeflate: false });
    const peer = await peerFor(origin, path);
    const echoed = nextMessage(ws);
    ws.send("first-", { fin: false });
    ws.ping("between");
    ws.send("second-", { fin: false });
    ws.send("last", { fin: true });
    assert.deepEqual(new TextDecoder().decode((await echoed).data), "first-second-last");
    assert.deepEqual(peer.messages.length, 1, "one message of three fragments");
    assert.deepEqual(peer.pings, ["between"]);
    const fromOrigin = nextMessage(ws);
    peer.socket.send(new Uint8Array([1, 2]), { binary: true, fin: false });
    peer.socket.send(new Uint8Array([3]), { binary: true, fin: true });
    const m = await fromOrigin;
    assert.ok(m.binary);
    assert.deepEqual([...m.data], [1, 2, 3]);
    ws.close();
    await closedOf(ws);
  });
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
