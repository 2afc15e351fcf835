import assert from "node:assert/strict";
import { Backend, MAX_EJECTION_MS } from "./backend.ts";

const opts = { maxFails: 3, failTimeoutMs: 1_000 };

Deno.test("Backend is ejected after maxFails consecutive failures and returns after failTimeout", () => {
  const b = new Backend(new URL("http://127.0.0.1:1"), 1, 0);
  const t = 1_000_000;
  assert.equal(b.recordFailure(t, opts), 0);
  assert.equal(b.recordFailure(t, opts), 0);
  assert.equal(b.state(t), "up");
  assert.equal(b.recordFailure(t, opts), 1_000);
  assert.equal(b.state(t + 999), "ejected");
  assert.equal(b.available(t + 999), false);
  assert.equal(b.state(t + 1_000), "up");
});

Deno.test("Backend ejection doubles on repeated ejection up to 5 minutes and resets on success", () => {
  const b = new Backend(new URL("http://127.0.0.1:1"), 1, 0);
  let t = 0;
  for (let i = 0; i < 3; i++) b.recordFailure(t, opts);
  // Failures of requests already in flight do not extend the ejection.
  assert.equal(b.recordFailure(t + 10, opts), 0);
  const periods: number[] = [];
  for (let i = 0; i < 12; i++) {
    t = b.ejectedUntil;
    // One failure right after an ejection ran out ejects again.
    periods.push(b.recordFailure(t, opts));
  }
  assert.deepEqual(periods.slice(0, 4), [2_000, 4_000, 8_000, 16_000]);
  assert.equal(periods.at(-1), MAX_EJECTION_MS);
  t = b.ejectedUntil;
  b.recordSuccess();
  assert.equal(b.recordFailure(t, opts), 0, "after a success the streak starts over");
  b.recordFailure(t, opts);
  assert.equal(b.recordFailure(t, opts), 1_000, "and the back-off too");
});

Deno.test("Backend: maxFails 0 disables passive ejection; active health decides 'down'", () => {
  const b = new Backend(new URL("http://127.0.0.1:1"), 1, 0);
  for (let i = 0; i < 10; i++) assert.equal(b.recordFailure(0, { ...opts, maxFails: 0 }), 0);
  assert.equal(b.state(0), "up");
  b.healthy = false;
  assert.equal(b.state(0), "down");
  assert.equal(b.available(0), false);
});
