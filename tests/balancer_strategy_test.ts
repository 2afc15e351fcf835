/**
 * Distribution per strategy over real sockets: 1000 requests through the
 * balancer to real origins. Tolerance: each backend's share is within 5
 * percentage points of its weight's share.
 */
import assert from "node:assert/strict";
import { type BalancerOptions, createBalancer, type Strategy } from "../src/balancer/mod.ts";
import {
  forwarderSend,
  type Origin,
  startOrigin,
  testContext,
  waitFor,
} from "../src/balancer/testdata/support.ts";

async function withPool(
  weights: number[],
  strategy: Strategy,
  extra: Partial<BalancerOptions>,
  fn: (
    call: (path: string, clientIp?: string) => Promise<string>,
    origins: Origin[],
    balancer: ReturnType<typeof createBalancer>,
  ) => Promise<void>,
) {
  const origins = weights.map((_, i) => startOrigin(`o${i}`));
  const real = forwarderSend();
  const balancer = createBalancer({
    backends: origins.map((o, i) => ({ url: o.url, weight: weights[i] })),
    strategy,
    send: real.send,
    ...extra,
  });
  const call = async (path: string, clientIp?: string) => {
    const res = await balancer.handler(new Request(`http://gw.test${path}`), testContext(clientIp));
    assert.equal(res.status, 200);
    return await res.text();
  };
  try {
    await fn(call, origins, balancer);
  } finally {
    await balancer.close();
    real.close();
    for (const o of origins) await o.close();
  }
}

/** Sends `n` requests, `concurrency` at a time; returns the count per origin name. */
async function spread(call: (path: string) => Promise<string>, n: number, concurrency = 8) {
  const counts: Record<string, number> = {};
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      next++;
      const name = await call(`/r/${next}`);
      counts[name] = (counts[name] ?? 0) + 1;
    }
  }));
  return counts;
}

function assertShares(counts: Record<string, number>, weights: number[], n: number) {
  const total = weights.reduce((a, b) => a + b, 0);
  weights.forEach((w, i) => {
    const share = (counts[`o${i}`] ?? 0) / n;
    const expected = w / total;
    assert.ok(
      Math.abs(share - expected) <= 0.05,
      `o${i}: share ${share.toFixed(3)}, expected ${expected.toFixed(3)} (${
        JSON.stringify(counts)
      })`,
    );
  });
}

Deno.test("round robin spreads 1000 requests evenly", async () => {
  await withPool([1, 1, 1], "round-robin", {}, async (call) => {
    assertShares(await spread(call, 1000), [1, 1, 1], 1000);
  });
});

Deno.test("weighted round robin follows weights 5:3:2 over 1000 requests", async () => {
  await withPool([5, 3, 2], "weighted-round-robin", {}, async (call, _o, balancer) => {
    const counts = await spread(call, 1000);
    assertShares(counts, [5, 3, 2], 1000);
    // Smooth WRR is exact over whole cycles.
    assert.deepEqual(counts, { o0: 500, o1: 300, o2: 200 });
    assert.deepEqual(balancer.snapshot().backends.map((b) => b.requests), [500, 300, 200]);
  });
});

Deno.test("least connections prefers the fast backend when the other is slow", async () => {
  await withPool([1, 1], "least-connections", {}, async (call, origins) => {
    origins[1].delayMs = 40;
    const counts = await spread(call, 300, 8);
    const fast = (counts.o0 ?? 0) / 300;
    assert.ok(fast > 0.75, `fast backend got ${fast} of the requests (${JSON.stringify(counts)})`);
  });
});

Deno.test("least connections with equal backends still spreads by weight", async () => {
  await withPool([3, 1], "least-connections", {}, async (call, origins) => {
    for (const o of origins) o.delayMs = 5;
    assertShares(await spread(call, 1000, 8), [3, 1], 1000);
  });
});

for (const strategy of ["ip-hash", "url-hash"] as const) {
  Deno.test(`${strategy}: keys keep their backend; only ~1/N move when one goes down`, async () => {
    await withPool([1, 1, 1, 1], strategy, {
      healthCheck: { path: "/health", intervalMs: 50, timeoutMs: 1_000, rise: 1, fall: 1 },
    }, async (call, origins, balancer) => {
      const keys = Array.from({ length: 200 }, (_, i) => i);
      const ask = (k: number) =>
        strategy === "ip-hash"
          ? call("/same/path", `10.1.${k >> 8}.${k & 255}`)
          : call(`/k/${k}?v=1`);
      const first = await Promise.all(keys.map(ask));
      const again = await Promise.all(keys.map(ask));
      assert.deepEqual(again, first, "same key, same backend");
      const perBackend = new Set(first);
      assert.equal(perBackend.size, 4, "keys spread over every backend");

      origins[2].healthy = false;
      await waitFor(() => balancer.snapshot().backends[2].state === "down", "o2 down");
      const after = await Promise.all(keys.map(ask));
      let moved = 0;
      keys.forEach((k) => {
        if (after[k] !== first[k]) {
          moved++;
          assert.equal(first[k], "o2", `key ${k} moved from ${first[k]}, which is still up`);
        }
        assert.notEqual(after[k], "o2");
      });
      assert.ok(moved / keys.length > 0.1 && moved / keys.length < 0.4, `moved ${moved}`);

      origins[2].healthy = true;
      await waitFor(() => balancer.snapshot().backends[2].state === "up", "o2 up");
      assert.deepEqual(await Promise.all(keys.map(ask)), first, "keys return when it does");
    });
  });
}
