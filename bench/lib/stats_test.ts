import assert from "node:assert/strict";
import { median, parseDuration } from "./stats.ts";

Deno.test("median of odd and even lists", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.throws(() => median([]));
});

Deno.test("parseDuration accepts s, ms, m and bare seconds", () => {
  assert.equal(parseDuration("5s"), 5);
  assert.equal(parseDuration("500ms"), 0.5);
  assert.equal(parseDuration("1m"), 60);
  assert.equal(parseDuration("3"), 3);
  assert.throws(() => parseDuration("fast"), /bad duration/);
  assert.throws(() => parseDuration("0s"), /positive/);
});
