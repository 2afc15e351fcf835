/**
 * End-to-end: compression through the real proxy process, forward (absolute-form) and
 * reverse (origin-form) — raw bytes read with node:http, decoded with node:zlib.
 */
import assert from "node:assert/strict";
import http from "node:http";
import * as zlib from "node:zlib";
import { Buffer } from "node:buffer";
import { startTestBackend } from "./helpers/backend.ts";
import { startProxy } from "./helpers/proxy.ts";

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** GET `path` (absolute-form for forward proxying) from the proxy, without decoding. */
function get(port: number, path: string, acceptEncoding?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (acceptEncoding) headers["accept-encoding"] = acceptEncoding;
    http.get({ host: "127.0.0.1", port, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on(
        "end",
        () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on("error", reject);
    }).on("error", reject);
  });
}

const DECODE: Record<string, (b: Buffer) => Buffer> = {
  br: (b) => zlib.brotliDecompressSync(b),
  zstd: (b) => zlib.zstdDecompressSync(b),
  gzip: (b) => zlib.gunzipSync(b),
  deflate: (b) => zlib.inflateSync(b),
};

Deno.test("forward proxy: every encoding of a 600 KB body (pool) and a stream round-trips", async () => {
  const origin = await startTestBackend("origin");
  const proxy = await startProxy({ env: { FORWARD_ALLOW_PRIVATE: "true", THREAD_POOL_SIZE: "2" } });
  try {
    const plain = await get(proxy.port, `${origin.url}/large`);
    assert.equal(plain.headers["content-encoding"], undefined, "no Accept-Encoding: identity");
    assert.ok(plain.body.length > 500_000);
    for (const enc of ["br", "zstd", "gzip", "deflate"]) {
      const r = await get(proxy.port, `${origin.url}/large`, enc);
      assert.equal(r.status, 200);
      assert.equal(r.headers["content-encoding"], enc);
      assert.match(String(r.headers["vary"]), /accept-encoding/i);
      assert.equal(Number(r.headers["content-length"]), r.body.length);
      assert.ok(DECODE[enc](r.body).equals(plain.body), `${enc} bytes differ`);
      assert.ok(r.body.length < plain.body.length / 3);
    }
    const streamPlain = await get(proxy.port, `${origin.url}/stream/300?delay=0`);
    const stream = await get(proxy.port, `${origin.url}/stream/300?delay=0`, "br;q=0.5, gzip");
    assert.equal(stream.headers["content-encoding"], "gzip", "ndjson of unknown length");
    assert.equal(stream.headers["content-length"], undefined, "streamed");
    assert.ok(DECODE.gzip(stream.body).equals(streamPlain.body));
    const s = await proxy.stats();
    assert.ok(s.compression.pooled >= 4, JSON.stringify(s.compression));
    assert.ok(s.workers.completed >= 4, JSON.stringify(s.workers));
    assert.deepEqual(
      [
        s.compression.compressed.br,
        s.compression.compressed.zstd,
        s.compression.compressed.deflate,
      ],
      [1, 1, 1],
    );
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("reverse proxy: large text compressed, small pages and pre-encoded bodies, off with ENABLE_COMPRESSION=false", async () => {
  const origin = await startTestBackend("origin");
  const proxy = await startProxy({ env: { BACKEND_SERVERS: origin.url } });
  const off = await startProxy({
    env: { BACKEND_SERVERS: origin.url, ENABLE_COMPRESSION: "false" },
  });
  try {
    const large = await get(proxy.port, "/large", "gzip, br");
    const largePlain = await get(proxy.port, "/large");
    assert.equal(large.status, 200);
    assert.equal(large.headers["content-encoding"], "br");
    assert.ok(DECODE.br(large.body).equals(largePlain.body));
    const small = await get(proxy.port, "/", "gzip, br");
    assert.equal(small.headers["content-encoding"], undefined, "902-byte page: below 1 KiB");
    const pre = await get(proxy.port, "/gzip", "br, gzip");
    assert.equal(pre.headers["content-encoding"], "gzip", "the origin's encoding is kept");
    assert.doesNotThrow(() => JSON.parse(DECODE.gzip(pre.body).toString()));

    const uncompressed = await get(off.port, "/large", "br, gzip");
    assert.equal(uncompressed.headers["content-encoding"], undefined);
    assert.ok(uncompressed.body.equals(largePlain.body));
  } finally {
    await proxy.stop();
    await off.stop();
    await origin.close();
  }
});
