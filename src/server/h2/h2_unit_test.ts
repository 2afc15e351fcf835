import assert from "node:assert/strict";
import { GoawayRewriter } from "./goaway_guard.ts";
import { responseHeaders } from "./fields.ts";

function frame(type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(9 + payload.length);
  f[0] = payload.length >> 16;
  f[1] = (payload.length >> 8) & 255;
  f[2] = payload.length & 255;
  f[3] = type;
  f.set(payload, 9);
  return f;
}

Deno.test("GoawayRewriter: a client GOAWAY becomes an ignored frame type, other bytes stay, however the reads split", () => {
  const preface = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  const goaway = new Uint8Array(8);
  goaway[7] = 0; // error code NO_ERROR; last-stream-id 0 in bytes 0..3
  const parts = [
    preface,
    frame(4, new Uint8Array(12)), // SETTINGS
    frame(1, new Uint8Array(40).fill(7)), // HEADERS
    frame(0, new Uint8Array(20_000).fill(9)), // DATA
    frame(7, goaway), // GOAWAY
    frame(6, new Uint8Array(8).fill(3)), // PING
  ];
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  let goawayPayload = 0;
  for (const p of parts) {
    if (p[3] === 7 && p !== preface) goawayPayload = off + 9;
    all.set(p, off);
    off += p.length;
  }
  const expected = all.slice();
  expected[goawayPayload - 9 + 3] = 0xfa;
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (let trial = 0; trial < 300; trial++) {
    const input = all.slice();
    const r = new GoawayRewriter();
    const out: number[] = [];
    let i = 0;
    while (i < input.length) {
      const n = 1 + Math.floor(random() * (trial % 3 === 0 ? 6 : 4000));
      out.push(...r.rewrite(input.subarray(i, i + n)));
      i += n;
    }
    assert.deepEqual(new Uint8Array(out), expected, `split pattern ${trial}`);
  }
});

Deno.test("responseHeaders: no connection-specific fields on h2 (RFC 9113 §8.2.2), cookies one per field", () => {
  const headers = new Headers([
    ["content-type", "text/plain"],
    ["connection", "keep-alive, x-private"],
    ["keep-alive", "timeout=5"],
    ["proxy-connection", "keep-alive"],
    ["transfer-encoding", "chunked"],
    ["upgrade", "h2c"],
    ["x-private", "1"],
    ["set-cookie", "a=1"],
    ["set-cookie", "b=2"],
  ]);
  const out = responseHeaders(new Response(null, { status: 201, headers }));
  assert.deepEqual(out, {
    ":status": 201,
    "content-type": "text/plain",
    "set-cookie": ["a=1", "b=2"],
  });
});
