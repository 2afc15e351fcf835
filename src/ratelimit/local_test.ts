import assert from "node:assert/strict";
import { LocalSlidingWindow } from "./local.ts";

Deno.test("the (N+1)th request in a window is refused; remaining and reset count down", () => {
  let now = 1_000;
  const w = new LocalSlidingWindow({ limit: 3, windowMs: 10_000, now: () => now });
  const a = w.check("k");
  assert.deepEqual([a.allowed, a.remaining, a.resetMs], [true, 2, 10_000]);
  now += 2_000;
  assert.deepEqual([w.check("k").remaining, w.check("k").remaining], [1, 0]);
  const refused = w.check("k");
  assert.equal(refused.allowed, false);
  assert.equal(refused.remaining, 0);
  // The oldest request (t=1000) leaves the window at t=11000: 8 s from now.
  assert.equal(refused.resetMs, 8_000);
  // Other clients are independent.
  assert.equal(w.check("other").allowed, true);
});

Deno.test("no double burst at a window edge: any window of W holds at most N", () => {
  let now = 0;
  const w = new LocalSlidingWindow({ limit: 5, windowMs: 1_000, now: () => now });
  for (let i = 0; i < 3; i++) assert.ok(w.check("k").allowed);
  now = 900;
  for (let i = 0; i < 2; i++) assert.ok(w.check("k").allowed);
  assert.ok(!w.check("k").allowed);
  // A fixed window would reset at t=1000 and allow 5 more; here only the 3 from t=0 have aged out.
  now = 1_000;
  for (let i = 0; i < 3; i++) assert.ok(w.check("k").allowed, `request ${i} at t=1000`);
  assert.ok(!w.check("k").allowed);
  now = 1_899;
  assert.ok(!w.check("k").allowed);
  now = 1_900;
  assert.ok(w.check("k").allowed);
});

Deno.test("refused requests do not extend the lockout", () => {
  let now = 0;
  const w = new LocalSlidingWindow({ limit: 2, windowMs: 1_000, now: () => now });
  w.check("k");
  w.check("k");
  for (now = 100; now < 1_000; now += 100) assert.ok(!w.check("k").allowed);
  now = 1_000;
  assert.ok(w.check("k").allowed);
});

Deno.test("sustained load over many windows never exceeds N per sliding window", () => {
  let now = 0;
  const limit = 10, windowMs = 1_000;
  const w = new LocalSlidingWindow({ limit, windowMs, now: () => now });
  const accepted: number[] = [];
  for (now = 0; now < 10_000; now += 7) if (w.check("k").allowed) accepted.push(now);
  for (let i = limit; i < accepted.length; i++) {
    assert.ok(
      accepted[i] - accepted[i - limit] >= windowMs,
      `window starting ${accepted[i - limit]}`,
    );
  }
  // And it is not stingy: about N per window over the run.
  assert.ok(accepted.length >= 95, `accepted ${accepted.length}`);
});

Deno.test("idle clients are forgotten and the number of tracked clients is bounded", () => {
  let now = 0;
  const w = new LocalSlidingWindow({ limit: 1, windowMs: 1_000, now: () => now, maxKeys: 100 });
  for (let i = 0; i < 50; i++) w.check(`c${i}`);
  assert.equal(w.size, 50);
  now = 1_500;
  w.check("late");
  assert.equal(w.size, 1);
  for (let i = 0; i < 500; i++) w.check(`d${i}`);
  assert.ok(w.size <= 100);
});
