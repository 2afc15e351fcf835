/**
 * End-to-end tests of the test origin (`proxy backend`): real sockets, real
 * clients (fetch, raw TCP, WebSocket), in-process and as a subprocess.
 */
import assert from "node:assert/strict";
import { DIE_MID_BODY_LENGTH, ifNoneMatchMatches, patternBytes } from "../src/backend/mod.ts";
import { startBackendProcess, startTestBackend, type TestBackend } from "./helpers/backend.ts";

async function withBackend(name: string, fn: (b: TestBackend) => Promise<void>) {
  const b = await startTestBackend(name);
  try {
    await fn(b);
  } finally {
    await b.close();
  }
}

/** Sends a raw HTTP/1.1 request and returns the status line, headers and raw body bytes. */
async function rawRequest(port: number, head: string) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(head));
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  while (true) {
    const n = await conn.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
  }
  conn.close();
  const all = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  const text = new TextDecoder("latin1").decode(all);
  const end = text.indexOf("\r\n\r\n");
  const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
  const headers = new Headers(lines.map((l) => {
    const i = l.indexOf(":");
    return [l.slice(0, i).trim(), l.slice(i + 1).trim()] as [string, string];
  }));
  return { statusLine, headers, body: all.subarray(end + 4) };
}

async function sha256Hex(data: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("backend: /, /json, /large, /health, /error and 404 carry X-Backend", async () => {
  await withBackend("alpha", async (b) => {
    const home = await fetch(`${b.url}/`);
    assert.deepEqual(home.status, 200);
    assert.deepEqual(home.headers.get("x-backend"), "alpha");
    assert.match(home.headers.get("content-type")!, /^text\/html/);
    assert.match(await home.text(), /<h1>Test origin alpha<\/h1>/);

    const json = await fetch(`${b.url}/json`);
    assert.deepEqual(json.headers.get("content-type"), "application/json");
    const doc = await json.json();
    assert.deepEqual(doc.backend, "alpha");
    assert.deepEqual(doc.slideshow.slides.length, 3);

    const large1 = await (await fetch(`${b.url}/large`)).text();
    const large2 = await (await fetch(`${b.url}/large`)).text();
    assert.ok(large1.length > 590_000 && large1.length < 620_000, `size ${large1.length}`);
    assert.deepEqual(large1, large2);

    const health = await fetch(`${b.url}/health`);
    assert.deepEqual([health.status, await health.text()], [200, "ok"]);

    const err = await fetch(`${b.url}/error`);
    assert.deepEqual(err.status, 500);
    assert.deepEqual(err.headers.get("x-backend"), "alpha");
    await err.body?.cancel();

    const nf = await fetch(`${b.url}/nope`);
    assert.deepEqual(nf.status, 404);
    assert.deepEqual(nf.headers.get("x-backend"), "alpha");
    await nf.body?.cancel();
  });
});

Deno.test("backend: default name is backend-<port>", async () => {
  const b = await startTestBackend();
  try {
    assert.deepEqual(b.name, `backend-${b.port}`);
    const res = await fetch(`${b.url}/health`);
    assert.deepEqual(res.headers.get("x-backend"), `backend-${b.port}`);
    await res.body?.cancel();
  } finally {
    await b.close();
  }
});

Deno.test("backend: /bytes/:n returns the exact seeded pattern with Content-Length", async () => {
  await withBackend("b", async (b) => {
    for (const [n, seed] of [[0, 0], [1, 0], [1000, 7], [65536, 3], [200_001, 255]]) {
      const res = await fetch(`${b.url}/bytes/${n}?seed=${seed}`);
      assert.deepEqual(res.status, 200);
      assert.deepEqual(res.headers.get("content-length"), String(n));
      const got = new Uint8Array(await res.arrayBuffer());
      assert.deepEqual(got.length, n);
      assert.deepEqual(got, patternBytes(n, seed), `n=${n} seed=${seed}`);
    }
    // The small-body path serves views of one shared block: repeated
    // requests must keep returning the same bytes.
    for (let i = 0; i < 3; i++) {
      const got = new Uint8Array(await (await fetch(`${b.url}/bytes/1024`)).arrayBuffer());
      assert.deepEqual(got, patternBytes(1024, 0));
    }
    const plain = await fetch(`${b.url}/bytes/8`);
    assert.equal(plain.headers.get("cache-control"), null);
    await plain.body?.cancel();
    const cacheable = await fetch(`${b.url}/bytes/8?max_age=3600`);
    assert.equal(cacheable.headers.get("cache-control"), "public, max-age=3600");
    assert.deepEqual(new Uint8Array(await cacheable.arrayBuffer()), patternBytes(8));
    const bad = await fetch(`${b.url}/bytes/abc`);
    assert.deepEqual(bad.status, 400);
    await bad.body?.cancel();
  });
});

Deno.test("backend: /bytes/:n?chunked=1 streams without Content-Length", async () => {
  await withBackend("b", async (b) => {
    const raw = await rawRequest(
      b.port,
      "GET /bytes/10?chunked=1&seed=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert.deepEqual(raw.headers.get("transfer-encoding"), "chunked");
    assert.deepEqual(raw.headers.get("content-length"), null);
    const res = await fetch(`${b.url}/bytes/150000?chunked=1&seed=2`);
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), patternBytes(150_000, 2));
  });
});

Deno.test("backend: HEAD /bytes/:n sends the length and no body", async () => {
  await withBackend("b", async (b) => {
    const raw = await rawRequest(
      b.port,
      "HEAD /bytes/4096 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert.match(raw.statusLine, /^HTTP\/1.1 200/);
    assert.deepEqual(raw.headers.get("content-length"), "4096");
    assert.deepEqual(raw.body.length, 0);
  });
});

Deno.test("backend: /delay/:ms waits, and an aborted client does not hold up close()", async () => {
  const b = await startTestBackend("d");
  let closed = false;
  try {
    const t0 = performance.now();
    const res = await fetch(`${b.url}/delay/200`);
    const body = await res.json();
    assert.ok(performance.now() - t0 >= 190, "responded too early");
    assert.deepEqual(body.delay, 200);

    const ac = new AbortController();
    const pending = fetch(`${b.url}/delay/60000`, { signal: ac.signal });
    // Wait until the backend has the request, then abort it.
    while ((await b.stats()).paths["/delay/60000"] !== 1) {
      await new Promise((r) => setTimeout(r, 20));
    }
    ac.abort();
    await assert.rejects(() => pending);
    const t1 = performance.now();
    await b.close();
    closed = true;
    assert.ok(performance.now() - t1 < 10_000, "close() waited for the aborted delay");
  } finally {
    if (!closed) await b.close();
  }
});

Deno.test("backend: close() cuts a long /delay short after the grace period", async () => {
  const b = await startTestBackend("d");
  const pending = fetch(`${b.url}/delay/60000`);
  while ((await b.stats()).paths["/delay/60000"] !== 1) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const t0 = performance.now();
  const closing = b.close();
  const res = await pending;
  const body = await res.json();
  await closing;
  assert.ok(body.waited < 30_000, `waited ${body.waited} ms`);
  assert.ok(performance.now() - t0 < 30_000);
});

Deno.test("backend: /status/:code", async () => {
  await withBackend("s", async (b) => {
    for (const code of [200, 201, 404, 418, 503, 599]) {
      const res = await fetch(`${b.url}/status/${code}`);
      assert.deepEqual(res.status, code);
      assert.deepEqual(res.headers.get("x-backend"), "s");
      assert.deepEqual(await res.text(), `status ${code}\n`);
    }
    for (const code of [204, 304]) {
      const raw = await rawRequest(
        b.port,
        `GET /status/${code} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      );
      assert.match(raw.statusLine, new RegExp(`^HTTP/1.1 ${code}`));
      assert.deepEqual(raw.body.length, 0);
    }
    const redirect = await fetch(`${b.url}/status/302`, { redirect: "manual" });
    assert.deepEqual(redirect.status, 302);
    assert.deepEqual(redirect.headers.get("location"), "/");
    await redirect.body?.cancel();
    for (const bad of ["100", "199", "600", "abc"]) {
      const res = await fetch(`${b.url}/status/${bad}`);
      assert.deepEqual(res.status, 400, bad);
      await res.body?.cancel();
    }
  });
});

Deno.test("backend: /echo reports method, query, headers and body (utf-8 or base64)", async () => {
  await withBackend("e", async (b) => {
    const res = await fetch(`${b.url}/echo?a=1&a=2&b=x%20y`, {
      method: "PATCH",
      headers: { "x-test": "42", "content-type": "text/plain" },
      body: "héllo",
    });
    const e = await res.json();
    assert.deepEqual(e.method, "PATCH");
    assert.deepEqual(e.path, "/echo");
    assert.deepEqual(e.url, `${b.url}/echo?a=1&a=2&b=x%20y`);
    assert.deepEqual(e.query, { a: ["1", "2"], b: "x y" });
    assert.deepEqual(e.headers["x-test"], "42");
    assert.deepEqual(e.body, "héllo");
    assert.deepEqual(e.bodyEncoding, "utf-8");
    assert.deepEqual(e.bodyLength, 6);

    const binary = new Uint8Array([0xff, 0xfe, 0x00, 0x80]);
    const e2 = await (await fetch(`${b.url}/echo`, { method: "POST", body: binary })).json();
    assert.deepEqual(e2.bodyEncoding, "base64");
    assert.deepEqual(e2.body, "//4AgA==");
    assert.deepEqual(e2.bodyLength, 4);

    const e3 = await (await fetch(`${b.url}/echo`)).json();
    assert.deepEqual([e3.method, e3.body, e3.bodyLength], ["GET", "", 0]);
  });
});

Deno.test("backend: /echo?stream=1 streams the body back byte-exact", async () => {
  await withBackend("e", async (b) => {
    const data = patternBytes(3 * 1024 * 1024 + 17, 9);
    const res = await fetch(`${b.url}/echo?stream=1`, {
      method: "POST",
      headers: { "content-type": "application/x-test" },
      body: data,
    });
    assert.deepEqual(res.headers.get("content-type"), "application/x-test");
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), data);
  });
});

Deno.test("backend: /cache/:seconds sets max-age and counts generations", async () => {
  await withBackend("c", async (b) => {
    const r1 = await fetch(`${b.url}/cache/60`);
    assert.deepEqual(r1.headers.get("cache-control"), "public, max-age=60");
    const c1 = await r1.json();
    const c2 = await (await fetch(`${b.url}/cache/60`)).json();
    assert.deepEqual(c1.seconds, 60);
    assert.deepEqual(c2.counter, c1.counter + 1);
  });
});

Deno.test("backend: /etag/:tag honours If-None-Match (exact, weak, lists, *)", async () => {
  await withBackend("t", async (b) => {
    const plain = await fetch(`${b.url}/etag/v1`);
    assert.deepEqual(plain.status, 200);
    assert.deepEqual(plain.headers.get("etag"), '"v1"');
    assert.deepEqual(plain.headers.get("cache-control"), "max-age=0, must-revalidate");
    assert.deepEqual((await plain.json()).etag, "v1");

    for (const inm of ['"v1"', 'W/"v1"', '"a", "v1"', 'W/"x",W/"v1"', "*"]) {
      const res = await fetch(`${b.url}/etag/v1`, { headers: { "if-none-match": inm } });
      assert.deepEqual(res.status, 304, inm);
      assert.deepEqual(res.headers.get("etag"), '"v1"');
      assert.deepEqual(res.headers.get("x-backend"), "t");
      assert.deepEqual(await res.text(), "");
    }
    for (const inm of ['"v2"', '"v1x"', "v1"]) {
      const res = await fetch(`${b.url}/etag/v1`, { headers: { "if-none-match": inm } });
      assert.deepEqual(res.status, 200, inm);
      await res.body?.cancel();
    }
    const post = await fetch(`${b.url}/etag/v1`, {
      method: "POST",
      headers: { "if-none-match": '"v1"' },
    });
    assert.deepEqual(post.status, 412);
    await post.body?.cancel();
  });
});

Deno.test("ifNoneMatchMatches handles commas inside tags", () => {
  assert.ok(ifNoneMatchMatches('"a,b"', '"a,b"'));
  assert.ok(!ifNoneMatchMatches('"a", "b"', '"a,b"'));
  assert.ok(ifNoneMatchMatches(" * ", '"x"'));
});

Deno.test("backend: /gzip sends gzip bytes with a correct Content-Length", async () => {
  await withBackend("g", async (b) => {
    const raw = await rawRequest(
      b.port,
      "GET /gzip HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    );
    assert.deepEqual(raw.headers.get("content-encoding"), "gzip");
    assert.deepEqual(raw.headers.get("content-length"), String(raw.body.length));
    assert.deepEqual([raw.body[0], raw.body[1]], [0x1f, 0x8b]);
    const plain = await new Response(
      new Blob([raw.body as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
        new DecompressionStream("gzip"),
      ),
    ).json();
    assert.deepEqual(plain.gzipped, true);
    assert.deepEqual(plain.backend, "g");
  });
});

Deno.test("backend: /stream/:chunks sends n JSON lines spaced by ?delay", async () => {
  await withBackend("st", async (b) => {
    const t0 = performance.now();
    const res = await fetch(`${b.url}/stream/5?delay=30`);
    assert.deepEqual(res.headers.get("content-type"), "application/x-ndjson");
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    let reads = 0;
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
      reads++;
    }
    const lines = text.trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.id), [0, 1, 2, 3, 4]);
    assert.ok(reads >= 2, "lines arrived in one piece: not streamed");
    assert.ok(performance.now() - t0 >= 110, "delay between lines not applied");
  });
});

Deno.test("backend: /headers returns the request headers", async () => {
  await withBackend("h", async (b) => {
    const h = await (await fetch(`${b.url}/headers`, { headers: { "x-hello": "world" } })).json();
    assert.deepEqual(h["x-hello"], "world");
    assert.deepEqual(h.host, `127.0.0.1:${b.port}`);
  });
});

Deno.test("backend: /upload hashes a streamed body; other methods get 405", async () => {
  await withBackend("u", async (b) => {
    const data = patternBytes(5 * 1024 * 1024 + 3, 11);
    const chunks = [data.subarray(0, 1_000_000), data.subarray(1_000_000)];
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        const next = chunks.shift();
        if (next) c.enqueue(next);
        else c.close();
      },
    });
    const res = await fetch(`${b.url}/upload`, { method: "PUT", body });
    const r = await res.json();
    assert.deepEqual(r.bytes, data.length);
    assert.deepEqual(r.sha256, await sha256Hex(data));

    const get = await fetch(`${b.url}/upload`);
    assert.deepEqual(get.status, 405);
    assert.deepEqual(get.headers.get("allow"), "POST, PUT");
    await get.body?.cancel();
  });
});

Deno.test("backend: /ws echoes text and binary messages", async () => {
  await withBackend("w", async (b) => {
    const ws = new WebSocket(`${b.url.replace("http", "ws")}/ws`);
    ws.binaryType = "arraybuffer";
    const messages: unknown[] = [];
    let gotTwo!: () => void;
    const two = new Promise<void>((r) => gotTwo = r);
    ws.onmessage = (e) => {
      messages.push(e.data);
      if (messages.length === 2) gotTwo();
    };
    await new Promise((r, j) => {
      ws.onopen = r;
      ws.onerror = j;
    });
    ws.send("hello");
    ws.send(new Uint8Array([1, 2, 3]));
    await two;
    assert.deepEqual(messages[0], "hello");
    assert.deepEqual(new Uint8Array(messages[1] as ArrayBuffer), new Uint8Array([1, 2, 3]));
    const closed = new Promise((r) => ws.onclose = r);
    ws.close();
    await closed;

    const plain = await fetch(`${b.url}/ws`);
    assert.deepEqual(plain.status, 426);
    await plain.body?.cancel();
  });
});

Deno.test("backend: close() closes open WebSockets", async () => {
  const b = await startTestBackend("w");
  const ws = new WebSocket(`${b.url.replace("http", "ws")}/ws`);
  await new Promise((r, j) => {
    ws.onopen = r;
    ws.onerror = j;
  });
  const closed = new Promise<CloseEvent>((r) => ws.onclose = r);
  await b.close();
  assert.deepEqual((await closed).code, 1001);
});

Deno.test("backend: /die-mid-body aborts the connection after half the body", async () => {
  await withBackend("x", async (b) => {
    const res = await fetch(`${b.url}/die-mid-body`);
    assert.deepEqual(res.headers.get("content-length"), String(DIE_MID_BODY_LENGTH));
    const reader = res.body!.getReader();
    let received = 0;
    await assert.rejects(async () => {
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        received += value.length;
      }
    });
    assert.ok(received < DIE_MID_BODY_LENGTH, `received ${received}`);
  });
});

Deno.test("backend: /__stats counts requests per path and route; reset zeroes them", async () => {
  await withBackend("n", async (b) => {
    for (const p of ["/json", "/json", "/bytes/10", "/bytes/20?seed=1", "/missing"]) {
      await (await fetch(`${b.url}${p}`)).arrayBuffer();
    }
    const s = await b.stats();
    assert.deepEqual(s.name, "n");
    assert.deepEqual(s.requests_total, 5);
    assert.deepEqual(s.paths, { "/json": 2, "/bytes/10": 1, "/bytes/20": 1, "/missing": 1 });
    assert.deepEqual(s.routes, { "/json": 2, "/bytes/:n": 2, "(not found)": 1 });

    const getReset = await fetch(`${b.url}/__stats/reset`);
    assert.deepEqual(getReset.status, 405);
    await getReset.body?.cancel();
    await b.resetStats();
    assert.deepEqual((await b.stats()).requests_total, 0);
    assert.deepEqual((await b.stats()).paths, {});
  });
});

Deno.test("backend CLI: subprocess serves, names itself, exits 0 on SIGTERM, warns of nothing", async () => {
  const p = await startBackendProcess("cli-one");
  let stopped = false;
  try {
    assert.deepEqual(p.name, "cli-one");
    const res = await fetch(`${p.url}/json`);
    assert.deepEqual(res.headers.get("x-backend"), "cli-one");
    await res.body?.cancel();
    assert.deepEqual((await p.stats()).paths["/json"], 1);
    // /delay watches the request's abort signal; Deno 2.9 warns about its legacy abort-on-success
    // semantics unless deno.json opts into the new ones ("no-legacy-abort").
    const delayed = await fetch(`${p.url}/delay/10`);
    assert.deepEqual((await delayed.json()).delay, 10);
    const status = await p.kill("SIGTERM");
    stopped = true;
    assert.deepEqual(status.code, 0, p.stderr());
    assert.deepEqual(p.stderr(), "");
  } finally {
    if (!stopped) await p.kill("SIGTERM");
  }
});

Deno.test("backend CLI: kill -9 and restart on the same port", async () => {
  const p = await startBackendProcess();
  try {
    assert.deepEqual(p.name, `backend-${p.port}`);
    const status = await p.kill();
    assert.deepEqual(status.signal, "SIGKILL");
    await assert.rejects(() => fetch(`${p.url}/health`));
    await p.restart();
    const res = await fetch(`${p.url}/health`);
    assert.deepEqual(await res.text(), "ok");
  } finally {
    await p.close();
  }
});

Deno.test("backend CLI: bad flags exit 2 with one line; --help exits 0", async () => {
  const cli = new URL("../src/backend/cli.ts", import.meta.url).pathname;
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), { args: ["run", "-A", cli, ...args] }).output();
  const dec = new TextDecoder();
  for (const args of [["--bogus"], ["--port", "99999"], ["--port", "x"], ["extra"]]) {
    const out = await run(args);
    assert.deepEqual(out.code, 2, args.join(" "));
    const err = dec.decode(out.stderr).trim();
    assert.deepEqual(err.split("\n").length, 1, err);
    assert.match(err, /^proxy backend: /);
  }
  const help = await run(["--help"]);
  assert.deepEqual(help.code, 0);
  assert.match(dec.decode(help.stdout), /Usage: proxy backend/);
});
