import assert from "node:assert/strict";
import { Backend } from "./backend.ts";
import type { RequestContext } from "../context/mod.ts";
import { testContext } from "../pipeline/testing.ts";
import {
  createPolicy,
  STRATEGIES,
  type Strategy,
  STRATEGY_NAMES,
  type Usable,
} from "./strategy.ts";

/** `pick(key, usable)` over a strategy's policy: the key is the URL's path (url-hash) or client (ip-hash). */
function createPicker(strategy: Strategy, bs: Backend[]) {
  const policy = createPolicy(strategy, bs);
  return (
    key: string,
    usable: Usable,
    ctx: RequestContext = testContext({ clientIp: key || "127.0.0.1" }),
  ) =>
    policy.pick(
      bs,
      new Request(`http://proxy.test${key.startsWith("/") ? key : "/"}`),
      ctx,
      usable,
    );
}

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

Deno.test("the registry is the one list: LB_STRATEGY's values, an unknown name refused naming the setting", () => {
  assert.deepEqual(STRATEGY_NAMES, Object.keys(STRATEGIES));
  assert.throws(
    () => createPolicy("random" as Strategy, pool(1)),
    /LB_STRATEGY: unknown strategy "random"/,
  );
});

Deno.test("ip-hash keys on the client address, url-hash on path and query: each chooses its own key", () => {
  const bs = pool(1, 1, 1, 1, 1, 1, 1, 1);
  const ip = createPolicy("ip-hash", bs);
  const url = createPolicy("url-hash", bs);
  const client = (ip: string) => testContext({ clientIp: ip });
  const req = (path: string) => new Request(`http://proxy.test${path}`);
  // One client, many URLs: one backend under ip-hash, several under url-hash.
  const byIp = new Set(
    Array.from({ length: 20 }, (_, i) => ip.pick(bs, req(`/p${i}`), client("203.0.113.5"), all)),
  );
  const byUrl = new Set(
    Array.from({ length: 20 }, (_, i) => url.pick(bs, req(`/p${i}`), client("203.0.113.5"), all)),
  );
  assert.equal(byIp.size, 1);
  assert.ok(byUrl.size > 1);
  // One URL, many clients: the reverse.
  const urlOne = new Set(
    Array.from(
      { length: 20 },
      (_, i) => url.pick(bs, req("/same?q=1"), client(`198.51.100.${i}`), all),
    ),
  );
  assert.equal(urlOne.size, 1);
});

Deno.test("with a turn counter shared by two threads, both rotations run as one", () => {
  let turn = 0;
  const turns = () => turn++;
  const req = new Request("http://proxy.test/");
  const ctx = testContext({ clientIp: "127.0.0.1" });
  for (
    const [strategy, weights, expected] of [
      ["weighted-round-robin", [5, 1, 1], "aabacaaaabacaa"],
      ["round-robin", [1, 1, 1], "abcabcabcabcab"],
    ] as const
  ) {
    turn = 0;
    // Each serving thread has its own pool and policy; only the counter is shared.
    const threads = [0, 1].map(() => {
      const bs = pool(...weights);
      return { bs, policy: createPolicy(strategy, bs, turns) };
    });
    const seq = Array.from({ length: 14 }, (_, i) => {
      const t = threads[i % 3 === 0 ? 0 : 1]; // uneven, as the kernel spreads connections
      return "abc"[t.policy.pick(t.bs, req, ctx, all)!.index];
    }).join("");
    assert.equal(seq, expected, strategy);
  }
});
