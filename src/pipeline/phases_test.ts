/**
 * Kinds × phases: for every kind of request, every phase it declares runs, in
 * the list's order, and no other — through the real drivers `buildPipeline`
 * generates (the fast path included).
 */
import assert from "node:assert/strict";
import type { Handler, RequestContext, RequestKind, Wrapper } from "../context/mod.ts";
import {
  ADMITTED,
  buildPipeline,
  checkPhaseList,
  KINDS,
  type PhaseImpl,
  type PhaseName,
  PHASES,
  type PhaseSet,
} from "./phases.ts";
import { testContext } from "./testing.ts";

/** Phases that record that they ran; `passes` picks the fast path's answer. */
function recordingPhases(ran: PhaseName[], options: { passes: boolean; hit: boolean }): PhaseSet {
  const set: PhaseSet = {};
  for (const { name } of PHASES) {
    const record: Wrapper = (next: Handler) => (req, ctx) => {
      ran.push(name);
      return next(req, ctx);
    };
    const impl: PhaseImpl = {
      wrap: name === "route"
        ? () => (_req, _ctx) => {
          ran.push(name);
          return Promise.resolve(new Response("routed"));
        }
        : record,
      passes: () => {
        if (options.passes) ran.push(name);
        return options.passes;
      },
      hit: name === "cache"
        ? () => {
          ran.push(name);
          return options.hit ? new Response("hit") : undefined;
        }
        : undefined,
    };
    set[name] = impl;
  }
  return set;
}

const declared = (kind: RequestKind): PhaseName[] => {
  const cacheAt = PHASES.findIndex((p) => p.name === "cache");
  return PHASES.filter((p, i) =>
    (p.kinds as readonly RequestKind[]).includes(kind) && (kind !== "hit" || i <= cacheAt)
  ).map((p) => p.name);
};

/** Drives one kind through its driver; returns the phases that ran, in order. */
async function drive(kind: RequestKind, fast: boolean): Promise<PhaseName[]> {
  const ran: PhaseName[] = [];
  const pipeline = buildPipeline(recordingPhases(ran, { passes: fast, hit: kind === "hit" }));
  const ctx: RequestContext = testContext({ kind: kind === "hit" ? "http" : kind });
  const req = new Request("http://example.test/x");
  if (kind === "connect") assert.equal(await pipeline.connect(req, ctx), ADMITTED);
  else if (kind === "upgrade") await pipeline.upgrade(req, ctx);
  else await pipeline.http(req, ctx);
  return ran;
}

for (const kind of KINDS) {
  Deno.test(`kinds × phases: ${kind} runs exactly the phases it declares, in order`, async () => {
    const expected = declared(kind);
    assert.ok(expected.length > 0);
    if (kind === "hit") {
      // A hit is known only at the cache: it is the fast path with every filter passing.
      assert.deepEqual(await drive(kind, true), expected);
      return;
    }
    const ran = await drive(kind, false);
    // The full chain: the cache's synchronous hit is tried only on the fast path.
    assert.deepEqual(ran, expected);
    for (const p of PHASES) {
      if (!expected.includes(p.name)) assert.ok(!ran.includes(p.name), `${kind} ran ${p.name}`);
    }
  });
}

Deno.test("kinds × phases: http on the fast path asks every filter once, then the cache, then the upstream phases", async () => {
  const ran = await drive("http", true);
  // The cache appears twice: its synchronous hit missed, then its wrapper looked again (L2, coalescing).
  const cacheAt = PHASES.findIndex((p) => p.name === "cache");
  const filters = declared("http").filter((n) => PHASES.findIndex((p) => p.name === n) < cacheAt);
  assert.deepEqual(ran, [...filters, "cache", ...declared("http").slice(filters.length)]);
});

Deno.test("fast path: a filter that does not pass runs as a wrapper, from there on; none runs twice", async () => {
  const ran: string[] = [];
  const phases = recordingPhases(ran as PhaseName[], { passes: true, hit: false });
  // The rate limit cannot decide synchronously for this client: it and every later filter run in full.
  phases["rate-limit"] = { ...phases["rate-limit"]!, passes: () => false };
  await buildPipeline(phases).http(new Request("http://example.test/"), testContext());
  assert.deepEqual(ran, [
    "hygiene",
    "client-acl",
    "auth",
    "body-limit",
    "rate-limit",
    "filter",
    "target",
    "cache",
    "admission",
    "compression",
    "route",
  ]);
});

Deno.test("phases that are off are skipped by every kind; a phase without `passes` always runs as a wrapper", async () => {
  const ran: PhaseName[] = [];
  const phases = recordingPhases(ran, { passes: true, hit: true });
  delete phases.auth;
  phases.filter = { wrap: phases.filter!.wrap };
  const pipeline = buildPipeline(phases);
  assert.ok(!pipeline.plan.http.includes("auth"));
  const res = await pipeline.http(new Request("http://example.test/"), testContext());
  // Hygiene, ACL, body and rate limit passed; the filter ran as a wrapper, and the chain from it.
  assert.equal(await res.text(), "routed");
  assert.deepEqual(ran, [
    "hygiene",
    "client-acl",
    "body-limit",
    "rate-limit",
    "filter",
    "target",
    "cache",
    "admission",
    "compression",
    "route",
  ]);
});

Deno.test("the phase list's rules hold, and a list that breaks one is refused", () => {
  checkPhaseList();
  assert.throws(
    () =>
      checkPhaseList([
        { name: "filter", kinds: ["http"] },
        { name: "cache", kinds: ["http", "hit"] },
      ]),
    /filter is before the cache/,
  );
  assert.throws(
    () =>
      checkPhaseList([
        { name: "cache", kinds: ["http", "hit"] },
        { name: "route", kinds: ["http", "hit"] },
      ]),
    /route is after the cache/,
  );
});
