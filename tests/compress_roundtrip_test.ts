/**
 * Compression through a real server and a real client: a Deno.serve server whose handler is
 * `compression.wrap(origin)`, requested with node:http (which, unlike fetch, never decodes),
 * bodies decoded with node:zlib and compared byte for byte.
 */
import assert from "node:assert/strict";
import http from "node:http";
import * as zlib from "node:zlib";
import { Buffer } from "node:buffer";
import { type Compression, createCompression, type Encoding } from "../src/compress/mod.ts";
import { createWorkerPool, TASK_WORKER, type WorkerPool } from "../src/workers/mod.ts";
import type { RequestContext } from "../src/context/mod.ts";

/** Deterministic JSON-ish text of exactly `size` bytes (compressible, not trivially). */
function jsonBody(size: number): Uint8Array {
  let seed = 42;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const words = ["alpha", "beta", "gamma", "delta", "cache", "proxy", "worker", "zstd"];
  let s = "[";
  while (s.length < size) {
    s += `{"id":${Math.floor(rnd() * 1e6)},"name":"${words[Math.floor(rnd() * 8)]}",` +
      `"score":${rnd().toFixed(4)},"tags":["${words[Math.floor(rnd() * 8)]}"]},`;
  }
  return new TextEncoder().encode(s.slice(0, size));
}

const SMALL = jsonBody(8 * 1024); // inline
const LARGE = jsonBody(300 * 1024); // pool
const STREAMED = jsonBody(200 * 1024); // unknown length

function origin(req: Request): Promise<Response> {
  const url = new URL(req.url);
  const json = { "content-type": "application/json" };
  switch (url.pathname) {
    case "/small":
      return Promise.resolve(
        new Response(SMALL.slice(), {
          headers: { ...json, "content-length": String(SMALL.length) },
        }),
      );
    case "/large": // as fetch would give it: with Content-Length
      return Promise.resolve(
        new Response(LARGE.slice(), {
          headers: { ...json, "content-length": String(LARGE.length) },
        }),
      );
    case "/stream": {
      const chunks: Uint8Array[] = [];
      for (let i = 0; i < STREAMED.length; i += 16 * 1024) {
        chunks.push(STREAMED.slice(i, i + 16384));
      }
      return Promise.resolve(new Response(ReadableStream.from(chunks), { headers: json }));
    }
    case "/slow": { // a log tail: lines with pauses, unknown length
      const enc = new TextEncoder();
      let i = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (i > 0) await new Promise((r) => setTimeout(r, 400));
          // The first write is big enough (> minSize) to decide to compress.
          c.enqueue(enc.encode(i === 0 ? "#".repeat(2048) + "\n" : `line ${i}\n`));
          if (++i === 4) c.close();
        },
      });
      return Promise.resolve(new Response(body, { headers: { "content-type": "text/plain" } }));
    }
    case "/tiny": // unknown length: the wrapper must read it to learn it is small
      return Promise.resolve(new Response('{"ok":true}', { headers: json }));
    case "/png":
      return Promise.resolve(
        new Response(SMALL.slice(), { headers: { "content-type": "image/png" } }),
      );
    case "/encoded":
      return Promise.resolve(
        new Response(new Uint8Array(zlib.gzipSync(SMALL)), {
          headers: { ...json, "content-encoding": "gzip" },
        }),
      );
    case "/no-transform":
      return Promise.resolve(
        new Response(SMALL.slice(), {
          headers: { ...json, "cache-control": "public, no-transform" },
        }),
      );
    case "/etag":
      return Promise.resolve(
        new Response(SMALL.slice(), { headers: { ...json, etag: '"v1"', vary: "Origin" } }),
      );
    case "/partial":
      return Promise.resolve(
        new Response(SMALL.slice(0, 2000), {
          status: 206,
          headers: { ...json, "content-range": `bytes 0-1999/${SMALL.length}` },
        }),
      );
    case "/empty":
      return Promise.resolve(new Response(null, { status: 204 }));
  }
  return Promise.resolve(new Response("not found", { status: 404 }));
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function request(
  port: number,
  path: string,
  acceptEncoding?: string,
  method = "GET",
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (acceptEncoding !== undefined) headers["accept-encoding"] = acceptEncoding;
    const req = http.request(
      { host: "127.0.0.1", port, path, method, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on(
          "end",
          () =>
            resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

function decode(encoding: string | undefined, body: Buffer): Buffer {
  switch (encoding) {
    case "br":
      return zlib.brotliDecompressSync(body);
    case "zstd":
      return zlib.zstdDecompressSync(body);
    case "gzip":
      return zlib.gunzipSync(body);
    case "deflate":
      return zlib.inflateSync(body);
    case undefined:
      return body;
  }
  throw new Error(`unexpected content-encoding ${encoding}`);
}

interface Fixture {
  port: number;
  compression: Compression;
  pool: WorkerPool;
  close(): Promise<void>;
}

function start(encodings: Encoding[] = ["br", "zstd", "gzip", "deflate"]): Fixture {
  const pool = createWorkerPool({
    size: 2,
    queueSize: 64,
    taskTimeoutMs: 30_000,
    entry: TASK_WORKER,
  });
  const compression = createCompression({ enabled: true, encodings, minSize: 1024, pool });
  const handler = compression.wrap(origin);
  const ctx = (): RequestContext => ({
    id: "t",
    kind: "http",
    conn: { remoteAddr: "127.0.0.1", remotePort: 0, form: "origin", secure: false },
    startedAt: performance.now(),
    clientIp: "127.0.0.1",
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => handler(req, ctx()),
  );
  return {
    port: server.addr.port,
    compression,
    pool,
    async close() {
      await server.shutdown();
      pool.close();
    },
  };
}

const EXPECTED: Record<string, Uint8Array> = {
  "/small": SMALL,
  "/large": LARGE,
  "/stream": STREAMED,
};

Deno.test("every encoding round-trips to the exact bytes: inline, pooled and streamed", async () => {
  const f = start();
  try {
    for (const encoding of ["br", "zstd", "gzip", "deflate"] as const) {
      for (const path of ["/small", "/large", "/stream"]) {
        const r = await request(f.port, path, encoding);
        assert.equal(r.status, 200);
        assert.equal(r.headers["content-encoding"], encoding, `${path} ${encoding}`);
        assert.equal(r.headers["vary"], "Accept-Encoding");
        const plain = decode(encoding, r.body);
        assert.ok(plain.equals(Buffer.from(EXPECTED[path])), `${path} ${encoding} bytes differ`);
        assert.ok(r.body.length < plain.length / 2, `${path} ${encoding} should shrink`);
        if (path === "/stream") {
          assert.equal(r.headers["content-length"], undefined);
        } else {
          assert.equal(Number(r.headers["content-length"]), r.body.length);
        }
      }
    }
    const s = f.compression.snapshot();
    assert.deepEqual(s.compressed, { br: 3, zstd: 3, gzip: 3, deflate: 3 });
    assert.deepEqual([s.inline, s.pooled, s.streamed], [4, 4, 4]);
    assert.ok(s.ratio > 0 && s.ratio < 0.5, `ratio ${s.ratio}`);
    assert.equal(f.pool.snapshot().completed, 4, "large bodies went through the pool");
  } finally {
    await f.close();
  }
});

Deno.test("a slow stream reaches the client while it is produced, not only at its end", async () => {
  const f = start();
  try {
    for (const encoding of ["br", "zstd", "gzip", "deflate"] as const) {
      const { decoded, firstLineAfterMs, totalMs } = await new Promise<
        { decoded: string; firstLineAfterMs: number; totalMs: number }
      >((resolve, reject) => {
        const t0 = performance.now();
        let firstLineAfterMs = -1;
        let decoded = "";
        const req = http.get({
          host: "127.0.0.1",
          port: f.port,
          path: "/slow",
          headers: { "accept-encoding": encoding },
          agent: false,
        }, (res) => {
          assert.equal(res.headers["content-encoding"], encoding);
          const decoder = encoding === "br"
            ? zlib.createBrotliDecompress()
            : encoding === "zstd"
            ? zlib.createZstdDecompress()
            : encoding === "gzip"
            ? zlib.createGunzip()
            : zlib.createInflate();
          decoder.setEncoding("utf8");
          decoder.on("data", (s: string) => {
            decoded += s;
            if (firstLineAfterMs < 0 && decoded.includes("line 1\n")) {
              firstLineAfterMs = performance.now() - t0;
            }
          });
          decoder.on(
            "end",
            () => resolve({ decoded, firstLineAfterMs, totalMs: performance.now() - t0 }),
          );
          decoder.on("error", reject);
          res.pipe(decoder);
        });
        req.on("error", reject);
      });
      assert.equal(decoded, "#".repeat(2048) + "\nline 1\nline 2\nline 3\n", encoding);
      // "line 1" is written ~400 ms in, the body ends ~1200 ms in.
      assert.ok(
        firstLineAfterMs > 0 && firstLineAfterMs < totalMs - 500,
        `${encoding}: line 1 decoded after ${firstLineAfterMs} ms of ${totalMs} ms`,
      );
    }
  } finally {
    await f.close();
  }
});

Deno.test("q-values, q=0, identity and * pick the coding the client prefers", async () => {
  const f = start();
  try {
    const cases: [string, string | undefined][] = [
      ["gzip, deflate, br, zstd", "br"],
      ["gzip;q=1, br;q=0.5", "gzip"],
      ["br;q=0, zstd;q=0, gzip", "gzip"],
      ["deflate", "deflate"],
      ["identity", undefined],
      ["gzip;q=0.3, identity", undefined],
      ["*", "br"],
      ["*;q=0", undefined],
      ["br;q=0, *", "zstd"],
    ];
    for (const [ae, expected] of cases) {
      const r = await request(f.port, "/small", ae);
      assert.equal(r.headers["content-encoding"], expected, `Accept-Encoding: ${ae}`);
      assert.equal(r.headers["vary"], "Accept-Encoding", `Vary even for ${ae}`);
      assert.ok(decode(expected, r.body).equals(Buffer.from(SMALL)));
    }
    const none = await request(f.port, "/small");
    assert.equal(none.headers["content-encoding"], undefined, "no Accept-Encoding: identity");
    assert.equal(f.compression.snapshot().skipped["not-accepted"], 4);
  } finally {
    await f.close();
  }
});

Deno.test("server preference order decides among equal q-values", async () => {
  const f = start(["gzip", "br"]);
  try {
    const r = await request(f.port, "/small", "br, gzip, zstd");
    assert.equal(r.headers["content-encoding"], "gzip");
    const z = await request(f.port, "/small", "zstd");
    assert.equal(z.headers["content-encoding"], undefined, "zstd not configured");
  } finally {
    await f.close();
  }
});

Deno.test("images, small bodies, encoded bodies, no-transform, 206, 204 and HEAD stay as they are", async () => {
  const f = start();
  try {
    const png = await request(f.port, "/png", "gzip, br");
    assert.equal(png.headers["content-encoding"], undefined);
    assert.equal(png.headers["vary"], undefined);
    assert.ok(png.body.equals(Buffer.from(SMALL)));

    const tiny = await request(f.port, "/tiny", "gzip, br");
    assert.equal(tiny.headers["content-encoding"], undefined);
    assert.equal(tiny.body.toString(), '{"ok":true}');

    const encoded = await request(f.port, "/encoded", "br, zstd, gzip");
    assert.equal(encoded.headers["content-encoding"], "gzip", "left as the origin encoded it");
    assert.ok(zlib.gunzipSync(encoded.body).equals(Buffer.from(SMALL)), "not compressed twice");

    const nt = await request(f.port, "/no-transform", "gzip, br");
    assert.equal(nt.headers["content-encoding"], undefined);
    assert.ok(nt.body.equals(Buffer.from(SMALL)));

    const partial = await request(f.port, "/partial", "gzip, br");
    assert.equal(partial.status, 206);
    assert.equal(partial.headers["content-encoding"], undefined);
    assert.equal(partial.body.length, 2000);

    const empty = await request(f.port, "/empty", "gzip, br");
    assert.equal(empty.status, 204);
    assert.equal(empty.headers["content-encoding"], undefined);

    const head = await request(f.port, "/small", "gzip, br", "HEAD");
    assert.equal(head.headers["content-encoding"], undefined);
    assert.equal(head.headers["vary"], "Accept-Encoding", "HEAD mirrors GET's Vary");

    const s = f.compression.snapshot().skipped;
    assert.deepEqual(
      [s.type, s["too-small"], s["already-encoded"], s["no-transform"], s.status, s.head],
      [1, 1, 1, 1, 2, 1],
    );
  } finally {
    await f.close();
  }
});

Deno.test("strong ETags become weak and Vary is merged with the origin's", async () => {
  const f = start();
  try {
    const r = await request(f.port, "/etag", "gzip");
    assert.equal(r.headers["content-encoding"], "gzip");
    assert.equal(r.headers["etag"], 'W/"v1"');
    assert.equal(r.headers["vary"], "Origin, Accept-Encoding");
    const identity = await request(f.port, "/etag", "identity");
    assert.equal(identity.headers["etag"], '"v1"', "the identity body keeps its strong ETag");
    assert.equal(identity.headers["vary"], "Origin, Accept-Encoding");
  } finally {
    await f.close();
  }
});

Deno.test("a pool worker killed mid-compression is replaced and the request still answers", async () => {
  const f = start();
  try {
    const pending = request(f.port, "/large", "gzip");
    // Kill the worker as soon as it has the task (the task is idempotent: it is retried).
    let answered = false;
    pending.finally(() => answered = true);
    while (f.pool.busyWorker() === undefined && !answered) {
      await new Promise((r) => setTimeout(r, 1));
    }
    const busy = f.pool.busyWorker();
    // The first task also waits for the worker's module to load, so it is seen busy.
    assert.notEqual(busy, undefined, "the large body went to a worker");
    f.pool.kill(busy!);
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-encoding"], "gzip");
    assert.ok(zlib.gunzipSync(r.body).equals(Buffer.from(LARGE)));
    assert.deepEqual([f.pool.snapshot().restarts, f.pool.snapshot().retries], [1, 1]);
  } finally {
    await f.close();
  }
});
