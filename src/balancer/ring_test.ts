import assert from "node:assert/strict";
import { HashRing } from "./ring.ts";

const members = ["a", "b", "c", "d"].map((n) => ({ id: `http://${n}.test:80/`, weight: 1 }));
const keys = Array.from({ length: 10_000 }, (_, i) => `/item/${i}?v=${i % 7}`);

Deno.test("HashRing spreads keys evenly over equal members", () => {
  const ring = new HashRing(members);
  const counts = [0, 0, 0, 0];
  for (const k of keys) counts[ring.lookup(k, () => true)]++;
  for (const c of counts) assert.ok(c > 2_000 && c < 3_000, `uneven share: ${counts}`);
});

Deno.test("HashRing moves only the removed member's keys (about 1/N)", () => {
  const ring = new HashRing(members);
  const before = keys.map((k) => ring.lookup(k, () => true));
  const after = keys.map((k) => ring.lookup(k, (i) => i !== 2));
  let moved = 0;
  for (let i = 0; i < keys.length; i++) {
    if (before[i] !== after[i]) {
      moved++;
      assert.equal(before[i], 2, "a key of a member that stayed changed its member");
    }
    assert.notEqual(after[i], 2);
  }
  const share = moved / keys.length;
  assert.ok(share > 0.18 && share < 0.32, `moved ${share} of keys, expected about 0.25`);
  // Same ring, same answers: stable while the set is stable.
  assert.deepEqual(keys.map((k) => ring.lookup(k, () => true)), before);
});

Deno.test("HashRing honours weights and bounds its size", () => {
  const ring = new HashRing([{ id: "x", weight: 3 }, { id: "y", weight: 1 }]);
  const counts = [0, 0];
  for (const k of keys) counts[ring.lookup(k, () => true)]++;
  const share = counts[0] / keys.length;
  assert.ok(share > 0.68 && share < 0.82, `weight 3 got ${share}`);
  const big = new HashRing([{ id: "p", weight: 997 }, { id: "q", weight: 1000 }]);
  assert.ok(big.size <= 200_000, `ring has ${big.size} points`);
  assert.equal(new HashRing([]).lookup("k", () => true), -1);
  assert.equal(ring.lookup("k", () => false), -1);
});
