/**
 * Load balancing, failover and admission control through the real proxy
 * (`main.ts serve` as a subprocess) in front of real origins.
 */
import assert from "node:assert/strict";
import { startBackendProcess, startTestBackend } from "./helpers/backend.ts";
import { closedPort, freePort } from "./helpers/ports.ts";
import { sections, startProxy, type TestProxy } from "./helpers/proxy.ts";
import { startResetter } from "../src/balancer/testdata/support.ts";

/** One Prometheus sample line: name, optional labels, one value (a number, NaN or ±Inf). */
const PROMETHEUS_SAMPLE =
  /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? (-?\d+(\.\d+)?([eE][+-]?\d+)?|NaN|[+-]Inf)$/;

async function waitFor(predicate: () => Promise<boolean> | boolean, what: string, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Each serving thread's balancer (one per thread, each with its own health and ejections). */
// deno-lint-ignore no-explicit-any
async function balancers(proxy: TestProxy): Promise<any[]> {
  return sections(await proxy.stats(), "backends");
}

/** Backend states, per serving thread. */
async function backendStates(proxy: TestProxy): Promise<string[][]> {
  return (await balancers(proxy)).map((b) => b.backends.map((x: { state: string }) => x.state));
}

/** A per-backend counter summed over the serving threads. */
async function backendCounts(proxy: TestProxy, field: string): Promise<number[]> {
  const all = await balancers(proxy);
  return all[0].backends.map((_: unknown, i: number) =>
    all.reduce((n, b) => n + b.backends[i][field], 0)
  );
}

/** A balancer-wide counter summed over the serving threads. */
async function balancerCount(proxy: TestProxy, field: string): Promise<number> {
  return (await balancers(proxy)).reduce((n, b) => n + b[field], 0);
}

Deno.test("e2e: weighted round robin 3:1 over 1000 requests, X-Backend shares within 5 points", async () => {
  const a = await startTestBackend("a");
  const b = await startTestBackend("b");
  const proxy = await startProxy({
    env: { BACKEND_SERVERS: `${a.url} weight=3, ${b.url}`, LB_STRATEGY: "weighted-round-robin" },
  });
  const client = Deno.createHttpClient({});
  try {
    const counts: Record<string, number> = {};
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < 1000) {
        next++;
        const res = await fetch(`${proxy.url}/bytes/64`, { client });
        await res.arrayBuffer();
        assert.equal(res.status, 200);
        const name = res.headers.get("x-backend")!;
        counts[name] = (counts[name] ?? 0) + 1;
      }
    }));
    assert.ok(Math.abs(counts.a / 1000 - 0.75) <= 0.05, JSON.stringify(counts));
    assert.ok(Math.abs(counts.b / 1000 - 0.25) <= 0.05, JSON.stringify(counts));
    for (const b of await balancers(proxy)) assert.equal(b.strategy, "weighted-round-robin");
    // Each serving thread runs its own exact 3:1 sequence: the sums are exact to one per thread.
    const requests = await backendCounts(proxy, "requests");
    assert.equal(requests[0] + requests[1], 1000, JSON.stringify(requests));
    assert.ok(Math.abs(requests[0] - 750) <= 2, JSON.stringify(requests));
  } finally {
    client.close();
    await proxy.stop();
    await a.close();
    await b.close();
  }
});

Deno.test("e2e: a backend killed under load: no failed GET, ejected, traffic again after restart", async () => {
  const victim = await startBackendProcess("victim", freePort());
  const a = await startTestBackend("a");
  const proxy = await startProxy({
    env: {
      BACKEND_SERVERS: `${victim.url}, ${a.url}`,
      MAX_FAILS: "1",
      FAIL_TIMEOUT: "500ms",
      RETRY_ATTEMPTS: "2",
    },
  });
  const client = Deno.createHttpClient({});
  const served: Record<string, number> = {};
  const failures: string[] = [];
  let running = true;
  const loop = async () => {
    while (running) {
      const res = await fetch(`${proxy.url}/bytes/256`, { client });
      const body = await res.arrayBuffer();
      if (res.status !== 200 || body.byteLength !== 256) {
        failures.push(`${res.status} ${new TextDecoder().decode(body).slice(0, 80)}`);
      } else {
        const name = res.headers.get("x-backend")!;
        served[name] = (served[name] ?? 0) + 1;
      }
    }
  };
  const loops = Array.from({ length: 6 }, loop);
  try {
    await waitFor(() => (served.victim ?? 0) > 50, "victim serving");
    await victim.kill("SIGKILL");
    // Each serving thread ejects on what it sees itself: one ejection is the proof.
    await waitFor(
      async () => (await backendStates(proxy)).some((states) => states[0] === "ejected"),
      "victim ejected",
    );
    const atEjection = served.a;
    await waitFor(() => served.a > atEjection + 200, "load continuing on the survivor");
    await victim.restart();
    const before = served.victim;
    await waitFor(() => served.victim > before + 20, "victim back in rotation");
    running = false;
    await Promise.all(loops);
    assert.deepEqual(failures, [], "no idempotent request failed");
    assert.ok((await backendCounts(proxy, "ejections"))[0] >= 1);
    assert.ok((await balancerCount(proxy, "retries")) >= 1);
  } finally {
    running = false;
    await Promise.all(loops);
    client.close();
    await proxy.stop();
    await victim.close();
    await a.close();
  }
});

Deno.test("e2e: a POST that reached a backend is not resent; a GET is", async () => {
  const black = startResetter();
  const live = await startTestBackend("live");
  const proxy = await startProxy({
    env: {
      BACKEND_SERVERS: `${black.url.origin}, ${live.url}`,
      RETRY_ATTEMPTS: "2",
      MAX_FAILS: "1000",
    },
  });
  const client = Deno.createHttpClient({});
  try {
    const post = await fetch(`${proxy.url}/echo`, { method: "POST", body: "pay once", client });
    await post.arrayBuffer();
    assert.equal(post.status, 502);
    assert.equal(black.seen.length, 1);
    assert.equal(
      (await live.stats()).paths["/echo"] ?? 0,
      0,
      "the POST never reached another backend",
    );

    // Round robin: the next first attempt goes to "live"; skip it so the GET starts at the resetter.
    await (await fetch(`${proxy.url}/bytes/1`, { client })).arrayBuffer();
    const get = await fetch(`${proxy.url}/bytes/16`, { client });
    assert.equal(get.status, 200);
    assert.equal((await get.arrayBuffer()).byteLength, 16);
    assert.equal(black.seen.length, 2, "the GET was tried on the resetter first");
  } finally {
    client.close();
    await proxy.stop();
    await black.close();
    await live.close();
  }
});

Deno.test("e2e: every backend down gives 503 with Retry-After at once, no backend tried", async () => {
  const proxy = await startProxy({
    env: {
      BACKEND_SERVERS: `http://127.0.0.1:${closedPort()}, http://127.0.0.1:${closedPort()}`,
      HEALTH_CHECK_PATH: "/health",
      HEALTH_CHECK_INTERVAL: "100ms",
      HEALTH_CHECK_FALL: "1",
    },
  });
  const client = Deno.createHttpClient({});
  try {
    await waitFor(
      async () => (await backendStates(proxy)).every((states) => states.every((s) => s === "down")),
      "all down on every serving thread",
    );
    // "At once" is checked as "no attempt": a wall-clock bound would be noise on a loaded machine,
    // and an attempt on a down backend is what would cost a connect (or its timeout).
    const attempts = () => backendCounts(proxy, "requests");
    const before = await attempts();
    const unavailable = await balancerCount(proxy, "unavailable");
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${proxy.url}/anything`, { client });
      const text = await res.text();
      assert.equal(res.status, 503);
      assert.match(text, /all backends are down/);
      assert.ok(Number(res.headers.get("retry-after")) >= 1);
    }
    assert.deepEqual(await attempts(), before, "no request went to a backend marked down");
    assert.equal(await balancerCount(proxy, "unavailable"), unavailable + 5);
  } finally {
    client.close();
    await proxy.stop();
  }
});

Deno.test("e2e: queue full gives 503 + Retry-After while admitted requests complete; /metrics stays up", async () => {
  const a = await startTestBackend("a");
  const proxy = await startProxy({
    env: {
      BACKEND_SERVERS: a.url,
      MAX_CONCURRENCY: "2",
      REQUEST_QUEUE_SIZE: "1",
      QUEUE_TIMEOUT: "10",
      // MAX_CONCURRENCY and the queue are per serving thread (README): on one thread the
      // third slow request is the one queued, whichever connection it came on.
      SERVE_THREADS: "1",
    },
  });
  const client = Deno.createHttpClient({});
  try {
    const slow = [0, 1, 2].map(() => fetch(`${proxy.url}/delay/800`, { client }));
    await waitFor(async () => (await proxy.stats()).admission.queued === 1, "one queued");
    const busy = await fetch(`${proxy.url}/bytes/8`, { client });
    assert.equal(busy.status, 503);
    assert.ok(Number(busy.headers.get("retry-after")) >= 1);
    assert.match(await busy.text(), /queue is full/);

    const metrics = await (await fetch(`${proxy.url}/metrics`, { client })).text();
    assert.match(metrics, /^proxy_admission_queued 1$/m);
    assert.match(metrics, /^proxy_backend_up\{backend="http:\/\/127\.0\.0\.1:\d+"\} 1$/m);
    for (const line of metrics.split("\n")) {
      if (line === "" || line.startsWith("#")) continue;
      assert.match(line, PROMETHEUS_SAMPLE, line);
    }

    for (const p of slow) {
      const res = await p;
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
    const adm = (await proxy.stats()).admission;
    assert.equal(adm.rejected, 1);
    assert.ok(adm.waited >= 1);
  } finally {
    client.close();
    await proxy.stop();
    await a.close();
  }
});
