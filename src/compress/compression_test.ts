import assert from "node:assert/strict";
import * as zlib from "node:zlib";
import { Buffer } from "node:buffer";
import { createCompression } from "./compression.ts";
import { createWorkerPool, TASK_WORKER } from "../workers/mod.ts";
import type { RequestContext } from "../context/mod.ts";

const ctx: RequestContext = {
  id: "t",
  kind: "http",
  conn: { remoteAddr: "127.0.0.1", remotePort: 0, form: "origin", secure: false },
  startedAt: 0,
  clientIp: "127.0.0.1",
};

const BIG = new TextEncoder().encode(JSON.stringify(
  Array.from({ length: 20_000 }, (_, i) => ({ id: i, name: `item ${i}`, even: i % 2 === 0 })),
));

const origin = () =>
  Promise.resolve(
    new Response(BIG.slice(), {
      headers: { "content-type": "application/json", "content-length": String(BIG.length) },
    }),
  );

Deno.test("when the pool refuses (queue full) large bodies are streamed through a compressor instead", async () => {
  const pool = createWorkerPool({
    size: 1,
    queueSize: 0,
    taskTimeoutMs: 30_000,
    entry: TASK_WORKER,
  });
  const compression = createCompression({ enabled: true, encodings: ["gzip"], pool });
  const handler = compression.wrap(origin);
  try {
    const req = () => new Request("http://x/", { headers: { "accept-encoding": "gzip" } });
    const responses = await Promise.all([1, 2, 3].map(() => handler(req(), ctx)));
    for (const res of responses) {
      assert.equal(res.headers.get("content-encoding"), "gzip");
      const body = Buffer.from(await res.arrayBuffer());
      const length = res.headers.get("content-length");
      if (length !== null) assert.equal(Number(length), body.length, "pooled: length known");
      assert.ok(zlib.gunzipSync(body).equals(Buffer.from(BIG)));
    }
    const s = compression.snapshot();
    assert.equal(s.pooled + s.pool_fallbacks, 3);
    assert.ok(s.pool_fallbacks >= 1, "a full pool queue falls back to streaming");
    assert.equal(s.streamed, s.pool_fallbacks);
    assert.equal(pool.snapshot().rejected, s.pool_fallbacks);
  } finally {
    pool.close();
  }
});

Deno.test("disabled compression passes responses through untouched", async () => {
  const compression = createCompression({ enabled: false, encodings: ["gzip"] });
  const res = await compression.wrap(origin)(
    new Request("http://x/", { headers: { "accept-encoding": "gzip" } }),
    ctx,
  );
  assert.equal(res.headers.get("content-encoding"), null);
  assert.equal(res.headers.get("vary"), null);
  assert.equal((await res.arrayBuffer()).byteLength, BIG.length);
});

Deno.test("incompressible bytes labelled as text are sent as they are", async () => {
  const noise = crypto.getRandomValues(new Uint8Array(8192));
  const compression = createCompression({ enabled: true, encodings: ["gzip"] });
  const res = await compression.wrap(() =>
    Promise.resolve(
      new Response(noise.slice(), {
        headers: { "content-type": "text/plain", "content-length": "8192" },
      }),
    )
  )(new Request("http://x/", { headers: { "accept-encoding": "gzip" } }), ctx);
  assert.equal(res.headers.get("content-encoding"), null);
  assert.equal(res.headers.get("vary"), "Accept-Encoding");
  assert.deepEqual(new Uint8Array(await res.arrayBuffer()), noise);
  assert.equal(compression.snapshot().skipped["no-gain"], 1);
});
