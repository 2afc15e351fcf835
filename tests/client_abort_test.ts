/**
 * A client that closes its connection before its answer: the proxy cuts the upstream exchange
 * and frees the admission slot or queue place at once (nginx's `proxy_ignore_client_abort off`),
 * except for a cache fill, which goes on and is stored for the next client.
 */
import assert from "node:assert/strict";
import { startProxy } from "./helpers/proxy.ts";
import { openRaw } from "./helpers/rawhttp.ts";

/** Polls `predicate` every 25 ms for at most `ms`. */
async function waitFor(predicate: () => boolean | Promise<boolean>, what: string, ms = 5_000) {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface HoldingOrigin {
  url: string;
  /** Requests received, by path. */
  received: Map<string, number>;
  /** Connections of /hold requests that the proxy closed (while the origin still held them). */
  cut(): number;
  /** Answers the held /cacheable requests. */
  release(): void;
  close(): Promise<void>;
}

/**
 * A raw origin: `/hold` never answers and counts the proxy closing it, `/cacheable` answers
 * (max-age=60) once `release()` is called, `/slow` after 2.5 s, anything else at once.
 */
function startHoldingOrigin(): HoldingOrigin {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received = new Map<string, number>();
  const conns = new Set<Deno.Conn>();
  let cut = 0;
  let release!: () => void;
  const released = new Promise<void>((r) => release = r);
  const enc = new TextEncoder();
  const answer = (body: string, cacheControl: string) =>
    enc.encode(
      `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\ncache-control: ${cacheControl}\r\n\r\n${body}`,
    );

  const serve = async (conn: Deno.Conn) => {
    conns.add(conn);
    const buf = new Uint8Array(16 * 1024);
    let text = "";
    try {
      while (true) {
        const end = text.indexOf("\r\n\r\n");
        if (end < 0) {
          const n = await conn.read(buf);
          if (n === null) return;
          text += new TextDecoder().decode(buf.subarray(0, n));
          continue;
        }
        const path = text.slice(0, text.indexOf("\r\n")).split(" ")[1];
        text = text.slice(end + 4);
        received.set(path, (received.get(path) ?? 0) + 1);
        if (path === "/hold") {
          // Held until the proxy closes the connection.
          while ((await conn.read(buf).catch(() => null)) !== null) { /* drain */ }
          cut++;
          return;
        }
        if (path === "/slow") {
          await new Promise((r) => setTimeout(r, 2_500));
          await conn.write(answer("slow", "no-store"));
        } else if (path === "/cacheable") {
          await released;
          await conn.write(answer("filled", "max-age=60"));
        } else {
          await conn.write(answer("ok", "no-store"));
        }
      }
    } catch {
      // the proxy went away
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) serve(conn);
  })().catch(() => {});
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    received,
    cut: () => cut,
    release,
    async close() {
      release();
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await accepting;
    },
  };
}

/** Sends a GET on a raw connection, waits until the origin has it, then closes the connection. */
async function leave(port: number, target: string, origin: HoldingOrigin, path: string) {
  const before = origin.received.get(path) ?? 0;
  const client = await openRaw(port);
  await client.write(`GET ${target} HTTP/1.1\r\nHost: app.test\r\n\r\n`);
  await waitFor(() => (origin.received.get(path) ?? 0) > before, `${path} at the origin`);
  client.close();
}

async function rawGet(port: number, target: string) {
  const c = await openRaw(port);
  try {
    await c.write(`GET ${target} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n`);
    return await c.response({ timeoutMs: 10_000 });
  } finally {
    c.close();
  }
}

/** Settings under which one request in flight fills the proxy, and only the client leaving ends it. */
const ONE_SLOT = {
  MAX_CONCURRENCY: "1",
  SERVE_THREADS: "1",
  CONNECTION_TIMEOUT: "60",
  QUEUE_TIMEOUT: "60",
};

for (const mode of ["reverse", "forward"] as const) {
  Deno.test(`${mode}: a client that leaves before its answer frees its slot and the upstream connection`, async () => {
    const origin = startHoldingOrigin();
    const proxy = await startProxy({
      env: {
        ...(mode === "reverse"
          ? { BACKEND_SERVERS: origin.url }
          : { PROXY_MODE: "forward", FORWARD_ALLOW_PRIVATE: "true" }),
        ...ONE_SLOT,
      },
    });
    const target = (path: string) => mode === "reverse" ? path : origin.url + path;
    try {
      await leave(proxy.port, target("/hold"), origin, "/hold");
      await waitFor(() => origin.cut() === 1, "the proxy to close the held upstream connection");
      const next = await rawGet(proxy.port, target("/quick"));
      assert.equal(next.status, 200, "the slot was freed: the next request is served");
      assert.equal((await proxy.stats()).admission.in_flight, 0);
    } finally {
      await proxy.stop();
      await origin.close();
    }
  });
}

Deno.test("a queued client that leaves gives up its place in the queue", async () => {
  const origin = startHoldingOrigin();
  const proxy = await startProxy({
    env: { BACKEND_SERVERS: origin.url, ...ONE_SLOT, REQUEST_QUEUE_SIZE: "1" },
  });
  const holder = await openRaw(proxy.port);
  try {
    // One client holds the only slot and stays.
    await holder.write("GET /hold HTTP/1.1\r\nHost: app.test\r\n\r\n");
    await waitFor(() => origin.received.get("/hold") === 1, "the held request at the origin");
    // The next one waits in the queue, then leaves.
    const queued = await openRaw(proxy.port);
    await queued.write("GET /quick HTTP/1.1\r\nHost: app.test\r\n\r\n");
    await waitFor(async () => (await proxy.stats()).admission.queued === 1, "one queued");
    queued.close();
    await waitFor(async () => (await proxy.stats()).admission.queued === 0, "the queue emptied");
    assert.equal(origin.received.get("/quick"), undefined, "the request that left was never sent");
    // Its place is free: another request waits instead of getting 503 "queue is full".
    const waiting = rawGet(proxy.port, "/quick");
    await waitFor(async () => (await proxy.stats()).admission.queued === 1, "the new one queued");
    holder.close();
    assert.equal((await waiting).status, 200);
  } finally {
    holder.close();
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("a cache fill goes on when its client leaves: the next client gets a hit", async () => {
  const origin = startHoldingOrigin();
  const proxy = await startProxy({
    env: { BACKEND_SERVERS: origin.url, ...ONE_SLOT, CACHE_BACKEND: "memory" },
  });
  try {
    await leave(proxy.port, "/cacheable", origin, "/cacheable");
    // The origin answers after the client is gone; the proxy stores what it fetched.
    await new Promise((r) => setTimeout(r, 200));
    origin.release();
    await waitFor(async () => {
      const res = await rawGet(proxy.port, "/cacheable");
      return res.headers["x-cache"] === "HIT";
    }, "a hit");
    assert.equal(origin.received.get("/cacheable"), 1, "fetched once");
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("a request pipelined behind one in flight is kept for after it: the watch reads it, answers stay in order", async () => {
  const origin = startHoldingOrigin();
  const proxy = await startProxy({ env: { BACKEND_SERVERS: origin.url, SERVE_THREADS: "1" } });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  try {
    const enc = new TextEncoder();
    await conn.write(enc.encode("GET /slow HTTP/1.1\r\nHost: app.test\r\n\r\n"));
    await waitFor(() => origin.received.get("/slow") === 1, "/slow at the origin");
    // Past one sweep (1 s here) the listener has a read pending for this connection: the next
    // request arrives into it while the first is still at the origin.
    await new Promise((r) => setTimeout(r, 1_500));
    await conn.write(
      enc.encode("GET /quick HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"),
    );
    let text = "";
    const buf = new Uint8Array(16 * 1024);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    assert.deepEqual(statuses, ["200", "200"], text);
    assert.ok(text.indexOf("\r\n\r\nslow") < text.indexOf("\r\n\r\nok"), text);
    assert.equal(origin.received.get("/quick"), 1);
  } finally {
    conn.close();
    await proxy.stop();
    await origin.close();
  }
});
