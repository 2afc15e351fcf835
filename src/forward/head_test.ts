import assert from "node:assert/strict";
import { UpstreamError } from "./errors.ts";
import { findHeadEnd, parseResponseHead } from "./head.ts";
import { buildRequestHead, decodeLatin1, encodeHead, encodeLatin1 } from "./headers.ts";

const enc = new TextEncoder();

Deno.test("findHeadEnd accepts CRLF and bare LF and resumes scans", () => {
  const a = enc.encode("HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody");
  assert.equal(findHeadEnd(a, 0, a.length), a.length - 4);
  const b = enc.encode("HTTP/1.1 200 OK\nA: b\n\nbody");
  assert.equal(findHeadEnd(b, 0, b.length), b.length - 4);
  const partial = enc.encode("HTTP/1.1 200 OK\r\nA: b\r\n\r");
  assert.equal(findHeadEnd(partial, 0, partial.length), -1);
  assert.equal(findHeadEnd(a, 0, a.length, 20), a.length - 4);
});

Deno.test("parseResponseHead: framing, persistence, folding, Via", () => {
  const h = parseResponseHead(
    "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nVia: 1.0 a\r\nVia: 1.1 b\r\nX-Long: one\r\n two\r\n\r\n",
  );
  assert.equal(h.status, 200);
  assert.equal(h.contentLength, 5);
  assert.equal(h.close, false);
  assert.equal(h.via, "1.0 a, 1.1 b");
  assert.deepEqual(h.headers, [["content-length", "5"], ["x-long", "one two"]]);

  const old = parseResponseHead("HTTP/1.0 200\r\n\r\n");
  assert.equal(old.close, true, "HTTP/1.0 without keep-alive closes");
  assert.equal(parseResponseHead("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n").close, false);
  assert.equal(parseResponseHead("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").close, true);

  const chunked = parseResponseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n");
  assert.equal(chunked.chunked, true);
  assert.equal(chunked.contentLength, -1);

  const up = parseResponseHead(
    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    true,
  );
  assert.deepEqual(up.headers, [["connection", "Upgrade"], ["upgrade", "websocket"]]);
});

Deno.test("parseResponseHead rejects malformed heads as protocol errors", () => {
  for (
    const bad of [
      "HTTP/2 200 OK\r\n\r\n",
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 200OK\r\n\r\n",
      "HTTP/1.1 099 Low\r\n\r\n",
      "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
      "HTTP/1.1 200 OK\r\n folded first\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    ]
  ) {
    assert.throws(
      () => parseResponseHead(bad),
      (e: unknown) => e instanceof UpstreamError && e.kind === "protocol",
      bad,
    );
  }
});

Deno.test("buildRequestHead frames bodies and encodes latin1 byte for byte", () => {
  const req = new Request("http://h/x", { headers: { "x-latin": "caf\u00e9" } });
  const facts = { clientIp: "1.2.3.4", proto: "http" as const, host: "h", preserveHost: false };
  const t = new URL("http://upstream:8080/x?y");
  const head = buildRequestHead(req, t, facts, "1.1 p", -1, false);
  assert.ok(head.startsWith("GET /x?y HTTP/1.1\r\nhost: upstream:8080\r\n"));
  assert.ok(head.endsWith("transfer-encoding: chunked\r\n\r\n"));
  assert.ok(
    buildRequestHead(req, t, facts, "1.1 p", 12, false).endsWith("content-length: 12\r\n\r\n"),
  );
  const bytes = encodeLatin1("caf\u00e9");
  assert.deepEqual([...bytes], [99, 97, 102, 0xe9]);
});

Deno.test("decodeLatin1 and encodeHead are byte-exact for ASCII, latin1 and UTF-8-looking bytes", () => {
  const cases: [number[], string][] = [
    [[104, 105], "hi"],
    [[99, 97, 102, 0xe9], "caf\u00e9"], // invalid UTF-8
    [[0xc3, 0xa9], "\u00c3\u00a9"], // valid UTF-8 "é" read as two latin1 bytes
    [[0xef, 0xbf, 0xbd], "\u00ef\u00bf\u00bd"], // UTF-8 of U+FFFD
  ];
  for (const [bytes, text] of cases) {
    const b = new Uint8Array([32, ...bytes, 32]);
    assert.equal(decodeLatin1(b, 1, b.length - 1), text);
    assert.deepEqual([...encodeHead(text)], bytes);
  }
});
