import assert from "node:assert/strict";
import { Backend } from "./backend.ts";
import { createPicker } from "./strategy.ts";

function pool(...weights: number[]): Backend[] {
  return weights.map((w, i) => new Backend(new URL(`http://127.0.0.1:${9001 + i}`), w, i));
}
const all = () => true;

Deno.test("smooth weighted round robin interleaves like nginx (5:1:1 → a a b a c a a)", () => {
  const bs = pool(5, 1, 1);
  const pick = createPicker("weighted-round-robin", bs);
  const seq = Array.from({ length: 7 }, () => "abc"[pick("", all)!.index]).join("");
  assert.equal(seq, "aabacaa");
});

Deno.test("round robin skips unusable backends and keeps rotating", () => {
  const bs = pool(1, 1, 1);
  const pick = createPicker("round-robin", bs);
  const seq = Array.from({ length: 6 }, () => pick("", (b) => b.index !== 1)!.index);
  assert.deepEqual(seq, [0, 2, 0, 2, 0, 2]);
  assert.equal(pick("", () => false), undefined);
});

Deno.test("least connections picks fewest in-flight per weight, rotating ties", () => {
  const bs = pool(1, 2, 1);
  const pick = createPicker("least-connections", bs);
  bs[0].inFlight = 2;
  bs[1].inFlight = 3; // 1.5 per weight unit
  bs[2].inFlight = 2;
  assert.equal(pick("", all)!.index, 1);
  for (const b of bs) b.inFlight = 0;
  const seen = new Set(Array.from({ length: 3 }, () => pick("", all)!.index));
  assert.equal(seen.size, 3);
});

Deno.test("hash strategies map a key to the same backend and fail over to another", () => {
  const bs = pool(1, 1, 1);
  const pick = createPicker("url-hash", bs);
  const first = pick("/a/b?c=1", all)!;
  for (let i = 0; i < 5; i++) assert.equal(pick("/a/b?c=1", all), first);
  const other = pick("/a/b?c=1", (b) => b !== first)!;
  assert.notEqual(other, first);
  assert.equal(pick("/a/b?c=1", () => false), undefined);
});
