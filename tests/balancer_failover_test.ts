/**
 * A backend crashes (SIGKILL) in the middle of sustained load: no idempotent
 * request fails, the backend is ejected, and after it restarts on the same
 * port it gets traffic again. Real sockets, a real child process.
 */
import assert from "node:assert/strict";
import { createBalancer } from "../src/balancer/mod.ts";
import {
  forwarderSend,
  freePort,
  startOrigin,
  startProcessOrigin,
  testContext,
  waitFor,
} from "../src/balancer/testdata/support.ts";

for (const strategy of ["round-robin", "least-connections"] as const) {
  Deno.test(`${strategy}: a backend killed under load costs no failed GET, is ejected and comes back`, async () => {
    const victim = await startProcessOrigin("victim", freePort());
    const a = startOrigin("a");
    const b = startOrigin("b");
    const real = forwarderSend();
    const balancer = createBalancer({
      backends: [victim.url, a.url, b.url].map((url) => ({ url, weight: 1 })),
      strategy,
      passive: { maxFails: 2, failTimeoutMs: 300 },
      retries: 2,
      send: real.send,
    });
    const served: Record<string, number> = {};
    const failures: string[] = [];
    let running = true;
    let total = 0;
    const worker = async () => {
      while (running) {
        const res = await balancer.handler(new Request("http://gw.test/item"), testContext());
        const body = await res.text();
        total++;
        if (res.status !== 200) failures.push(`${res.status} ${body.trim()}`);
        else served[body] = (served[body] ?? 0) + 1;
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    try {
      await waitFor(() => (served.victim ?? 0) > 50, "victim serving under load");
      await victim.kill();
      const killedAt = total;
      await waitFor(() => balancer.snapshot().backends[0].state === "ejected", "victim ejected");
      const servedAfterKill = served.victim;
      await waitFor(() => total > killedAt + 300, "load continuing without the victim");
      assert.equal(served.victim, servedAfterKill, "nothing served by a dead backend");

      await victim.restart();
      const before = served.victim;
      await waitFor(
        () => served.victim > before + 20,
        "restarted victim receiving traffic",
        20_000,
      );
      running = false;
      await Promise.all(workers);
      assert.deepEqual(failures, [], "no idempotent request failed");
      const snap = balancer.snapshot().backends[0];
      assert.ok(snap.errors > 0, "the crash was seen");
      assert.ok(snap.ejections >= 1);
      assert.equal(snap.state, "up");
      assert.ok(balancer.snapshot().retries > 0);
    } finally {
      running = false;
      await Promise.all(workers);
      await balancer.close();
      real.close();
      await victim.kill();
      await a.close();
      await b.close();
    }
  });
}

Deno.test("health checks: a killed backend is marked down, every backend down gives 503 fast", async () => {
  const one = await startProcessOrigin("one", freePort());
  const two = await startProcessOrigin("two", freePort());
  const real = forwarderSend();
  const balancer = createBalancer({
    backends: [one.url, two.url].map((url) => ({ url, weight: 1 })),
    strategy: "round-robin",
    healthCheck: { path: "/health", intervalMs: 100, timeoutMs: 1_000, rise: 1, fall: 1 },
    passive: { maxFails: 0, failTimeoutMs: 1_000 },
    send: real.send,
  });
  try {
    const ok = await balancer.handler(new Request("http://gw.test/"), testContext());
    assert.equal(ok.status, 200);
    await ok.text();
    await one.kill();
    await two.kill();
    await waitFor(
      () => balancer.snapshot().backends.every((b) => b.state === "down"),
      "both marked down",
    );
    // "Fast": answered without an attempt on a down backend (no connect to wait for).
    const attempts = () => balancer.snapshot().backends.map((b) => b.requests);
    const before = attempts();
    for (let i = 0; i < 5; i++) {
      const res = await balancer.handler(new Request("http://gw.test/"), testContext());
      assert.equal(res.status, 503);
      assert.ok(res.headers.get("retry-after"));
      assert.match(await res.text(), /all backends are down/);
    }
    assert.deepEqual(attempts(), before, "no request went to a backend marked down");
    assert.equal(balancer.snapshot().unavailable, 5);
    await two.restart();
    await waitFor(() => balancer.snapshot().backends[1].state === "up", "two back up");
    const back = await balancer.handler(new Request("http://gw.test/"), testContext());
    assert.equal(await back.text(), "two");
  } finally {
    await balancer.close();
    real.close();
    await one.kill();
    await two.kill();
  }
});
