import assert from "node:assert/strict";
import { compose } from "../pipeline/mod.ts";
import { ok, serveChain, testContext } from "../pipeline/testing.ts";
import {
  bodyLimitPhase,
  BodyTooLargeError,
  checkFraming,
  checkHeaderCount,
  checkHeaderSize,
  requestHygienePhase,
} from "./hygiene.ts";

function serveWithLimit(max: number) {
  // Stands in for the forwarder: reads the whole upload, answers 502 if the stream breaks.
  const forwarder = async (req: Request) => {
    try {
      const body = await req.arrayBuffer();
      return new Response(`got ${body.byteLength}`);
    } catch (err) {
      return new Response(`upstream failed: ${err instanceof BodyTooLargeError}`, { status: 502 });
    }
  };
  const s = serveChain(compose(forwarder, bodyLimitPhase(max)));
  return { url: `${s.url}/`, close: s.close };
}

function streamOf(total: number, chunk = 1024) {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) return controller.close();
      const n = Math.min(chunk, total - sent);
      sent += n;
      controller.enqueue(new Uint8Array(n));
    },
  });
}

Deno.test("bodyLimitPhase: 413 for a declared or streamed body over the limit, untouched below it", async () => {
  const s = serveWithLimit(10_000);
  try {
    const declared = await fetch(s.url, { method: "POST", body: new Uint8Array(10_001) });
    assert.equal(declared.status, 413);
    assert.match(await declared.text(), /exceeds 10000 bytes \(MAX_BODY_SIZE\)/);
    const exact = await fetch(s.url, { method: "POST", body: new Uint8Array(10_000) });
    assert.equal(await exact.text(), "got 10000");
    const streamedOk = await fetch(s.url, { method: "POST", body: streamOf(9_000) });
    assert.equal(streamedOk.status, 200);
    assert.equal(await streamedOk.text(), "got 9000");
    const streamedBig = await fetch(s.url, { method: "POST", body: streamOf(50_000) });
    assert.equal(streamedBig.status, 413);
    assert.match(await streamedBig.text(), /413 Content Too Large/);
  } finally {
    await s.close();
  }
});

Deno.test("checkHeaderCount and checkHeaderSize answer 431 past the limit", async () => {
  const h = new Headers();
  for (let i = 0; i < 5; i++) h.set(`x-h${i}`, "v");
  assert.equal(checkHeaderCount(h, 5), undefined);
  const r = checkHeaderCount(h, 4)!;
  assert.equal(r.status, 431);
  assert.match(await r.text(), /5 header fields, at most 4 \(MAX_HEADER_COUNT\)/);
  assert.equal(checkHeaderCount(["a", "1", "b", "2"], 2), undefined);
  assert.equal(checkHeaderCount(["a", "1", "b", "2", "c", "3"], 2)?.status, 431);
  assert.equal(checkHeaderCount(101, 100)?.status, 431);
  assert.equal(checkHeaderSize(new Headers({ a: "x".repeat(100) }), 200), undefined);
  assert.equal(checkHeaderSize(new Headers({ a: "x".repeat(300) }), 200)?.status, 431);
});

Deno.test("checkFraming refuses what two parsers could read differently", () => {
  const bad: Record<string, string>[] = [
    { "content-length": "5", "transfer-encoding": "chunked" },
    { "content-length": "5, 6" },
    { "content-length": "-1" },
    { "content-length": "0x10" },
    { "transfer-encoding": "gzip" },
    { "transfer-encoding": "chunked, gzip" },
    { "transfer-encoding": "chunked, chunked" },
  ];
  for (const h of bad) assert.equal(checkFraming(new Headers(h))?.status, 400, JSON.stringify(h));
  const good: Record<string, string>[] = [{}, { "content-length": "5" }, {
    "content-length": "5, 5",
  }, {
    "transfer-encoding": "chunked",
  }, {
    "transfer-encoding": "gzip, chunked",
  }];
  for (const h of good) assert.equal(checkFraming(new Headers(h)), undefined, JSON.stringify(h));
});

Deno.test("requestHygienePhase refuses header floods, two Host fields and ambiguous framing", async () => {
  const handler = compose(ok, requestHygienePhase({ maxHeaderCount: 10, maxHeaderSize: 2048 }));
  const ask = (headers: [string, string][]) =>
    handler(new Request("http://x/", { method: "POST", headers }), testContext());
  assert.equal((await ask([["x-a", "1"]])).status, 200);
  const many = await ask(
    Array.from({ length: 11 }, (_, i) => [`x-h${i}`, "v"] as [string, string]),
  );
  assert.equal(many.status, 431);
  assert.equal((await ask([["x-big", "v".repeat(3000)]])).status, 431);
  const hosts = await ask([["host", "a"], ["host", "b"]]);
  assert.equal(hosts.status, 400);
  assert.match(await hosts.text(), /more than one Host/);
  assert.equal(
    (await ask([["content-length", "1"], ["transfer-encoding", "chunked"]])).status,
    400,
  );
});
