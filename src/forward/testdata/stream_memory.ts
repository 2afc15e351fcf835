/**
 * Streams 256 MB through the forwarder, down and up, and prints how far this process's RSS grew
 * during each transfer. src/forward/stream_test.ts runs it as a child process: RSS is a whole
 * process's, and `deno test --parallel` runs other test modules in its own process, whose
 * allocations would be counted too (132 MB once, on a 2-core machine).
 *
 * Usage: deno run -A stream_memory.ts down|up
 * Prints one JSON line: { "transfers": [{ "name", "bytes", "growth", ... }], "connectionsOpened" }.
 *
 * @module
 */

import { createForwarder } from "../mod.ts";
import { RawServer, Reader, serveOrigin, testInfo, testOptions, write } from "../testing.ts";

export const SIZE = 256 * 1024 * 1024;
const PIECE = 64 * 1024;

/** What one transfer measured; `growth` is peak RSS minus RSS at its start, in bytes. */
export interface Transfer {
  name: string;
  bytes: number;
  growth: number;
  contentLength?: string | null;
  transferEncoding?: string | null;
}

export interface Report {
  transfers: Transfer[];
  connectionsOpened: number;
}

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

/** Reads a stream to its end, raising `peak.rss` on the way. */
async function drain(body: ReadableStream<Uint8Array>, peak: { rss: number }): Promise<number> {
  let total = 0;
  let i = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if ((++i & 15) === 0) peak.rss = Math.max(peak.rss, Deno.memoryUsage().rss);
  }
  return total;
}

async function down(): Promise<Report> {
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
  const transfers: Transfer[] = [];
  try {
    for (const [name, url] of [["content-length", raw.url], ["chunked", origin.url]] as const) {
      const res = await fwd.forward(new Request("http://x/"), url, testInfo());
      const peak = { rss: Deno.memoryUsage().rss };
      const before = peak.rss;
      const bytes = await drain(res.body!, peak);
      transfers.push({ name, bytes, growth: peak.rss - before });
    }
    return { transfers, connectionsOpened: fwd.snapshot().connections_opened };
  } finally {
    fwd.close();
    await raw.close();
    await origin.close();
  }
}

async function up(): Promise<Report> {
  const peak = { rss: 0 };
  const origin = serveOrigin(async (req) => {
    const bytes = await drain(req.body!, peak);
    return Response.json({
      bytes,
      contentLength: req.headers.get("content-length"),
      transferEncoding: req.headers.get("transfer-encoding"),
    });
  });
  const fwd = createForwarder(testOptions());
  const transfers: Transfer[] = [];
  try {
    for (const withLength of [true, false]) {
      const before = Deno.memoryUsage().rss;
      peak.rss = before;
      const req = new Request("http://x/upload", {
        method: "PUT",
        body: generated(SIZE),
        headers: withLength ? { "content-length": String(SIZE) } : {},
        duplex: "half",
      } as RequestInit);
      const res = await fwd.forward(req, origin.url, testInfo());
      const seen = await res.json();
      transfers.push({
        name: withLength ? "content-length" : "chunked",
        bytes: seen.bytes,
        growth: peak.rss - before,
        contentLength: seen.contentLength,
        transferEncoding: seen.transferEncoding,
      });
    }
    return { transfers, connectionsOpened: fwd.snapshot().connections_opened };
  } finally {
    fwd.close();
    await origin.close();
  }
}

if (import.meta.main) {
  const direction = Deno.args[0];
  if (direction !== "down" && direction !== "up") {
    console.error("usage: stream_memory.ts down|up");
    Deno.exit(2);
  }
  console.log(JSON.stringify(await (direction === "down" ? down() : up())));
}
