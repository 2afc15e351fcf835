/**
 * CacheReplicas between two thread-group members in one thread (joined by a MessageChannel),
 * so each race can be staged exactly.
 */
import assert from "node:assert/strict";
import { type CacheEntry, prepare, type StoredResponse } from "../cache/entry.ts";
import { MemoryStore } from "../cache/memory.ts";
import { STRICT_HEURISTIC } from "../cache/policy.ts";
import type { CacheStore } from "../cache/store.ts";
import { CacheReplicas } from "./cache_replicas.ts";
import { CLAIM_SLOTS, ThreadGroup } from "./group.ts";

function pair(memoryB: CacheStore = new MemoryStore({ maxBytes: 1 << 20 })) {
  const id = crypto.randomUUID();
  const counters = new SharedArrayBuffer(64);
  const claims = new SharedArrayBuffer(2 * CLAIM_SLOTS * 4);
  const ch = new MessageChannel();
  const mesh = [[{ thread: 1, port: ch.port1 }], [{ thread: 0, port: ch.port2 }]];
  const groups = [0, 1].map((thread) =>
    new ThreadGroup({ id, thread, threads: 2, counters, claims, mesh: mesh[thread] }, [])
  );
  const memoryA = new MemoryStore({ maxBytes: 1 << 20 });
  const make = (group: ThreadGroup, memory: CacheStore) =>
    new CacheReplicas({ group, memory, prepare: (s) => prepare(s, STRICT_HEURISTIC) });
  const a = make(groups[0], memoryA);
  const b = make(groups[1], memoryB);
  return {
    a,
    b,
    memoryA,
    memoryB,
    async close() {
      await a.close();
      await b.close();
      for (const g of groups) g.close();
    },
  };
}

function entry(url: string, body = "hello"): CacheEntry {
  const now = Date.now();
  const s: StoredResponse = {
    url,
    status: 200,
    headers: [["cache-control", "max-age=600"]],
    body: new TextEncoder().encode(body),
    requestTime: now,
    responseTime: now,
    varyNames: [],
    varyKey: "",
    initialAge: 0,
  };
  return prepare(s, STRICT_HEURISTIC);
}

const none = new Headers();
/** Lets the channels deliver what was posted so far. */
const delivered = () => new Promise((r) => setTimeout(r, 50));

Deno.test("a response stored on one thread lands in the other thread's memory store", async () => {
  const p = pair();
  try {
    await p.a.set("http://x/a", entry("http://x/a", "copy"), 60);
    await delivered();
    const copy = p.memoryB.lookup!("http://x/a", none);
    assert.ok(copy);
    assert.equal(new TextDecoder().decode(copy.body), "copy");
    assert.equal(p.b.counters.received, 1);
  } finally {
    await p.close();
  }
});

Deno.test("a purge resolves only once the other thread has removed the key", async () => {
  const slow = new MemoryStore({ maxBytes: 1 << 20 });
  let removedAt = 0;
  // The other thread is busy: its removal finishes 200 ms after the purge reached it.
  const busy: CacheStore = Object.assign(Object.create(slow), {
    async delete(key: string) {
      await new Promise((r) => setTimeout(r, 200));
      removedAt = performance.now();
      return slow.remove(key);
    },
  });
  const p = pair(busy);
  try {
    slow.put("http://x/a", entry("http://x/a"), 60);
    assert.equal(await p.a.delete("http://x/a"), true, "the other thread's removal is counted");
    assert.ok(removedAt > 0 && removedAt <= performance.now(), "answered after the removal");
    assert.equal(slow.lookup("http://x/a", none), undefined);
  } finally {
    await p.close();
  }
});

Deno.test("a copy stored before a purge does not land after it", async () => {
  const p = pair();
  try {
    // Thread B stores and posts its copy; thread A purges before the copy has arrived.
    await p.b.set("http://x/a", entry("http://x/a", "old"), 60);
    await p.a.delete("http://x/a");
    await delivered();
    assert.equal(p.memoryA.lookup("http://x/a", none), undefined, "no stale copy after a purge");
    assert.equal(p.a.counters.dropped, 1);
    // A copy stored after the purge is replicated again.
    await p.b.set("http://x/a", entry("http://x/a", "new"), 60);
    await delivered();
    assert.ok(p.memoryA.lookup("http://x/a", none));
  } finally {
    await p.close();
  }
});

Deno.test("one thread fetches a key at a time; the other wakes with its copy in memory", async () => {
  const p = pair();
  try {
    assert.equal(p.b.claim("http://x/a"), true, "B fetches");
    assert.equal(p.a.claim("http://x/a"), false, "A must wait for B");
    let woke = false;
    const waited = p.a.wait("http://x/a", 5000).then(() => woke = true);
    await delivered();
    assert.equal(woke, false, "still fetching");
    await p.b.set("http://x/a", entry("http://x/a", "fetched by b"), 60);
    p.b.release("http://x/a");
    await waited;
    const copy = p.memoryA.lookup("http://x/a", none);
    assert.ok(copy, "the copy arrived before the wake-up");
    assert.equal(new TextDecoder().decode(copy.body), "fetched by b");
    assert.equal(p.a.claim("http://x/a"), true, "released");
    p.a.release("http://x/a");
  } finally {
    await p.close();
  }
});

Deno.test("a key whose copy is still on its way is not fetched again", async () => {
  const p = pair();
  try {
    assert.equal(p.b.claim("http://x/a"), true);
    await p.b.set("http://x/a", entry("http://x/a"), 60);
    p.b.release("http://x/a");
    // Not delivered yet: A must wait for the copy rather than ask the origin.
    assert.equal(p.a.claim("http://x/a"), false);
    await p.a.wait("http://x/a", 5000);
    assert.ok(p.memoryA.lookup("http://x/a", none));
    assert.equal(p.a.claim("http://x/a"), true);
    p.a.release("http://x/a");
  } finally {
    await p.close();
  }
});
