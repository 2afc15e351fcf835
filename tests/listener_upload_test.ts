/**
 * Large uploads through the reverse proxy, chunked and with Content-Length:
 * the body streams with back-pressure (bounded memory, read off the proxy's
 * VmHWM) at a rate that does not collapse for chunked bodies (the old path
 * was quadratic: 256 MiB took 28 s).
 */
import assert from "node:assert/strict";
import { startProxy } from "./helpers/proxy.ts";

const MiB = 1024 * 1024;
/** Modest, so the test stays quick on a loaded machine; the report has the 1 GiB figure. */
const SIZE = 256 * MiB;

/** An origin that counts the request body's bytes and answers the count. */
function countingOrigin() {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    let n = 0;
    if (req.body) { for await (const c of req.body) n += c.length; }
    return new Response(String(n));
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

/** Uploads SIZE bytes over a raw connection; returns the answer's body and the rate. */
async function upload(port: number, chunked: boolean) {
  const enc = new TextEncoder();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const piece = new Uint8Array(256 * 1024).fill(120);
  const frame = chunked
    ? new Uint8Array([
      ...enc.encode(piece.length.toString(16) + "\r\n"),
      ...piece,
      13,
      10,
    ])
    : piece;
  const head = `POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n` +
    (chunked ? "Transfer-Encoding: chunked\r\n\r\n" : `Content-Length: ${SIZE}\r\n\r\n`);
  const t0 = performance.now();
  const answer = (async () => {
    const buf = new Uint8Array(4096);
    let text = "";
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) return text;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
  })();
  const writeAll = async (p: Uint8Array) => {
    for (let off = 0; off < p.length;) off += await conn.write(p.subarray(off));
  };
  await writeAll(enc.encode(head));
  for (let sent = 0; sent < SIZE; sent += piece.length) await writeAll(frame);
  if (chunked) await writeAll(enc.encode("0\r\n\r\n"));
  const text = await answer;
  const seconds = (performance.now() - t0) / 1000;
  conn.close();
  return { text, mibPerSecond: SIZE / MiB / seconds };
}

function peakRssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

Deno.test({
  name: "256 MiB uploads stream through the reverse proxy, chunked and not, in bounded memory",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const origin = countingOrigin();
    const proxy = await startProxy({ env: { BACKEND_SERVERS: origin.url } });
    try {
      for (const chunked of [true, false]) {
        const { text, mibPerSecond } = await upload(proxy.port, chunked);
        const kind = chunked ? "chunked" : "Content-Length";
        assert.match(text, /^HTTP\/1\.1 200 /, `${kind}: ${text.slice(0, 200)}`);
        assert.ok(text.endsWith(`\r\n\r\n${SIZE}`), `${kind}: ${text.slice(-100)}`);
        const rss = peakRssMiB(proxy.process.pid);
        console.log(`${kind}: ${mibPerSecond.toFixed(0)} MiB/s, peak RSS ${rss.toFixed(0)} MiB`);
        // Generous floor for a loaded shared machine; the quadratic path managed ~9 MiB/s.
        assert.ok(mibPerSecond > 20, `${kind}: ${mibPerSecond.toFixed(1)} MiB/s`);
        assert.ok(rss < 400, `${kind}: peak RSS ${rss.toFixed(0)} MiB`);
      }
    } finally {
      await proxy.stop();
      await origin.close();
    }
  },
});
