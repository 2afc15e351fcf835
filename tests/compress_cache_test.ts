/**
 * The cache wraps compression (`cache.wrap(compression.wrap(route))`): it stores the encoded
 * variant compression produced, with `Vary: Accept-Encoding`, and serves hits without
 * compressing again. Real Deno.serve server, real node:http client, exact bytes.
 */
import assert from "node:assert/strict";
import http from "node:http";
import * as zlib from "node:zlib";
import { Buffer } from "node:buffer";
import { createCache, STRICT_HEURISTIC } from "../src/cache/mod.ts";
import { createCompression } from "../src/compress/mod.ts";
import { createWorkerPool, TASK_WORKER } from "../src/workers/mod.ts";
import type { RequestContext } from "../src/context/mod.ts";

const BODY = new TextEncoder().encode(JSON.stringify(
  Array.from({ length: 4000 }, (_, i) => ({ id: i, title: `entry ${i}`, tags: ["a", "b"] })),
));

function get(
  port: number,
  acceptEncoding: string,
): Promise<{ headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http.get({
      host: "127.0.0.1",
      port,
      path: "/doc",
      headers: { "accept-encoding": acceptEncoding },
      agent: false,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    }).on("error", reject);
  });
}

Deno.test("cache hits serve the stored encoded variant without recompressing", async () => {
  let originCalls = 0;
  const origin = () => {
    originCalls++;
    return Promise.resolve(
      new Response(BODY.slice(), {
        headers: {
          "content-type": "application/json",
          "content-length": String(BODY.length),
          "cache-control": "public, max-age=600",
          etag: '"doc-v1"',
        },
      }),
    );
  };
  const pool = createWorkerPool({
    size: 1,
    queueSize: 16,
    taskTimeoutMs: 30_000,
    entry: TASK_WORKER,
  });
  const compression = createCompression({ enabled: true, encodings: ["br", "gzip"], pool });
  const cache = await createCache({
    backend: "memory",
    memoryBytes: 16 << 20,
    maxObjectBytes: 4 << 20,
    heuristic: STRICT_HEURISTIC,
    prefix: "test:",
  });
  const handler = cache.wrap(compression.wrap(origin));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const ctx: RequestContext = {
      id: "t",
      kind: "http",
      conn: { remoteAddr: "127.0.0.1", remotePort: 0, form: "origin", secure: false },
      startedAt: performance.now(),
      clientIp: "127.0.0.1",
    };
    return handler(req, ctx);
  });
  const port = server.addr.port;
  try {
    const first = await get(port, "br");
    assert.equal(first.headers["content-encoding"], "br");
    assert.ok(zlib.brotliDecompressSync(first.body).equals(Buffer.from(BODY)));
    await cache.settle();
    for (let i = 0; i < 3; i++) {
      const hit = await get(port, "br");
      assert.equal(hit.headers["content-encoding"], "br");
      assert.match(String(hit.headers["vary"]), /accept-encoding/i);
      assert.equal(hit.headers["etag"], 'W/"doc-v1"');
      assert.ok(hit.body.equals(first.body), "the stored encoded bytes, unchanged");
    }
    assert.equal(originCalls, 1, "hits never reach the origin");
    assert.equal(compression.snapshot().compressed.br, 1, "hits are not recompressed");

    // Another coding is another variant: fetched and compressed once, then served from cache.
    const gz = await get(port, "gzip");
    assert.equal(gz.headers["content-encoding"], "gzip");
    assert.ok(zlib.gunzipSync(gz.body).equals(Buffer.from(BODY)));
    await cache.settle();
    const gzHit = await get(port, "gzip");
    assert.ok(gzHit.body.equals(gz.body));
    assert.equal(compression.snapshot().compressed.gzip, 1);
    assert.equal(originCalls, 2);
    const s = cache.snapshot();
    assert.ok(s.cache_hits >= 4, JSON.stringify(s));
  } finally {
    await server.shutdown();
    await cache.close();
    pool.close();
  }
});
