import assert from "node:assert/strict";
import { createForwarder, UpstreamError } from "./mod.ts";
import {
  collect,
  parseHeaders,
  RawServer,
  Reader,
  serveOrigin,
  testInfo,
  testOptions,
  text,
  write,
} from "./testing.ts";
import { ignoreUnless } from "../../tests/helpers/ignore.ts";

const enc = new TextEncoder();

function target(base: URL, path: string): URL {
  return new URL(path, base);
}

async function rejectsWith(
  p: Promise<unknown>,
  kind: string,
  status: number,
): Promise<UpstreamError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof UpstreamError, `expected UpstreamError, got ${err}`);
    assert.equal(err.kind, kind, err.message);
    assert.equal(err.status, status);
    return err;
  }
  throw new Error("expected a rejection");
}

Deno.test("every method carries bodies both ways", async () => {
  const origin = serveOrigin(async (req) => {
    const body = await req.text();
    return new Response(req.method === "HEAD" ? null : `${req.method}:${body}`, {
      headers: { "x-method": req.method, "x-len": req.headers.get("content-length") ?? "none" },
    });
  });
  const fwd = createForwarder(testOptions());
  try {
    for (const method of ["GET", "DELETE", "OPTIONS", "POST", "PUT", "PATCH"]) {
      const withBody = method !== "GET";
      const req = new Request("http://proxy.test/echo", {
        method,
        body: withBody ? `payload-${method}` : undefined,
      });
      const res = await fwd.forward(req, target(origin.url, "/echo"), testInfo());
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-method"), method);
      assert.equal(await res.text(), `${method}:${withBody ? `payload-${method}` : ""}`);
    }
    // POST without body still announces a length, so the origin does not wait for one.
    const res = await fwd.forward(
      new Request("http://proxy.test/", { method: "POST" }),
      origin.url,
      testInfo(),
    );
    assert.equal(res.headers.get("x-len"), "0");
    await res.body?.cancel();
    const snap = fwd.snapshot();
    assert.equal(snap.connections_opened, 1, "all requests shared one kept-alive connection");
    assert.equal(snap.requests, 7);
  } finally {
    fwd.close();
    await origin.close();
  }
});

Deno.test("HEAD, 204 and 304 have no body and keep the connection", async () => {
  const origin = serveOrigin((req) => {
    const p = new URL(req.url).pathname;
    if (p === "/204") return new Response(null, { status: 204 });
    if (p === "/304") return new Response(null, { status: 304, headers: { etag: '"v1"' } });
    return new Response("0123456789", { headers: { "content-type": "text/plain" } });
  });
  const fwd = createForwarder(testOptions());
  try {
    const head = await fwd.forward(
      new Request("http://x/", { method: "HEAD" }),
      origin.url,
      testInfo(),
    );
    assert.equal(head.status, 200);
    assert.equal(head.body, null);
    assert.equal(head.headers.get("content-length"), "10");
    const r204 = await fwd.forward(
      new Request("http://x/204"),
      target(origin.url, "/204"),
      testInfo(),
    );
    assert.equal(r204.status, 204);
    assert.equal(r204.body, null);
    const r304 = await fwd.forward(
      new Request("http://x/304"),
      target(origin.url, "/304"),
      testInfo(),
    );
    assert.equal(r304.status, 304);
    assert.equal(r304.headers.get("etag"), '"v1"');
    const get = await fwd.forward(new Request("http://x/"), origin.url, testInfo());
    assert.equal(await get.text(), "0123456789");
    assert.equal(fwd.snapshot().connections_opened, 1);
  } finally {
    fwd.close();
    await origin.close();
  }
});

Deno.test("keep-alive: N sequential requests open one connection; Connection: close is honoured", async () => {
  const ports = new Set<number>();
  const origin = serveOrigin((req, info) => {
    ports.add(info.remoteAddr.port);
    const close = new URL(req.url).pathname === "/close";
    return new Response("ok", close ? { headers: { connection: "close" } } : undefined);
  });
  const fwd = createForwarder(testOptions());
  try {
    for (let i = 0; i < 20; i++) {
      const res = await fwd.forward(new Request("http://x/"), origin.url, testInfo());
      assert.equal(await res.text(), "ok");
    }
    assert.equal(ports.size, 1, "the origin saw one client connection");
    let snap = fwd.snapshot();
    assert.equal(snap.connections_opened, 1);
    assert.equal(snap.connections_reused, 19);
    assert.equal(snap.reuse_ratio, 0.95);
    assert.equal(snap.idle, 1);
    const key = Object.keys(snap.origins)[0];
    assert.deepEqual(snap.origins[key], {
      opened: 1,
      reused: 19,
      requests: 20,
      errors: 0,
      idle: 1,
    });

    const res = await fwd.forward(
      new Request("http://x/close"),
      target(origin.url, "/close"),
      testInfo(),
    );
    assert.equal(await res.text(), "ok");
    assert.equal(res.headers.get("connection"), null, "Connection is hop-by-hop");
    snap = fwd.snapshot();
    assert.equal(snap.idle, 0, "a connection the origin closes is not pooled");
    const after = await fwd.forward(new Request("http://x/"), origin.url, testInfo());
    await after.text();
    assert.equal(fwd.snapshot().connections_opened, 2);
  } finally {
    fwd.close();
    await origin.close();
  }
});

Deno.test("idle pooled connections expire", async () => {
  let closedByProxy: Promise<boolean> | undefined;
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    await r.request();
    await write(conn, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    closedByProxy = r.eof();
    await closedByProxy;
  });
  const fwd = createForwarder(testOptions({ idleTimeoutMs: 100 }));
  try {
    const res = await fwd.forward(new Request("http://x/"), server.url, testInfo());
    assert.equal(await res.text(), "ok");
    assert.equal(fwd.snapshot().idle, 1);
    assert.equal(await closedByProxy, true, "the proxy closed the idle connection");
    assert.equal(fwd.snapshot().idle, 0);
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("a pooled connection found dead is retried once on a fresh one", async () => {
  // Each connection answers one request with keep-alive semantics, then the server drops it.
  const server = new RawServer(async (conn, index) => {
    const r = new Reader(conn);
    const req = await r.request();
    if (req === null) return;
    const body = `conn${index}:${text(req.body)}`;
    await write(conn, `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
  });
  const fwd = createForwarder(testOptions());
  try {
    const first = await fwd.forward(new Request("http://x/"), server.url, testInfo());
    assert.equal(await first.text(), "conn0:");
    assert.equal(fwd.snapshot().idle, 1);
    // Buffered (small) bodies are retried too: the bytes are still at hand.
    const second = await fwd.forward(
      // A client request as Deno.serve delivers it: with its Content-Length.
      new Request("http://x/", {
        method: "POST",
        body: "again",
        headers: { "content-length": "5" },
      }),
      server.url,
      testInfo(),
    );
    assert.equal(await second.text(), "conn1:again");
    const snap = fwd.snapshot();
    assert.equal(snap.connections_opened, 2);
    assert.equal(snap.errors, 0);
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("a streamed upload is never retried on a dead pooled connection", async () => {
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    await r.request();
    await write(conn, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
  });
  const fwd = createForwarder(testOptions());
  try {
    const first = await fwd.forward(new Request("http://x/"), server.url, testInfo());
    await first.text();
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(enc.encode("streamed"));
        c.close();
      },
    });
    const req = new Request("http://x/", { method: "POST", body, duplex: "half" } as RequestInit);
    await rejectsWith(fwd.forward(req, server.url, testInfo()), "reset", 502);
    assert.equal(fwd.snapshot().connections_opened, 1);
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("chunked responses are decoded, trailers dropped, no Content-Length", async () => {
  const big = "x".repeat(100_000);
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    for (;;) {
      const req = await r.request();
      if (req === null) return;
      if (req.head.startsWith("GET /small")) {
        await write(
          conn,
          "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n" +
            "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 42\r\n\r\n",
        );
      } else {
        // A large body in odd pieces, written in several segments.
        await write(conn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (let i = 0; i < big.length; i += 7001) {
          const piece = big.slice(i, i + 7001);
          await write(conn, piece.length.toString(16) + "\r\n");
          await write(conn, piece + "\r\n");
        }
        await write(conn, "0\r\n\r\n");
      }
    }
  });
  const fwd = createForwarder(testOptions());
  try {
    const small = await fwd.forward(
      new Request("http://x/small"),
      target(server.url, "/small"),
      testInfo(),
    );
    assert.equal(small.headers.get("content-length"), null);
    assert.equal(small.headers.get("transfer-encoding"), null);
    assert.equal(small.headers.get("trailer"), null);
    assert.equal(await small.text(), "hello world");
    const large = await fwd.forward(
      new Request("http://x/large"),
      target(server.url, "/large"),
      testInfo(),
    );
    assert.equal(large.headers.get("content-length"), null);
    assert.equal(await large.text(), big);
    const again = await fwd.forward(
      new Request("http://x/small"),
      target(server.url, "/small"),
      testInfo(),
    );
    assert.equal(await again.text(), "hello world");
    assert.equal(fwd.snapshot().connections_opened, 1, "chunked framing is definite: reused");
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("close-delimited bodies are read to EOF and the connection is not reused", async () => {
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    await r.request();
    await write(conn, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n");
    await write(conn, "part one, ");
    await write(conn, "part two");
  });
  const fwd = createForwarder(testOptions());
  try {
    for (let i = 0; i < 2; i++) {
      const res = await fwd.forward(new Request("http://x/"), server.url, testInfo());
      assert.equal(await res.text(), "part one, part two");
    }
    assert.equal(fwd.snapshot().connections_opened, 2);
    assert.equal(fwd.snapshot().idle, 0);
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("Transfer-Encoding wins over Content-Length and the connection is dropped", async () => {
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    await r.request();
    await write(
      conn,
      "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
    );
    await r.eof();
  });
  const fwd = createForwarder(testOptions());
  try {
    const res = await fwd.forward(new Request("http://x/"), server.url, testInfo());
    assert.equal(res.headers.get("content-length"), null);
    assert.equal(await res.text(), "abcd");
    assert.equal(fwd.snapshot().idle, 0);
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("malformed responses are protocol errors (502)", async () => {
  const replies = [
    "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
    "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
    "HTTP/1.1 200 OK\r\ncontent-length: 12abc\r\n\r\n",
    "HTTP/1.1 2000 OK\r\n\r\n",
    "ICY 200 OK\r\n\r\n",
    "HTTP/1.1 200 OK\r\nbad header line\r\n\r\n",
    "HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
    "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
    "HTTP/1.1 200 OK\r\nx-huge: " + "a".repeat(70_000) + "\r\n\r\n",
    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
  ];
  const server = new RawServer(async (conn, index) => {
    const r = new Reader(conn);
    await r.request();
    await write(conn, replies[index]);
    await r.eof();
  });
  const fwd = createForwarder(testOptions());
  try {
    for (let i = 0; i < replies.length; i++) {
      const p = fwd.forward(new Request("http://x/"), server.url, testInfo());
      if (i === replies.length - 1) {
        // The chunk-size error surfaces while streaming: the body stream errors.
        const res = await p;
        await assert.rejects(res.text());
        continue;
      }
      const err = await rejectsWith(p, "protocol", 502);
      assert.equal(err.requestSent, true);
    }
    assert.equal(fwd.snapshot().errors_by_kind.protocol, replies.length);
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("interim 100 Continue and 103 Early Hints are skipped", async () => {
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    await r.request();
    await write(conn, "HTTP/1.1 100 Continue\r\n\r\n");
    await write(conn, "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n");
    await write(conn, "HTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\ndone");
  });
  const fwd = createForwarder(testOptions());
  try {
    const res = await fwd.forward(
      new Request("http://x/", { method: "POST", body: "data" }),
      server.url,
      testInfo(),
    );
    assert.equal(res.status, 201);
    assert.equal(await res.text(), "done");
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("response timeout, connection refused and connect timeout map to kinds and statuses", async () => {
  const silent = new RawServer(async (conn) => {
    await new Reader(conn).eof();
  });
  const fwd = createForwarder(testOptions({ responseTimeoutMs: 300, connectTimeoutMs: 300 }));
  const refused = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const refusedPort = (refused.addr as Deno.NetAddr).port;
  refused.close();
  try {
    const started = Date.now();
    const timeout = await rejectsWith(
      fwd.forward(new Request("http://x/"), silent.url, testInfo()),
      "response-timeout",
      504,
    );
    assert.equal(timeout.requestSent, true);
    assert.ok(Date.now() - started >= 250);

    const err = await rejectsWith(
      fwd.forward(
        new Request("http://x/"),
        new URL(`http://127.0.0.1:${refusedPort}/`),
        testInfo(),
      ),
      "connect",
      502,
    );
    assert.equal(err.requestSent, false);

    // TCP connects but the TLS handshake never completes: the connect timeout covers it.
    const tlsTarget = new URL(`https://127.0.0.1:${silent.port}/`);
    const ct = await rejectsWith(
      fwd.forward(new Request("http://x/"), tlsTarget, testInfo()),
      "connect-timeout",
      504,
    );
    assert.equal(ct.requestSent, false);
    const snap = fwd.snapshot();
    assert.equal(snap.errors, 3);
    const families = fwd.metrics();
    const errors = families.find((f) => f.name === "proxy_upstream_errors_total");
    assert.ok(errors?.samples.some((s) => s.labels?.kind === "response-timeout" && s.value === 1));
  } finally {
    fwd.close();
    await silent.close();
  }
});

Deno.test("EOF before a complete head is a reset", async () => {
  const server = new RawServer(async (conn) => {
    await new Reader(conn).request();
    await write(conn, "HTTP/1.1 200 OK\r\ncontent-le");
  });
  const fwd = createForwarder(testOptions());
  try {
    const err = await rejectsWith(
      fwd.forward(new Request("http://x/"), server.url, testInfo()),
      "reset",
      502,
    );
    assert.equal(err.requestSent, true);
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("an upstream dying mid-body errors the body stream (never a short body)", async () => {
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    const req = await r.request();
    if (req?.head.startsWith("GET /chunked")) {
      await write(conn, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10000\r\n");
      await write(conn, new Uint8Array(30_000));
    } else {
      await write(conn, "HTTP/1.1 200 OK\r\ncontent-length: 200000\r\n\r\n");
      await write(conn, new Uint8Array(100_000));
    }
  });
  const fwd = createForwarder(testOptions());
  try {
    for (const path of ["/length", "/chunked"]) {
      const res = await fwd.forward(
        new Request("http://x" + path),
        target(server.url, path),
        testInfo(),
      );
      assert.equal(res.status, 200);
      await assert.rejects(
        res.arrayBuffer(),
        (e: unknown) => e instanceof UpstreamError && e.kind === "reset",
      );
    }
    assert.equal(fwd.snapshot().errors, 2);
    assert.equal(fwd.snapshot().idle, 0);
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("a client cancelling the body closes the upstream connection", async () => {
  let sawClose: Promise<boolean> | undefined;
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    await r.request();
    await write(conn, "HTTP/1.1 200 OK\r\ncontent-length: 10000000\r\n\r\n");
    await write(conn, new Uint8Array(200_000));
    sawClose = r.eof();
    await sawClose;
  });
  const fwd = createForwarder(testOptions());
  try {
    const res = await fwd.forward(new Request("http://x/"), server.url, testInfo());
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
    while (sawClose === undefined) await new Promise((r) => setTimeout(r, 10));
    assert.equal(await sawClose, true);
    assert.equal(fwd.snapshot().idle, 0);
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("hop-by-hop headers are stripped both ways, including those named in Connection", async () => {
  let seen: Map<string, string> | undefined;
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    const req = await r.request();
    seen = parseHeaders(req!.head);
    await write(
      conn,
      "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Resp-Hop\r\nX-Resp-Hop: secret\r\n" +
        "Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nTrailer: x-t\r\nUpgrade: h2c\r\n" +
        "Proxy-Connection: keep-alive\r\nX-End: kept\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n" +
        "content-length: 2\r\n\r\nok",
    );
  });
  const fwd = createForwarder(testOptions());
  try {
    const req = new Request("http://x/p?q=1", {
      headers: {
        // A named field sorting before "connection" and one after it.
        connection: "keep-alive, X-Req-Hop, A-Req-Hop",
        "a-req-hop": "secret",
        "x-req-hop": "secret",
        "keep-alive": "timeout=5",
        "proxy-connection": "keep-alive",
        "proxy-authorization": "Basic Zm9vOmJhcg==",
        te: "trailers",
        trailer: "x-t",
        upgrade: "websocket",
        "x-end": "kept",
      },
    });
    const res = await fwd.forward(req, target(server.url, "/p?q=1"), testInfo());
    assert.equal(await res.text(), "ok");
    for (
      const h of [
        "connection",
        "a-req-hop",
        "x-req-hop",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
        "transfer-encoding",
      ]
    ) {
      assert.equal(seen!.has(h), false, `request header ${h} must not reach the origin`);
    }
    assert.equal(seen!.get("x-end"), "kept");
    for (
      const h of [
        "connection",
        "x-resp-hop",
        "keep-alive",
        "proxy-authenticate",
        "trailer",
        "upgrade",
        "proxy-connection",
      ]
    ) {
      assert.equal(res.headers.get(h), null, `response header ${h} must not reach the client`);
    }
    assert.equal(res.headers.get("x-end"), "kept");
    assert.deepEqual(res.headers.getSetCookie(), ["a=1", "b=2"]);
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("X-Forwarded-*, Via both ways, Host rewritten or preserved, origin-form target", async () => {
  const heads: string[] = [];
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    for (;;) {
      const req = await r.request();
      if (req === null) return;
      heads.push(req.head);
      await write(conn, "HTTP/1.1 200 OK\r\nVia: 1.1 origin-cache\r\ncontent-length: 0\r\n\r\n");
    }
  });
  const fwd = createForwarder(testOptions());
  try {
    const t = target(server.url, "/a/b?c=d&e");
    const res = await fwd.forward(
      new Request("http://client.example/a/b?c=d&e", {
        headers: { "x-forwarded-for": "198.51.100.1", via: "1.0 edge" },
      }),
      t,
      testInfo(),
    );
    assert.equal(res.headers.get("via"), "1.1 origin-cache, 1.1 proxy");
    let h = parseHeaders(heads[0]);
    assert.ok(heads[0].startsWith("GET /a/b?c=d&e HTTP/1.1\r\n"), heads[0]);
    assert.equal(h.get("host"), t.host, "forward mode: Host is the target authority");
    assert.equal(h.get("x-forwarded-for"), "198.51.100.1, 203.0.113.7");
    assert.equal(h.get("x-forwarded-proto"), "http");
    assert.equal(h.get("x-forwarded-host"), "client.example");
    assert.equal(h.get("via"), "1.0 edge, 1.1 proxy");

    await fwd.forward(
      new Request("http://client.example/", { headers: { "x-forwarded-for": "6.6.6.6" } }),
      server.url,
      testInfo({ preserveHost: true, forwardedFor: "203.0.113.7", proto: "https" }),
    );
    h = parseHeaders(heads[1]);
    assert.equal(
      h.get("host"),
      "client.example",
      "reverse mode: the client's Host reaches the backend",
    );
    assert.equal(h.get("x-forwarded-for"), "203.0.113.7", "the caller's replacement value wins");
    assert.equal(h.get("x-forwarded-proto"), "https");
    assert.equal(h.get("via"), "1.1 proxy");
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("gzip bytes and Content-Encoding pass through untouched", async () => {
  const plain = enc.encode("compress me ".repeat(2000));
  const gz = new Uint8Array(
    await new Response(new Blob([plain]).stream().pipeThrough(new CompressionStream("gzip")))
      .arrayBuffer(),
  );
  const origin = serveOrigin(() =>
    new Response(gz, { headers: { "content-encoding": "gzip", "content-type": "text/plain" } })
  );
  const fwd = createForwarder(testOptions());
  try {
    const res = await fwd.forward(
      new Request("http://x/", { headers: { "accept-encoding": "gzip" } }),
      origin.url,
      testInfo(),
    );
    assert.equal(res.headers.get("content-encoding"), "gzip");
    assert.equal(res.headers.get("content-length"), String(gz.length));
    assert.deepEqual(await collect(res.body), gz);
  } finally {
    fwd.close();
    await origin.close();
  }
});

Deno.test("checkAddress refuses before any byte reaches the server", async () => {
  let received: Promise<number> | undefined;
  const server = new RawServer(async (conn) => {
    received = (async () => {
      const buf = new Uint8Array(1024);
      let total = 0;
      try {
        for (;;) {
          const n = await conn.read(buf);
          if (n === null) return total;
          total += n;
        }
      } catch {
        return total;
      }
    })();
    await received;
  });
  const checked: string[] = [];
  const fwd = createForwarder(testOptions({
    checkAddress: (ip, hostname) => {
      checked.push(`${ip} ${hostname}`);
      return ip === "127.0.0.1" ? "loopback addresses are not allowed" : undefined;
    },
  }));
  try {
    const err = await rejectsWith(
      fwd.forward(
        new Request("http://x/", { method: "POST", body: "secret" }),
        server.url,
        testInfo(),
      ),
      "forbidden-address",
      403,
    );
    assert.equal(err.requestSent, false);
    assert.deepEqual(checked, ["127.0.0.1 127.0.0.1"]);
    while (received === undefined) await new Promise((r) => setTimeout(r, 10));
    assert.equal(await received, 0, "the server saw the connection close with zero bytes");
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("a failing client upload closes the upstream connection", async () => {
  let upstreamSawClose: Promise<boolean> | undefined;
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    await r.head();
    upstreamSawClose = r.eof();
    await upstreamSawClose;
  });
  const fwd = createForwarder(testOptions());
  try {
    let pulls = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (++pulls > 3) c.error(new Error("client went away"));
        else c.enqueue(new Uint8Array(1000));
      },
    });
    const req = new Request("http://x/", { method: "PUT", body, duplex: "half" } as RequestInit);
    await assert.rejects(fwd.forward(req, server.url, testInfo()), /client went away/);
    while (upstreamSawClose === undefined) await new Promise((r) => setTimeout(r, 10));
    assert.equal(await upstreamSawClose, true);
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("upgrade() returns 101 and the raw connection exchanges bytes", async () => {
  let seen: Map<string, string> | undefined;
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    const head = await r.head();
    seen = parseHeaders(head!);
    await write(
      conn,
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
        "Sec-WebSocket-Accept: abc\r\n\r\nhello",
    );
    const ping = await r.bytes(4);
    await write(conn, "pong:" + text(ping));
  });
  const fwd = createForwarder(testOptions());
  try {
    const req = new Request("http://x/ws", {
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-key": "k",
        "x-drop": "1",
      },
    });
    const up = await fwd.upgrade(req, target(server.url, "/ws"), testInfo());
    assert.ok(!(up instanceof Response), "a 101 hands out the raw connection");
    try {
      assert.equal(up.status, 101);
      assert.equal(up.headers.get("upgrade"), "websocket");
      assert.equal(up.headers.get("sec-websocket-accept"), "abc");
      assert.equal(up.headers.get("via"), "1.1 proxy");
      assert.equal(seen!.get("connection"), "upgrade");
      assert.equal(seen!.get("upgrade"), "websocket");
      assert.equal(seen!.get("sec-websocket-key"), "k");
      // Bytes after the head may already have been read: they come back in `head`.
      let got = text(up.head);
      await write(up.conn, "ping");
      const buf = new Uint8Array(64);
      while (got.length < "hellopong:ping".length) {
        const n = await up.conn.read(buf);
        if (n === null) break;
        got += text(buf.subarray(0, n));
      }
      assert.equal(got, "hellopong:ping");
    } finally {
      up.conn.close();
    }
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("upgrade() refused: the answer is a plain response and the upstream is closed", async () => {
  // The origin refuses and keeps its side open: only the forwarder can close the connection.
  const sawEof: Promise<boolean>[] = [];
  const server = new RawServer((conn) => {
    const r = new Reader(conn);
    const done = (async () => {
      await r.head();
      await write(
        conn,
        "HTTP/1.1 403 Forbidden\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n" +
          "Content-Length: 5\r\nX-Why: no\r\n\r\nnope!",
      );
      return await r.eof();
    })();
    sawEof.push(done);
    return done.then(() => {});
  });
  const fwd = createForwarder(testOptions());
  try {
    const req = new Request("http://x/ws", {
      headers: { connection: "Upgrade", upgrade: "websocket" },
    });
    const res = await fwd.upgrade(req, target(server.url, "/ws"), testInfo());
    assert.ok(res instanceof Response, "a refusal is a Response, never a pipe");
    assert.equal(res.status, 403);
    assert.equal(res.headers.get("x-why"), "no");
    assert.equal(res.headers.get("upgrade"), null);
    assert.equal(res.headers.get("connection"), null);
    assert.equal(await res.text(), "nope!");
    const within5s = new Promise<boolean>((r) => setTimeout(() => r(false), 5_000));
    assert.equal(
      await Promise.race([sawEof[0], within5s]),
      true,
      "the upstream connection was closed",
    );
    assert.equal(fwd.snapshot().idle, 0, "never pooled");
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("Keep-Alive: timeout from the origin shortens how long a connection stays pooled", async () => {
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    while (await r.request() !== null) {
      await write(
        conn,
        "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1, max=100\r\ncontent-length: 2\r\n\r\nok",
      );
    }
  });
  const fwd = createForwarder(testOptions());
  try {
    for (let i = 0; i < 2; i++) {
      const res = await fwd.forward(new Request("http://x/"), server.url, testInfo());
      assert.equal(await res.text(), "ok");
      assert.equal(res.headers.get("keep-alive"), null);
    }
    // A one-second promise leaves no safe idle time: never pooled.
    assert.equal(fwd.snapshot().connections_opened, 2);
    assert.equal(fwd.snapshot().idle, 0);
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("a slow upload is not cut by the response timeout (it starts once the request is sent)", async () => {
  const origin = serveOrigin(async (req) =>
    new Response(String((await req.arrayBuffer()).byteLength))
  );
  const fwd = createForwarder(testOptions({ responseTimeoutMs: 800 }));
  try {
    let pulls = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (++pulls > 4) return c.close();
        await new Promise((r) => setTimeout(r, 400));
        c.enqueue(new Uint8Array(1000));
      },
    }, { highWaterMark: 0 });
    const req = new Request("http://x/", { method: "POST", body, duplex: "half" } as RequestInit);
    const res = await fwd.forward(req, origin.url, testInfo());
    assert.equal(await res.text(), "4000");
  } finally {
    fwd.close();
    await origin.close();
  }
});

Deno.test("an origin answering before the upload ends: the answer reaches the client, the connection is dropped", async () => {
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    await r.head();
    await write(conn, "HTTP/1.1 413 Content Too Large\r\ncontent-length: 8\r\n\r\ntoo big!");
    await r.eof(); // lingering close: drain until the proxy gives up the upload
  });
  const fwd = createForwarder(testOptions());
  try {
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= 5_000_000) return c.close();
        sent += 65536;
        c.enqueue(new Uint8Array(65536));
      },
    }, { highWaterMark: 0 });
    const req = new Request("http://x/", {
      method: "POST",
      body,
      headers: { "content-length": "5046272" }, // 77 * 65536
      duplex: "half",
    } as RequestInit);
    const res = await fwd.forward(req, server.url, testInfo());
    assert.equal(res.status, 413);
    assert.equal(await res.text(), "too big!");
    assert.equal(fwd.snapshot().idle, 0, "a connection with an unfinished upload is never reused");
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("concurrent requests open parallel connections; the pool keeps at most maxIdlePerOrigin", async () => {
  let inFlight = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const origin = serveOrigin(async () => {
    if (++inFlight === 10) release();
    await gate;
    return new Response("ok");
  });
  const fwd = createForwarder(testOptions({ maxIdlePerOrigin: 4 }));
  try {
    const all = await Promise.all(
      Array.from(
        { length: 10 },
        () => fwd.forward(new Request("http://x/"), origin.url, testInfo()),
      ),
    );
    for (const res of all) assert.equal(await res.text(), "ok");
    const snap = fwd.snapshot();
    assert.equal(snap.connections_opened, 10);
    assert.equal(snap.idle, 4);
    const idle = fwd.metrics().find((f) => f.name === "proxy_upstream_idle_connections");
    assert.equal(idle?.type, "gauge");
    assert.equal(idle?.samples[0].value, 4);
  } finally {
    fwd.close();
    await origin.close();
  }
  assert.equal(fwd.snapshot().idle, 0, "close() empties the pool");
});

Deno.test("an upload that does not match its Content-Length never looks complete upstream", async () => {
  const received: number[] = [];
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    const head = await r.head();
    assert.ok(head?.includes("content-length: 70000"));
    await r.eof();
    received.push(r.buffered);
  });
  const fwd = createForwarder(testOptions());
  try {
    // Above 64 KiB the body is streamed, so the mismatch is found while sending.
    for (const size of [4, 100_000]) {
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new Uint8Array(size));
          c.close();
        },
      });
      const req = new Request("http://x/", {
        method: "PUT",
        body,
        headers: { "content-length": "70000" },
        duplex: "half",
      } as RequestInit);
      await assert.rejects(fwd.forward(req, server.url, testInfo()), /Content-Length/);
    }
    while (received.length < 2) await new Promise((r) => setTimeout(r, 10));
  } finally {
    fwd.close();
    await server.close();
  }
  // The origin saw the connection end short of the declared length both times.
  assert.deepEqual(received.sort((a, b) => a - b), [0, 4]);
});

function hasIPv6(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "IPv6 literal targets connect, and checkAddress sees the bare address",
  ignore: ignoreUnless("IPv6 literal targets", hasIPv6(), "no IPv6 loopback (::1) on this machine"),
  async fn() {
    const server = Deno.serve(
      { hostname: "::1", port: 0, onListen() {} },
      (req) => new Response("host=" + req.headers.get("host")),
    );
    const seen: string[] = [];
    const fwd = createForwarder(testOptions({
      checkAddress: (ip, hostname) => {
        seen.push(ip + " " + hostname);
        return undefined;
      },
    }));
    try {
      const t = new URL(`http://[::1]:${server.addr.port}/`);
      const res = await fwd.forward(new Request("http://x/"), t, testInfo());
      assert.equal(await res.text(), `host=[::1]:${server.addr.port}`);
      assert.deepEqual(seen, ["::1 ::1"]);
    } finally {
      fwd.close();
      await server.shutdown();
    }
  },
});

Deno.test("through a Deno.serve front door: a mid-body upstream death is an error to the client", async () => {
  const server = new RawServer(async (conn) => {
    await new Reader(conn).request();
    await write(conn, "HTTP/1.1 200 OK\r\ncontent-length: 300000\r\n\r\n");
    await write(conn, new Uint8Array(100_000));
  });
  const fwd = createForwarder(testOptions());
  const front = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: 0,
      onListen() {},
      onError: () => new Response(null, { status: 502 }),
    },
    (req) => fwd.forward(req, server.url, testInfo()),
  );
  // Deno.serve reports an erroring body stream on the console; keep the test output clean.
  const originalError = console.error;
  console.error = () => {};
  try {
    const res = await fetch(`http://127.0.0.1:${front.addr.port}/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), "300000");
    await assert.rejects(res.arrayBuffer());
  } finally {
    console.error = originalError;
    fwd.close();
    await front.shutdown();
    await server.close();
  }
});

Deno.test("small bodies arriving in pieces are read whole; cut short they reject as a reset", async () => {
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    for (;;) {
      const req = await r.request();
      if (req === null) return;
      await write(conn, "HTTP/1.1 200 OK\r\ncontent-length: 40000\r\n\r\n");
      for (let i = 0; i < 4; i++) {
        if (req.head.startsWith("GET /cut") && i === 2) return;
        await write(conn, new Uint8Array(10_000).fill(65 + i));
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });
  const fwd = createForwarder(testOptions());
  try {
    const res = await fwd.forward(new Request("http://x/"), server.url, testInfo());
    const body = await collect(res.body);
    assert.equal(body.length, 40_000);
    assert.equal(body[39_999], 68);
    const again = await fwd.forward(new Request("http://x/"), server.url, testInfo());
    assert.equal((await collect(again.body)).length, 40_000);
    assert.equal(fwd.snapshot().connections_opened, 1);
    await rejectsWith(
      fwd.forward(new Request("http://x/cut"), target(server.url, "/cut"), testInfo()),
      "reset",
      502,
    );
    assert.equal(fwd.snapshot().errors, 1);
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("latin1 header bytes pass byte for byte both ways", async () => {
  let raw: Uint8Array | undefined;
  const server = new RawServer(async (conn) => {
    const buf = new Uint8Array(65536);
    let n = 0;
    while (!new TextDecoder("latin1").decode(buf.subarray(0, n)).includes("\r\n\r\n")) {
      const r = await conn.read(buf.subarray(n));
      if (r === null) return;
      n += r;
    }
    raw = buf.slice(0, n);
    const head = "HTTP/1.1 200 OK\r\nx-latin: caf\u00e9\r\ncontent-length: 0\r\n\r\n";
    await write(conn, Uint8Array.from(head, (ch) => ch.charCodeAt(0)));
  });
  const fwd = createForwarder(testOptions());
  try {
    const req = new Request("http://x/", { headers: { "x-latin": "na\u00efve" } });
    const res = await fwd.forward(req, server.url, testInfo());
    assert.equal(res.headers.get("x-latin"), "caf\u00e9");
    const needle = [...Uint8Array.from("x-latin: na\u00efve\r\n", (ch) => ch.charCodeAt(0))];
    const hay = [...raw!];
    const at = hay.findIndex((_, i) => needle.every((b, j) => hay[i + j] === b));
    assert.ok(at >= 0, "the origin received the single byte 0xEF, not UTF-8");
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("an upstream stalling mid-body errors the body stream after the response timeout", async () => {
  const server = new RawServer(async (conn) => {
    const r = new Reader(conn);
    await r.request();
    await write(conn, "HTTP/1.1 200 OK\r\ncontent-length: 200000\r\n\r\n");
    await write(conn, new Uint8Array(100_000));
    await r.eof(); // then silence until the proxy gives up
  });
  const fwd = createForwarder(testOptions({ responseTimeoutMs: 300 }));
  try {
    const res = await fwd.forward(new Request("http://x/"), server.url, testInfo());
    await assert.rejects(
      res.arrayBuffer(),
      (e: unknown) =>
        e instanceof UpstreamError && e.kind === "response-timeout" && e.status === 504,
    );
    assert.equal(fwd.snapshot().errors_by_kind["response-timeout"], 1);
  } finally {
    fwd.close();
    await server.close();
  }
});

Deno.test("redirects come back to the caller untouched", async () => {
  const origin = serveOrigin(() =>
    new Response(null, { status: 302, headers: { location: "http://elsewhere.example/next" } })
  );
  const fwd = createForwarder(testOptions());
  try {
    const res = await fwd.forward(new Request("http://x/"), origin.url, testInfo());
    assert.equal(res.status, 302);
    assert.equal(res.headers.get("location"), "http://elsewhere.example/next");
    await res.body?.cancel();
  } finally {
    fwd.close();
    await origin.close();
  }
});
