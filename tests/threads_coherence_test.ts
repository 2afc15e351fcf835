/**
 * Issue 14, "every core by default": with several serving threads, what users can observe
 * behaves as one proxy — the memory cache and its purges, rate limits without Redis,
 * admission limits, MAX_CLIENT_CONNECTIONS, reloads. Each test sends its requests on new
 * connections, so the kernel spreads them over both threads, and checks that both served.
 */
import assert from "node:assert/strict";
import { startTestBackend } from "./helpers/backend.ts";
import { ignoreUnless } from "./helpers/ignore.ts";
import { openRaw, rawRequest, type RawResponse } from "./helpers/rawhttp.ts";
import { startProxy, type TestProxy } from "./helpers/proxy.ts";
import { TEST_CA, TEST_CERT_PATH, TEST_KEY_PATH } from "./helpers/tls.ts";

const LINUX = Deno.build.os === "linux";
const WHY = "SO_REUSEPORT (serving threads) is Linux only";

/** `count` requests, each on a new connection, `parallel` at a time. */
async function spread(
  proxy: TestProxy,
  count: number,
  request: string,
  parallel = 10,
): Promise<RawResponse[]> {
  const out: RawResponse[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < count) {
      next++;
      out.push(await rawRequest(proxy.port, request, { timeoutMs: 20_000 }));
    }
  }));
  return out;
}

/** Starts the proxy and waits until both threads listen (the start-up line comes after). */
async function startThreaded(env: Record<string, string>, args?: string[]): Promise<TestProxy> {
  const proxy = await startProxy({ env: { SERVE_THREADS: "2", ...env }, args });
  await until(
    "both threads listening",
    () => Promise.resolve(/listening on .* 2 threads/.test(proxy.output())),
  );
  return proxy;
}

/** Both threads served requests (else the test proves nothing about threads). */
async function bothServed(proxy: TestProxy): Promise<void> {
  const stats = await proxy.stats();
  assert.equal(stats.serve_threads, 2);
  const per = stats.threads.map((t: { requests_total: number }) => t.requests_total);
  assert.ok(per.every((n: number) => n > 0), `both threads served: ${per}`);
}

async function until(what: string, ok: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** An origin whose every answer is a new version of the page, cacheable for 10 minutes. */
function versionedOrigin() {
  let version = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    version++;
    return new Response(`v${version}`, { headers: { "cache-control": "max-age=600" } });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    fetched: () => version,
    close: () => server.shutdown(),
  };
}

const GET_PAGE = "GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

Deno.test({
  name: "threads: an object cached through one thread is a hit on the other; stats are totals",
  ignore: ignoreUnless("threads: cache shared", LINUX, WHY),
  async fn() {
    const origin = versionedOrigin();
    const proxy = await startThreaded({ BACKEND_SERVERS: origin.url, CACHE_BACKEND: "memory" });
    try {
      assert.equal((await rawRequest(proxy.port, GET_PAGE)).body, "v1");
      // The copy travels to the other thread in the background: wait until it holds it.
      await until("the copy on both threads", async () => {
        const s = await proxy.stats();
        return s.threads.every((t: { cache: { l1_entries: number } }) => t.cache.l1_entries === 1);
      });
      const answers = await spread(proxy, 100, GET_PAGE);
      assert.deepEqual(new Set(answers.map((r) => r.body)), new Set(["v1"]));
      assert.deepEqual(new Set(answers.map((r) => r.headers["x-cache"])), new Set(["HIT"]));
      assert.equal(origin.fetched(), 1, "the origin saw the page once");
      await bothServed(proxy);
      const stats = await proxy.stats();
      assert.equal(stats.cache_hits, 100);
      assert.equal(stats.cache_misses, 1);
      assert.equal(stats.cache.cache_hits, 100, "the cache section is the threads' total");
      assert.equal(stats.cache.stored, 1);
      assert.equal(stats.cache.l1_entries, 2, "one copy per thread");

      // A cold page asked for by 100 clients at once, over both threads: one origin fetch.
      const cold = await spread(
        proxy,
        100,
        "GET /cold HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        50,
      );
      assert.deepEqual(new Set(cold.map((r) => r.body)), new Set(["v2"]));
      assert.equal(origin.fetched(), 2, "the cold page was fetched once for both threads");
    } finally {
      await proxy.stop();
      await origin.close();
    }
  },
});

Deno.test({
  name: "threads: a PURGE through any thread removes the object from all before it answers",
  ignore: ignoreUnless("threads: purge reaches all", LINUX, WHY),
  async fn() {
    const origin = versionedOrigin();
    const proxy = await startThreaded({ BACKEND_SERVERS: origin.url, CACHE_BACKEND: "memory" });
    try {
      for (let round = 1; round <= 6; round++) {
        // Fill both threads' copies with the current version.
        await spread(proxy, 20, GET_PAGE);
        const before = origin.fetched();
        const purge = await rawRequest(
          proxy.port,
          "PURGE /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert.equal(purge.status, 200, purge.raw);
        // Once the PURGE has answered, no thread may serve a version from before it.
        const after = await spread(proxy, 20, GET_PAGE);
        for (const r of after) {
          assert.equal(r.status, 200);
          assert.ok(
            Number(r.body.slice(1)) > before,
            `round ${round}: ${r.body} served after the purge (origin at v${before})`,
          );
        }
      }
      await bothServed(proxy);
      // Purging everything empties every thread's copy by the time it answers.
      const all = await fetch(`${proxy.url}/proxy-cache/purge`, {
        method: "POST",
        body: JSON.stringify({ all: true }),
      });
      assert.equal(all.status, 200);
      await all.body?.cancel();
      const stats = await proxy.stats();
      assert.equal(stats.cache.l1_entries, 0);
    } finally {
      await proxy.stop();
      await origin.close();
    }
  },
});

Deno.test({
  name: "threads: without Redis, RATE_LIMIT_REQUESTS holds for the process, not per thread",
  ignore: ignoreUnless("threads: rate limit exact", LINUX, WHY),
  async fn() {
    const backend = await startTestBackend("a");
    const proxy = await startThreaded({
      BACKEND_SERVERS: backend.url,
      RATE_LIMIT_REQUESTS: "15",
      RATE_LIMIT_WINDOW: "600",
      RATE_LIMIT_EXEMPT: "",
    });
    try {
      const answers = await spread(
        proxy,
        60,
        "GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      );
      const ok = answers.filter((r) => r.status === 200).length;
      const limited = answers.filter((r) => r.status === 429).length;
      assert.equal(ok, 15, `exactly the limit got through (${ok} did, ${limited} refused)`);
      assert.equal(limited, 45);
      const stats = await proxy.stats();
      // (The proxy's own endpoints are not rate-limited: this request is not counted.)
      assert.ok(stats.threads.every((t: { requests_total: number }) => t.requests_total > 0));
      assert.equal(stats.rate_limit.rate_limited_requests, 45);
    } finally {
      await proxy.stop();
      await backend.close();
    }
  },
});

Deno.test({
  name: "threads: MAX_CONCURRENCY and REQUEST_QUEUE_SIZE count over both threads",
  ignore: ignoreUnless("threads: admission global", LINUX, WHY),
  async fn() {
    const backend = await startTestBackend("a");
    const proxy = await startThreaded({
      BACKEND_SERVERS: backend.url,
      MAX_CONCURRENCY: "1",
      REQUEST_QUEUE_SIZE: "2",
      QUEUE_TIMEOUT: "60",
    });
    try {
      // Slow enough that every request arrives while the first holds the one slot.
      const answers = await spread(
        proxy,
        16,
        "GET /delay/3000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        16,
      );
      const statuses = answers.map((r) => r.status).sort();
      const ok = statuses.filter((s) => s === 200).length;
      assert.equal(ok, 3, `one in flight and two queued, for the process: ${statuses}`);
      assert.equal(statuses.filter((s) => s === 503).length, 13);
      await bothServed(proxy);
      const stats = await proxy.stats();
      assert.equal(stats.admission.in_flight, 0);
      assert.equal(stats.admission.queued, 0);
      assert.equal(stats.admission.rejected, 13);
    } finally {
      await proxy.stop();
      await backend.close();
    }
  },
});

Deno.test({
  name: "threads: MAX_CLIENT_CONNECTIONS counts the connections of both threads",
  ignore: ignoreUnless("threads: connection limit global", LINUX, WHY),
  async fn() {
    const backend = await startTestBackend("a");
    const proxy = await startThreaded({
      BACKEND_SERVERS: backend.url,
      MAX_CLIENT_CONNECTIONS: "4",
    });
    const conns = [];
    try {
      // Twelve keep-alive connections, each answered or closed at once, all held open.
      let answered = 0;
      for (let i = 0; i < 12; i++) {
        const c = await openRaw(proxy.port);
        conns.push(c);
        await c.write("GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
        const r = await c.response({ timeoutMs: 10_000 });
        if (r.status === 200) answered++;
        else assert.ok(r.closed, "a connection beyond the limit is closed");
      }
      assert.equal(answered, 4);
      for (const c of conns) c.close();
      await until("the connections to close", async () => {
        const s = await proxy.stats().catch(() => undefined);
        return s !== undefined && s.client_connections === 1;
      });
      const stats = await proxy.stats();
      // The eight, and any of the polls above that came while the twelve were still open.
      assert.ok(stats.client_connections_rejected >= 8, String(stats.client_connections_rejected));
      assert.ok(stats.threads.length === 2);
    } finally {
      for (const c of conns) c.close();
      await proxy.stop();
      await backend.close();
    }
  },
});

Deno.test({
  name: "threads: POST /proxy-reload through any thread reloads every thread",
  ignore: ignoreUnless("threads: reload everywhere", LINUX, WHY),
  async fn() {
    const backend = await startTestBackend("a");
    const dir = await Deno.makeTempDir();
    const envFile = `${dir}/proxy.env`;
    await Deno.writeTextFile(envFile, `BACKEND_SERVERS=${backend.url}\n`);
    const proxy = await startThreaded({ PROXY_MODE: "reverse" }, ["--env-file", envFile]);
    const post =
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\n" +
      "x".repeat(100);
    try {
      assert.deepEqual(
        new Set((await spread(proxy, 20, post)).map((r) => r.status)),
        new Set([200]),
      );
      await Deno.writeTextFile(envFile, `BACKEND_SERVERS=${backend.url}\nMAX_BODY_SIZE=10\n`);
      const reload = await rawRequest(
        proxy.port,
        "POST /proxy-reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
      );
      assert.equal(reload.status, 200, reload.raw);
      // Once the reload has answered, every thread applies the new limit.
      assert.deepEqual(
        new Set((await spread(proxy, 40, post)).map((r) => r.status)),
        new Set([413]),
      );
      await bothServed(proxy);
    } finally {
      await proxy.stop();
      await backend.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "threads: SERVE_THREADS defaults to every CPU; /healthz and the start-up line say so",
  ignore: ignoreUnless("threads: default auto", LINUX, WHY),
  async fn() {
    const backend = await startTestBackend("a");
    const proxy = await startProxy({ env: { BACKEND_SERVERS: backend.url } });
    const cpus = navigator.hardwareConcurrency;
    try {
      const health = await (await fetch(`${proxy.url}/healthz`)).json();
      assert.equal(health.threads, cpus);
      await until("the start-up line", () => Promise.resolve(/listening on/.test(proxy.output())));
      assert.match(proxy.output(), new RegExp(`listening on .*, ${cpus} threads?\\)`));
    } finally {
      await proxy.stop();
      await backend.close();
    }
  },
});

Deno.test({
  name: "threads: MAX_CLIENT_CONNECTIONS counts both threads on the HTTP/2 (ALPN) TLS listener too",
  ignore: ignoreUnless("threads: connection limit global (TLS)", LINUX, WHY),
  async fn() {
    const backend = await startTestBackend("a");
    const proxy = await startThreaded({
      BACKEND_SERVERS: backend.url,
      MAX_CLIENT_CONNECTIONS: "4",
      TLS_CERT: TEST_CERT_PATH,
      TLS_KEY: TEST_KEY_PATH,
      HTTP2: "on",
    });
    const conns: Deno.TlsConn[] = [];
    try {
      // Twelve TLS connections held open; only four may be served, whichever thread took them.
      let answered = 0;
      for (let i = 0; i < 12; i++) {
        const answer = (async () => {
          const c = await Deno.connectTls({
            hostname: "localhost",
            port: proxy.port,
            caCerts: [TEST_CA],
            alpnProtocols: ["http/1.1"],
          });
          conns.push(c);
          await c.write(new TextEncoder().encode("GET /json HTTP/1.1\r\nHost: x\r\n\r\n"));
          const buf = new Uint8Array(4096);
          const n = await c.read(buf);
          return n === null ? "" : new TextDecoder().decode(buf.subarray(0, n));
        })().catch(() => "");
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<string>((r) => timer = setTimeout(() => r("timeout"), 10_000));
        const head = await Promise.race([answer, timeout]);
        clearTimeout(timer);
        if (head.startsWith("HTTP/1.1 200")) answered++;
      }
      assert.equal(answered, 4);
    } finally {
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed by the proxy */ }
      }
      await proxy.stop();
      await backend.close();
    }
  },
});
