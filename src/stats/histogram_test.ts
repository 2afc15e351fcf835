import assert from "node:assert/strict";
import { Histogram } from "./histogram.ts";

Deno.test("Histogram reports percentiles within 2% of the exact value", () => {
  const h = new Histogram();
  for (let i = 1; i <= 10_000; i++) h.record(i / 10); // 0.1 ms .. 1000 ms
  assert.equal(h.count, 10_000);
  for (const [p, exact] of [[50, 500], [90, 900], [99, 990], [99.9, 999]]) {
    const got = h.percentile(p);
    assert.ok(Math.abs(got - exact) / exact < 0.02, `p${p}: ${got} vs ${exact}`);
  }
  assert.equal(h.min, 0.1);
  assert.equal(h.max, 1000);
  assert.ok(Math.abs(h.mean - 500.05) < 0.01);
});

Deno.test("Histogram is exact for sub-64µs values and empty-safe", () => {
  const h = new Histogram();
  assert.equal(h.percentile(99), 0);
  h.record(0.005);
  h.record(0.010);
  assert.equal(h.percentile(50), 0.006);
  assert.equal(h.percentile(100), 0.010);
});

Deno.test("Histogram.merge and countAtOrBelow", () => {
  const a = new Histogram();
  const b = new Histogram();
  a.record(1);
  b.record(100);
  a.merge(b);
  assert.equal(a.count, 2);
  assert.equal(a.countAtOrBelow(5), 1);
  assert.equal(a.countAtOrBelow(200), 2);
  assert.equal(a.max, 100);
});

Deno.test("Histogram state crosses threads and merges back exactly", () => {
  const h = new Histogram();
  for (const ms of [0.2, 1, 1, 7.5, 300]) h.record(ms);
  const copy = Histogram.fromState(structuredClone(h.toState()));
  assert.deepEqual(copy.summary(), h.summary());
  const empty = Histogram.fromState(new Histogram().toState());
  assert.equal(empty.count, 0);
  assert.equal(empty.min, 0);
});
