/**
 * Issue 14 (lean): with several serving threads, thread 0 compiles the filter lists into
 * shared memory and the other threads take its tables (src/filter/share.ts). What users see
 * must not change: a list changed and reloaded — through whichever thread the reload request
 * reaches — blocks on every thread once the reload has answered, and unblocks likewise.
 * Every request is on a new connection, so the kernel spreads them over both threads.
 */
import assert from "node:assert/strict";
import { startTestBackend } from "./helpers/backend.ts";
import { ignoreUnless } from "./helpers/ignore.ts";
import { rawRequest, type RawResponse } from "./helpers/rawhttp.ts";
import { startProxy, type TestProxy } from "./helpers/proxy.ts";

const LINUX = Deno.build.os === "linux";
const WHY = "SO_REUSEPORT (serving threads) is Linux only";

async function until(what: string, ok: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `count` requests, each on a new connection, `parallel` at a time. */
async function spread(proxy: TestProxy, count: number, request: string, parallel = 8) {
  const out: RawResponse[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < count) {
      next++;
      out.push(await rawRequest(proxy.port, request, { timeoutMs: 20_000 }));
    }
  }));
  return out;
}

const RELOAD =
  "POST /proxy-reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

Deno.test({
  name:
    "threads: a list changed and reloaded through any thread blocks (and unblocks) on every thread",
  ignore: ignoreUnless("threads: shared filter tables", LINUX, WHY),
  async fn() {
    const origin = await startTestBackend("origin");
    const dir = await Deno.makeTempDir();
    const list = `${dir}/blocked.txt`;
    await Deno.writeTextFile(list, "blocked-first.example\n");
    const proxy = await startProxy({
      env: {
        SERVE_THREADS: "2",
        FORWARD_ALLOW_PRIVATE: "true",
        FILTER_LISTS: list,
        CACHE_BACKEND: "memory",
      },
    });
    const get = `GET ${origin.url}/health HTTP/1.1\r\nHost: ${
      new URL(origin.url).host
    }\r\nConnection: close\r\n\r\n`;
    const statuses = async () => new Set((await spread(proxy, 40, get)).map((r) => r.status));
    try {
      await until(
        "both threads listening",
        () => Promise.resolve(/2 threads/.test(proxy.output())),
      );
      assert.deepEqual(await statuses(), new Set([200]));

      // Blocked on every thread once the reload has answered, whichever thread took it.
      for (const round of [1, 2, 3]) {
        await Deno.writeTextFile(list, round % 2 === 1 ? "127.0.0.1\n" : "other.example\n");
        const reload = await rawRequest(proxy.port, RELOAD);
        assert.equal(reload.status, 200, reload.raw);
        const blocked = await spread(proxy, 40, get);
        if (round % 2 === 1) {
          assert.deepEqual(new Set(blocked.map((r) => r.status)), new Set([403]), `round ${round}`);
          for (const r of blocked) {
            assert.match(r.raw, /x-filter: blocked; category=custom; rule=127\.0\.0\.1/i);
          }
        } else {
          assert.deepEqual(new Set(blocked.map((r) => r.status)), new Set([200]), `round ${round}`);
        }
      }

      const stats = await proxy.stats();
      assert.equal(stats.serve_threads, 2);
      const per = stats.threads.map((t: { requests_total: number }) => t.requests_total);
      assert.ok(per.every((n: number) => n > 0), `both threads served: ${per}`);
      // The other thread took thread 0's tables every time rather than compiling its own.
      assert.doesNotMatch(proxy.output(), /no filter tables|filter tables not taken/);
    } finally {
      await proxy.stop();
      await origin.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
