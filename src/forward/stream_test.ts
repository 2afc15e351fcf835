import assert from "node:assert/strict";
import { createForwarder } from "./mod.ts";
import { RawServer, Reader, serveOrigin, testInfo, testOptions, write } from "./testing.ts";

/**
 * 256 MB per transfer, growth limit 128 MB. RSS is the whole process's, and `deno test
 * --parallel` runs other test modules in the same process, so their allocations and garbage
 * awaiting GC show up here too (tens of MB). Buffering a transfer would add at least its
 * 256 MB, so the limit still tells streaming from buffering with a wide margin.
 */
const SIZE = 256 * 1024 * 1024;
const PIECE = 64 * 1024;
const MAX_GROWTH = 128 * 1024 * 1024;

function generated(size: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent >= size) return c.close();
      const n = Math.min(PIECE, size - sent);
      const chunk = new Uint8Array(n);
      chunk[0] = sent & 0xff;
      sent += n;
      c.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
}

/** Reads a stream to its end, tracking the peak RSS on the way. */
async function drain(body: ReadableStream<Uint8Array>, peak: { rss: number }): Promise<number> {
  let total = 0;
  let i = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if ((++i & 15) === 0) peak.rss = Math.max(peak.rss, Deno.memoryUsage().rss);
  }
  return total;
}

Deno.test("256 MB streams down with flat memory (Content-Length and chunked)", async () => {
  const raw = new RawServer(async (conn) => {
    const r = new Reader(conn);
    await r.request();
    await write(conn, `HTTP/1.1 200 OK\r\ncontent-length: ${SIZE}\r\n\r\n`);
    const piece = new Uint8Array(PIECE);
    for (let sent = 0; sent < SIZE; sent += PIECE) await write(conn, piece);
  });
  // A stream body makes Deno.serve answer chunked.
  const origin = serveOrigin(() => new Response(generated(SIZE)));
  const fwd = createForwarder(testOptions());
  try {
    for (const url of [raw.url, origin.url]) {
      const res = await fwd.forward(new Request("http://x/"), url, testInfo());
      const peak = { rss: Deno.memoryUsage().rss };
      const before = peak.rss;
      assert.equal(await drain(res.body!, peak), SIZE);
      assert.ok(
        peak.rss - before < MAX_GROWTH,
        `RSS grew by ${((peak.rss - before) / 1048576).toFixed(1)} MB`,
      );
    }
  } finally {
    fwd.close();
    await raw.close();
    await origin.close();
  }
});

Deno.test("256 MB streams up with flat memory (Content-Length and chunked)", async () => {
  let peak = 0;
  const origin = serveOrigin(async (req) => {
    let total = 0;
    let i = 0;
    for await (const chunk of req.body!) {
      total += chunk.length;
      if ((++i & 15) === 0) peak = Math.max(peak, Deno.memoryUsage().rss);
    }
    return new Response(
      JSON.stringify({
        total,
        cl: req.headers.get("content-length"),
        te: req.headers.get("transfer-encoding"),
      }),
    );
  });
  const fwd = createForwarder(testOptions());
  try {
    for (const withLength of [true, false]) {
      const before = Deno.memoryUsage().rss;
      peak = before;
      const req = new Request("http://x/upload", {
        method: "PUT",
        body: generated(SIZE),
        headers: withLength ? { "content-length": String(SIZE) } : {},
        duplex: "half",
      } as RequestInit);
      const res = await fwd.forward(req, origin.url, testInfo());
      const seen = await res.json();
      assert.equal(seen.total, SIZE);
      if (withLength) assert.equal(seen.cl, String(SIZE));
      else assert.equal(seen.te, "chunked");
      assert.ok(
        peak - before < MAX_GROWTH,
        `RSS grew by ${((peak - before) / 1048576).toFixed(1)} MB`,
      );
    }
    assert.equal(fwd.snapshot().connections_opened, 1, "a fully sent upload keeps the connection");
  } finally {
    fwd.close();
    await origin.close();
  }
});
