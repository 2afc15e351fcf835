import assert from "node:assert/strict";
import { AdmissionRejected, createAdmission } from "./mod.ts";

async function rejection(p: Promise<unknown>): Promise<AdmissionRejected> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AdmissionRejected, String(err));
    return err;
  }
  throw new Error("expected a rejection");
}

Deno.test("admission admits up to maxConcurrency, queues FIFO, rejects beyond the queue", async () => {
  const adm = createAdmission({ maxConcurrency: 2, queueSize: 3, queueTimeoutMs: 10_000 });
  const r1 = await adm.acquire();
  const r2 = await adm.acquire();
  const order: number[] = [];
  const queued = [1, 2, 3].map((n) =>
    adm.acquire().then((release) => {
      order.push(n);
      return release;
    })
  );
  const full = await rejection(adm.acquire());
  assert.equal(full.reason, "queue-full");
  assert.equal(full.status, 503);
  assert.ok(full.retryAfter >= 1);
  assert.equal(adm.snapshot().queued, 3);

  r1();
  r1(); // a second call must not free a second slot
  const first = await queued[0];
  assert.deepEqual(order, [1]);
  assert.equal(adm.snapshot().in_flight, 2);
  r2();
  first();
  const [second, third] = await Promise.all([queued[1], queued[2]]);
  assert.deepEqual(order, [1, 2, 3]);
  second();
  third();
  const s = adm.snapshot();
  assert.equal(s.in_flight, 0);
  assert.equal(s.queued, 0);
  assert.equal(s.admitted, 5);
  assert.equal(s.waited, 3);
  assert.equal(s.rejected, 1);
  adm.close();
});

Deno.test("admission: a queued request gives up after queueTimeoutMs", async () => {
  const adm = createAdmission({ maxConcurrency: 1, queueSize: 1, queueTimeoutMs: 100 });
  const release = await adm.acquire();
  const started = performance.now();
  const err = await rejection(adm.acquire());
  const waited = performance.now() - started;
  assert.equal(err.reason, "queue-timeout");
  assert.ok(waited >= 90 && waited < 2_000, `waited ${waited} ms`);
  const s = adm.snapshot();
  assert.equal(s.timed_out, 1);
  assert.equal(s.queued, 0);
  release();
  assert.equal(adm.snapshot().in_flight, 0);
  adm.close();
});

Deno.test("admission: an aborted waiter leaves the queue; close turns the rest away", async () => {
  const adm = createAdmission({ maxConcurrency: 1, queueSize: 5, queueTimeoutMs: 10_000 });
  const release = await adm.acquire();
  const ac = new AbortController();
  const aborted = rejection(adm.acquire(ac.signal));
  const other = rejection(adm.acquire());
  ac.abort();
  assert.equal((await aborted).reason, "aborted");
  assert.equal(adm.snapshot().queued, 1);
  adm.close();
  assert.equal((await other).reason, "closed");
  assert.equal((await rejection(adm.acquire())).reason, "closed");
  release();
  assert.equal(adm.snapshot().in_flight, 0);
  assert.equal(adm.snapshot().cancelled, 1);
});
