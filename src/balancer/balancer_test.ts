import assert from "node:assert/strict";
import { type BalancerOptions, createBalancer } from "./mod.ts";
import {
  forwarderSend,
  type Origin,
  startOrigin,
  startResetter,
  testContext,
  waitFor,
} from "./testdata/support.ts";

/** Runs `fn` with a balancer over `targets` sending through a real forwarder; cleans up everything. */
async function withBalancer(
  targets: URL[],
  extra: Partial<BalancerOptions>,
  fn: (b: ReturnType<typeof createBalancer>) => Promise<void>,
) {
  const real = forwarderSend();
  const balancer = createBalancer({
    backends: targets.map((url) => ({ url, weight: 1 })),
    strategy: "round-robin",
    send: real.send,
    ...extra,
  });
  try {
    await fn(balancer);
  } finally {
    await balancer.close();
    real.close();
  }
}

const get = (path = "/", init?: RequestInit) => new Request(`http://proxy.test${path}`, init);

Deno.test("no backend configured gives 502 with a short body", async () => {
  await withBalancer([], {}, async (b) => {
    const res = await b.handler(get(), testContext());
    assert.equal(res.status, 502);
    assert.match(await res.text(), /no backend configured/);
  });
});

Deno.test("proxies path and query to the backend and sets ctx.backend", async () => {
  const a = startOrigin("a");
  const seen: string[] = [];
  const real = forwarderSend();
  const send = real.send;
  const balancer = createBalancer({
    backends: [{ url: a.url, weight: 1 }],
    strategy: "round-robin",
    send: (req, target, ctx) => {
      seen.push(target.href);
      return send(req, target, ctx);
    },
    connectionStats: () => ({ [a.url.origin]: { opened: 1, reused: 3, requests: 4 } }),
  });
  try {
    const ctx = testContext();
    const res = await balancer.handler(get("/x/y?z=1&w#frag"), ctx);
    assert.equal(await res.text(), "a");
    assert.equal(ctx.backend, `http://127.0.0.1:${a.port}`);
    assert.deepEqual(seen, [`http://127.0.0.1:${a.port}/x/y?z=1&w`]);
    const snap = balancer.snapshot().backends[0];
    assert.equal(snap.requests, 1);
    assert.equal(snap.in_flight, 0);
    assert.equal(snap.state, "up");
    assert.deepEqual(snap.connections, { opened: 1, reused: 3, reuse_ratio: 0.75 });
  } finally {
    await balancer.close();
    real.close();
    await a.close();
  }
});

Deno.test("a refused connection is retried on another backend, for GET and POST alike", async () => {
  const dead = startOrigin("dead");
  await dead.close();
  const live = startOrigin("live");
  try {
    await withBalancer([dead.url, live.url], { passive: { maxFails: 100 } }, async (b) => {
      for (let i = 0; i < 4; i++) {
        const res = await b.handler(
          get("/", { method: i % 2 ? "POST" : "GET", body: i % 2 ? "p" : null }),
          testContext(),
        );
        assert.equal(await res.text(), "live", `attempt ${i}`);
        assert.equal(res.status, 200);
      }
      const snap = b.snapshot();
      // Round robin resumes after the backend that answered, so each request tried "dead" first.
      assert.equal(snap.backends[0].errors, 4);
      assert.equal(snap.retries, 4);
      assert.deepEqual(live.bodies, ["p", "p"]);
    });
  } finally {
    await live.close();
  }
});

Deno.test("POST is not resent after it went out; GET and small PUT are", async () => {
  const black = startResetter();
  const live = startOrigin("live");
  try {
    await withBalancer([black.url, live.url], { passive: { maxFails: 100 } }, async (b) => {
      // Round robin starts at the resetter: every first attempt goes there.
      const post = await b.handler(get("/order", { method: "POST", body: "once" }), testContext());
      assert.equal(post.status, 502);
      assert.match(await post.text(), /bad gateway/);
      assert.equal(black.seen.length, 1, "the POST reached the first backend once");
      assert.deepEqual(live.bodies, [], "and was never sent to another");

      await b.handler(get("/"), testContext()).then((r) => r.text()); // realign round robin
      const res = await b.handler(get("/page"), testContext());
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "live");

      await b.handler(get("/"), testContext()).then((r) => r.text());
      const put = await b.handler(get("/doc", { method: "PUT", body: "kept body" }), testContext());
      assert.equal(put.status, 200);
      await put.text();
      assert.deepEqual(live.bodies, ["kept body"]);
    });
  } finally {
    await black.close();
    await live.close();
  }
});

Deno.test("a streamed body larger than retryBodyLimit is never replayed", async () => {
  const black = startResetter();
  const live = startOrigin("live");
  try {
    await withBalancer([black.url, live.url], { retryBodyLimit: 1024 }, async (b) => {
      const big = "x".repeat(4096);
      const chunked = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new TextEncoder().encode(big));
          c.close();
        },
      });
      const res = await b.handler(
        get("/upload", { method: "PUT", body: chunked }),
        testContext(),
      );
      assert.equal(res.status, 502);
      await res.body?.cancel();
      assert.deepEqual(live.bodies, []);
      // A small chunked body is kept and can go to the next backend.
      await b.handler(get("/"), testContext()).then((r) => r.text()); // realign round robin
      const small = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new TextEncoder().encode("sm"));
          c.enqueue(new TextEncoder().encode("all"));
          c.close();
        },
      });
      const ok = await b.handler(get("/upload", { method: "PUT", body: small }), testContext());
      assert.equal(ok.status, 200);
      await ok.text();
      assert.deepEqual(live.bodies, ["small"]);
    });
  } finally {
    await black.close();
    await live.close();
  }
});

Deno.test("all backends ejected gives 503 with Retry-After at once", async () => {
  const a = startOrigin("a");
  const c = startOrigin("c");
  await a.close();
  await c.close();
  const warnings: string[] = [];
  const logger = {
    debug() {},
    info() {},
    warn: (msg: string, props?: Record<string, unknown>) =>
      warnings.push(msg.replace(/\{(\w+)\}/g, (_, k) => String(props?.[k]))),
  };
  await withBalancer(
    [a.url, c.url],
    { passive: { maxFails: 1, failTimeoutMs: 30_000 }, logger },
    async (b) => {
      const first = await b.handler(get(), testContext());
      assert.equal(first.status, 502); // both attempts refused, both now ejected
      await first.body?.cancel();
      assert.deepEqual(b.snapshot().backends.map((x) => x.state), ["ejected", "ejected"]);
      const attempts = () => b.snapshot().backends.map((x) => x.requests);
      const before = attempts();
      const res = await b.handler(get(), testContext());
      assert.equal(res.status, 503);
      assert.match(await res.text(), /all backends are down/);
      const retryAfter = Number(res.headers.get("retry-after"));
      assert.ok(retryAfter >= 1 && retryAfter <= 30, `Retry-After ${retryAfter}`);
      // "At once": answered without an attempt on any backend (no connect to wait for).
      assert.deepEqual(attempts(), before);
      assert.equal(b.snapshot().unavailable, 1);
      assert.equal(warnings.length, 2);
      assert.match(
        warnings[0],
        /^backend http:\/\/127\.0\.0\.1:\d+ ejected for 30 s after connect$/,
      );
    },
  );
});

Deno.test("active health checks take a failing backend out and bring it back", async () => {
  const a = startOrigin("a");
  const c = startOrigin("c");
  try {
    await withBalancer([a.url, c.url], {
      healthCheck: { path: "/health", intervalMs: 50, timeoutMs: 1_000, rise: 2, fall: 2 },
    }, async (b) => {
      const state = () => b.snapshot().backends.map((x) => x.state).join(",");
      await waitFor(() => b.snapshot().backends.every((x) => x.health.last_check), "first checks");
      a.healthy = false;
      await waitFor(() => state() === "down,up", "a marked down");
      const down = b.snapshot().backends[0].health;
      assert.equal(down.last_status, 503);
      const hitsBefore = a.hits;
      for (let i = 0; i < 10; i++) {
        assert.equal(await (await b.handler(get(), testContext())).text(), "c");
      }
      assert.equal(a.hits, hitsBefore, "a down backend gets no traffic");
      a.healthy = true;
      await waitFor(() => state() === "up,up", "a back up");
      const got = new Set<string>();
      for (let i = 0; i < 4; i++) got.add(await (await b.handler(get(), testContext())).text());
      assert.deepEqual([...got].sort(), ["a", "c"]);
      // Every backend down by health check: 503 without trying any.
      a.healthy = false;
      c.healthy = false;
      await waitFor(() => state() === "down,down", "both down");
      const res = await b.handler(get(), testContext());
      assert.equal(res.status, 503);
      await res.text();
    });
  } finally {
    await a.close();
    await c.close();
  }
});

Deno.test("in_flight covers the response body until it is read or cancelled", async () => {
  const a: Origin = startOrigin("a");
  try {
    await withBalancer([a.url], {}, async (b) => {
      const res = await b.handler(get(), testContext());
      assert.equal(b.snapshot().backends[0].in_flight, 1);
      await res.text();
      assert.equal(b.snapshot().backends[0].in_flight, 0);
      const res2 = await b.handler(get(), testContext());
      await res2.body?.cancel();
      assert.equal(b.snapshot().backends[0].in_flight, 0);
      // A HEAD response's body is never read by Deno.serve: it must not hold the count.
      await b.handler(get("/", { method: "HEAD" }), testContext());
      assert.equal(b.snapshot().backends[0].in_flight, 0);
      const names = b.metrics().map((m) => m.name);
      for (
        const n of [
          "proxy_backend_up",
          "proxy_backend_requests_total",
          "proxy_backend_errors_total",
          "proxy_backend_in_flight",
          "proxy_backend_latency_seconds",
        ]
      ) assert.ok(names.includes(n), n);
      const latency = b.metrics().find((m) => m.name === "proxy_backend_latency_seconds")!;
      assert.ok(latency.samples.some((s) => s.labels?.quantile === "0.99"));
      assert.equal(latency.samples.find((s) => s.suffix === "_count")?.value, 3);
    });
  } finally {
    await a.close();
  }
});

Deno.test("in_flight ends with ctx.conn.completed when the listener provides it", async () => {
  const a = startOrigin("a");
  try {
    await withBalancer([a.url], {}, async (b) => {
      const { promise, resolve } = Promise.withResolvers<void>();
      const base = testContext();
      const ctx = { ...base, conn: { ...base.conn, completed: promise } };
      const res = await b.handler(get(), ctx);
      assert.equal(await res.text(), "a");
      assert.equal(b.snapshot().backends[0].in_flight, 1, "body read, but not yet sent");
      resolve();
      await promise;
      assert.equal(b.snapshot().backends[0].in_flight, 0);
    });
  } finally {
    await a.close();
  }
});

Deno.test("a single backend is never ejected passively (nowhere else to send traffic)", async () => {
  const a = startOrigin("a");
  await a.close(); // a.start() below brings it back on the same port
  await withBalancer([a.url], { passive: { maxFails: 1, failTimeoutMs: 60_000 } }, async (b) => {
    for (let i = 0; i < 3; i++) {
      const res = await b.handler(get(), testContext());
      assert.equal(res.status, 502);
      await res.body?.cancel();
    }
    assert.equal(b.snapshot().backends[0].state, "up");
    a.start();
    try {
      const res = await b.handler(get(), testContext());
      assert.equal(await res.text(), "a", "served as soon as it is back");
    } finally {
      await a.close();
    }
  });
});
