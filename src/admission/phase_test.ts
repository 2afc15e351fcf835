/**
 * The admission phase through the real `compose`, on Deno.serve, driven by
 * real HTTP clients: a full queue answers 503 with Retry-After at once while
 * the admitted requests still complete; slots last until the body is sent.
 */
import assert from "node:assert/strict";
import type { Handler } from "../context/mod.ts";
import { compose } from "../pipeline/mod.ts";
import { serveChain } from "../pipeline/testing.ts";
import { type Admission, admissionPhase, createAdmission } from "./mod.ts";

interface Gate {
  wait: Promise<void>;
  open(): void;
}
function gate(): Gate {
  const { promise, resolve } = Promise.withResolvers<void>();
  return { wait: promise, open: () => resolve() };
}

/** Serves `origin` behind the admission phase; `passInfo` puts Deno.serve's `completed` in the context. */
function serve(adm: Admission, origin: Handler, passInfo: boolean) {
  const s = serveChain(compose(origin, admissionPhase(adm)), { completed: passInfo });
  return { server: { shutdown: s.close }, base: s.url };
}

async function waitFor(predicate: () => boolean, what: string) {
  const deadline = Date.now() + 10_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

for (const passInfo of [true, false]) {
  const how = passInfo ? "with Deno.serve's completed" : "with a wrapped body";
  Deno.test(`admission (${how}): a full queue gives 503 + Retry-After; admitted and queued requests finish`, async () => {
    const adm: Admission = createAdmission({
      maxConcurrency: 2,
      queueSize: 2,
      queueTimeoutMs: 10_000,
    });
    const hold = gate();
    const arrived: string[] = [];
    const { server, base } = serve(adm, async (req) => {
      const id = req.url.slice(req.url.lastIndexOf("/") + 1);
      arrived.push(id);
      await hold.wait;
      return new Response(`done ${id}`);
    }, passInfo);
    const client = Deno.createHttpClient({});
    const get = (id: string) => fetch(`${base}/work/${id}`, { client });
    try {
      const admitted = [get("a"), get("b")];
      await waitFor(() => arrived.length === 2, "two admitted requests");
      const queued = [get("c")];
      await waitFor(() => adm.snapshot().queued === 1, "c queued");
      queued.push(get("d"));
      await waitFor(() => adm.snapshot().queued === 2, "d queued");

      const started = performance.now();
      const busy = await get("e");
      const ms = performance.now() - started;
      assert.equal(busy.status, 503);
      assert.ok(Number(busy.headers.get("retry-after")) >= 1);
      assert.match(await busy.text(), /queue is full/);
      assert.ok(ms < 1_000, `503 took ${ms} ms`);

      hold.open();
      const texts = await Promise.all([...admitted, ...queued].map(async (p) => {
        const res = await p;
        assert.equal(res.status, 200);
        return res.text();
      }));
      assert.deepEqual(texts, ["done a", "done b", "done c", "done d"]);
      assert.deepEqual(arrived.slice(2), ["c", "d"], "queued requests ran in FIFO order");
      await waitFor(() => adm.snapshot().in_flight === 0, "all slots released");
      const s = adm.snapshot();
      assert.equal(s.admitted, 4);
      assert.equal(s.waited, 2);
      assert.equal(s.rejected, 1);
      assert.ok(s.wait_ms.p99 > 0);
    } finally {
      adm.close();
      client.close();
      await server.shutdown();
    }
  });

  Deno.test(`admission (${how}): a slot is held until the body has been sent`, async () => {
    const adm = createAdmission({ maxConcurrency: 1, queueSize: 0, queueTimeoutMs: 1_000 });
    let push!: ReadableStreamDefaultController<Uint8Array>;
    const { server, base } = serve(adm, (req) =>
      Promise.resolve(
        req.url.endsWith("/quick") ? new Response("quick") : new Response(
          new ReadableStream<Uint8Array>({
            start(c) {
              push = c;
              c.enqueue(new TextEncoder().encode("first,"));
            },
          }),
        ),
      ), passInfo);
    const client = Deno.createHttpClient({});
    try {
      const res = await fetch(`${base}/stream`, { client });
      assert.equal(res.status, 200);
      // Headers are out, the body is not finished: the slot is still taken.
      assert.equal(adm.snapshot().in_flight, 1);
      const other = await fetch(`${base}/quick`, { client });
      assert.equal(other.status, 503);
      await other.body?.cancel();
      push.enqueue(new TextEncoder().encode("last"));
      push.close();
      assert.equal(await res.text(), "first,last");
      await waitFor(() => adm.snapshot().in_flight === 0, "slot released after the body");
      const again = await fetch(`${base}/quick`, { client });
      assert.equal(await again.text(), "quick");
    } finally {
      adm.close();
      client.close();
      await server.shutdown();
    }
  });
}

Deno.test("admission: a queued request times out with 503 while the admitted one completes", async () => {
  const adm = createAdmission({ maxConcurrency: 1, queueSize: 5, queueTimeoutMs: 150 });
  const hold = gate();
  const { server, base } = serve(adm, async () => {
    await hold.wait;
    return new Response("ok");
  }, true);
  const client = Deno.createHttpClient({});
  try {
    const first = fetch(base, { client });
    await waitFor(() => adm.snapshot().in_flight === 1, "first admitted");
    const started = performance.now();
    const late = await fetch(base, { client });
    const waited = performance.now() - started;
    assert.equal(late.status, 503);
    assert.match(await late.text(), /timed out/);
    assert.ok(late.headers.has("retry-after"));
    assert.ok(waited >= 140, `gave up after ${waited} ms`);
    hold.open();
    assert.equal(await (await first).text(), "ok");
    assert.equal(adm.snapshot().timed_out, 1);
  } finally {
    adm.close();
    client.close();
    await server.shutdown();
  }
});

Deno.test("admission: HEAD responses release their slot (Deno.serve never reads their body)", async () => {
  const adm = createAdmission({ maxConcurrency: 2, queueSize: 0, queueTimeoutMs: 1_000 });
  const { server, base } = serve(
    adm,
    () => Promise.resolve(new Response("a body that is never sent for HEAD")),
    false,
  );
  const client = Deno.createHttpClient({});
  try {
    for (let i = 0; i < 5; i++) {
      const res = await fetch(base, { method: "HEAD", client });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    assert.equal(adm.snapshot().in_flight, 0);
    assert.equal(adm.snapshot().rejected, 0);
  } finally {
    adm.close();
    client.close();
    await server.shutdown();
  }
});
