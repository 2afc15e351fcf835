import assert from "node:assert/strict";
import { createWorkerPool, PoolQueueFullError, PoolTaskError, type WorkerPool } from "./mod.ts";

const assertEquals: (actual: unknown, expected: unknown, message?: string) => void =
  assert.deepStrictEqual;

/** Awaits a rejection of class `cls` whose message contains `part`, and returns the error. */
async function assertRejects(
  fn: () => Promise<unknown>,
  cls: new (...args: never[]) => Error,
  part = "",
): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    assert(err instanceof cls, `expected ${cls.name}, got ${err}`);
    assert(err.message.includes(part), `"${err.message}" should contain "${part}"`);
    return err;
  }
  throw new assert.AssertionError({ message: `expected a rejection with ${cls.name}` });
}

const ENTRY = new URL("./testdata/test_worker.ts", import.meta.url);

function pool(size = 2, queueSize = 16, taskTimeoutMs = 20_000): WorkerPool {
  return createWorkerPool({ size, queueSize, taskTimeoutMs, entry: ENTRY });
}

Deno.test("transfers buffers to the worker and back without copying", async () => {
  const p = pool();
  try {
    const buf = new Uint8Array([1, 2, 3, 4]).buffer;
    const out = await p.run<{ data: ArrayBuffer }>({ kind: "echo", data: buf }, [buf]);
    assertEquals(buf.byteLength, 0, "the input was transferred (detached), not copied");
    assertEquals([...new Uint8Array(out.data)], [1, 2, 3, 4]);
    assertEquals(p.snapshot().completed, 1);
  } finally {
    p.close();
  }
});

Deno.test("runs tasks FIFO and refuses beyond the queue bound", async () => {
  const p = pool(1, 2);
  try {
    const order: number[] = [];
    const first = p.run({ kind: "sleep", ms: 200 }).then(() => order.push(0));
    const queued = [1, 2].map((i) => p.run({ kind: "sleep", ms: 1 }).then(() => order.push(i)));
    assertEquals(p.snapshot().queued, 2);
    await assertRejects(() => p.run({ kind: "sleep", ms: 1 }), PoolQueueFullError);
    await Promise.all([first, ...queued]);
    assertEquals(order, [0, 1, 2]);
    assertEquals(p.snapshot().rejected, 1);
  } finally {
    p.close();
  }
});

Deno.test("a handler error fails only its task; the worker keeps serving", async () => {
  const p = pool(1);
  try {
    await assertRejects(() => p.run({ kind: "fail" }), PoolTaskError, "handler failed on purpose");
    assertEquals(await p.run({ kind: "sleep", ms: 1 }), "slept");
    assertEquals(p.snapshot().restarts, 0);
  } finally {
    p.close();
  }
});

Deno.test("a worker killed mid-task is replaced and its task fails cleanly", async () => {
  const p = pool(1);
  try {
    const running = p.run({ kind: "sleep", ms: 60_000 });
    // Wait until the worker has actually started the task.
    while (p.busyWorker() === undefined) await new Promise((r) => setTimeout(r, 5));
    assert(p.kill(p.busyWorker()!));
    const err = await assertRejects(() => running, PoolTaskError, "terminated");
    assertEquals((err as PoolTaskError).reason, "crash");
    assertEquals(await p.run({ kind: "sleep", ms: 1 }), "slept", "the replacement serves");
    const s = p.snapshot();
    assertEquals([s.workers, s.restarts, s.failed, s.completed], [1, 1, 1, 1]);
  } finally {
    p.close();
  }
});

Deno.test("an idempotent task on a killed worker is retried once, with its input intact", async () => {
  const p = pool(1);
  try {
    const buf = new Uint8Array([9, 8, 7]).buffer;
    const running = p.run<{ data: ArrayBuffer }>(
      { kind: "echo", data: buf, idempotent: true },
      [buf],
    );
    // Kill before the answer can arrive: the echo message is queued behind the kill.
    p.kill(0);
    const out = await running;
    assertEquals([...new Uint8Array(out.data)], [9, 8, 7]);
    assertEquals(p.snapshot().retries, 1);
  } finally {
    p.close();
  }
});

Deno.test("an uncaught error in a worker replaces it; idempotent tasks retry once", async () => {
  const p = pool(1);
  const marker = await Deno.makeTempFile();
  await Deno.remove(marker);
  try {
    await assertRejects(() => p.run({ kind: "crash" }), PoolTaskError, "crashed on purpose");
    assertEquals(await p.run({ kind: "flaky", marker, idempotent: true }), "ok after retry");
    const s = p.snapshot();
    assertEquals([s.restarts, s.retries], [2, 1]);
  } finally {
    p.close();
    await Deno.remove(marker).catch(() => {});
  }
});

Deno.test("a task over its deadline is failed and its worker replaced", async () => {
  const p = pool(1, 4, 300);
  try {
    const err = await assertRejects(() => p.run({ kind: "spin", ms: 5_000 }), PoolTaskError);
    assertEquals((err as PoolTaskError).reason, "timeout");
    assertEquals(await p.run({ kind: "sleep", ms: 1 }), "slept");
    const s = p.snapshot();
    assertEquals([s.timeouts, s.restarts], [1, 1]);
  } finally {
    p.close();
  }
});

Deno.test("close fails queued and running tasks and ends every worker", async () => {
  const p = pool(1, 4);
  const running = p.run({ kind: "sleep", ms: 60_000 });
  const queued = p.run({ kind: "sleep", ms: 1 });
  p.close();
  await assertRejects(() => running, PoolTaskError, "closed");
  await assertRejects(() => queued, PoolTaskError, "closed");
  await assertRejects(() => p.run({ kind: "sleep", ms: 1 }), PoolTaskError, "closed");
  assertEquals(p.snapshot().workers, 0);
});

Deno.test("workers start with the first task and end after idleMs without work", async () => {
  const p = createWorkerPool({
    size: 2,
    queueSize: 4,
    taskTimeoutMs: 20_000,
    entry: ENTRY,
    idleMs: 200,
  });
  try {
    assertEquals(p.snapshot().workers, 0, "no worker before any work");
    const buf = new Uint8Array([5, 6]).buffer;
    const out = await p.run<{ data: ArrayBuffer }>({ kind: "echo", data: buf }, [buf]);
    assertEquals([...new Uint8Array(out.data)], [5, 6], "the first task is served by a new worker");
    assertEquals(p.snapshot().workers, 1, "one task started one worker");
    const deadline = Date.now() + 15_000;
    while (p.snapshot().workers > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assertEquals(p.snapshot().workers, 0, "the idle worker was ended");
    assertEquals(await p.run({ kind: "sleep", ms: 1 }), "slept", "a new one starts for new work");
    assertEquals(p.snapshot().restarts, 0, "ending an idle worker is not a restart");
  } finally {
    p.close();
  }
});
