/**
 * compress: what the worker pool buys.
 *
 * 1. The bare round trip to a worker (an `echo` task carrying a transferred 1 KiB buffer,
 *    sequential), and the inline cost of compressing JSON of several sizes: the basis of
 *    INLINE_MAX_BYTES in src/workers/mod.ts.
 * 2. Compression throughput (MB/s) per encoding on 1 MiB JSON: inline on the main thread, and
 *    through the pool with 1 and 2 workers (2 tasks in flight per worker).
 * 3. p99 of small requests (2 KiB JSON, compressed inline) while clients keep fetching 1 MiB
 *    JSON compressed with gzip: pool on versus off (everything inline), in a server process
 *    (`compression.wrap(origin)` on Deno.serve; this file with `--serve`), measured by wrk.
 *
 * @module
 */
import http from "node:http";
import { parseArgs } from "node:util";
import { compressSync, createCompression, type Encoding } from "../../src/compress/mod.ts";
import { createWorkerPool, TASK_WORKER, type WorkerPool } from "../../src/workers/mod.ts";
import type { RequestContext } from "../../src/context/mod.ts";
import { runWrk } from "../lib/wrk.ts";
import type { BenchContext, Scenario, ScenarioResult, TargetRow } from "../lib/types.ts";
import { freePort, waitForPort } from "../../tests/helpers/ports.ts";

const ENCODINGS: Encoding[] = ["br", "zstd", "gzip", "deflate"];

/** Deterministic JSON of exactly `size` bytes. */
export function jsonOf(size: number): Uint8Array<ArrayBuffer> {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const words = ["alpha", "beta", "gamma", "delta", "cache", "proxy", "worker", "filter"];
  const parts: string[] = ["["];
  let n = 1;
  while (n < size) {
    const p = `{"id":${Math.floor(rnd() * 1e6)},"name":"${words[Math.floor(rnd() * 8)]}",` +
      `"score":${rnd().toFixed(4)},"ok":${rnd() > 0.5}},`;
    parts.push(p);
    n += p.length;
  }
  return new TextEncoder().encode(parts.join("").slice(0, size)) as Uint8Array<ArrayBuffer>;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function roundTrip(pool: WorkerPool, count: number): Promise<{ p50: number; p99: number }> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const buf = new ArrayBuffer(1024);
    const t = performance.now();
    await pool.run({ kind: "echo", data: buf }, [buf]);
    times.push((performance.now() - t) * 1000);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99) };
}

function inlineMicros(encoding: Encoding, data: Uint8Array, budgetMs: number): number {
  const end = performance.now() + budgetMs;
  let n = 0;
  const t = performance.now();
  while (performance.now() < end || n < 3) {
    compressSync(encoding, data);
    n++;
  }
  return ((performance.now() - t) * 1000) / n;
}

async function poolMBps(
  size: number,
  encoding: Encoding,
  data: Uint8Array,
  seconds: number,
): Promise<number> {
  const pool = createWorkerPool({ size, queueSize: 64, taskTimeoutMs: 60_000, entry: TASK_WORKER });
  try {
    // Warm up: load the worker modules.
    await Promise.all(
      Array.from({ length: size }, () => pool.run({ kind: "echo", data: new ArrayBuffer(1) })),
    );
    let bytes = 0;
    const end = performance.now() + seconds * 1000;
    const t = performance.now();
    const lane = async () => {
      while (performance.now() < end) {
        const copy = data.slice().buffer;
        await pool.run({ kind: "compress", encoding, data: copy }, [copy]);
        bytes += data.byteLength;
      }
    };
    await Promise.all(Array.from({ length: size * 2 }, lane));
    return bytes / 1e6 / ((performance.now() - t) / 1000);
  } finally {
    pool.close();
  }
}

/** Keeps `lanes` clients fetching `url` (gzip) until `signal` aborts; returns bytes fetched. */
function bigLoad(url: string, lanes: number, signal: AbortSignal): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: lanes });
  let bytes = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      http.get(url, { agent, headers: { "accept-encoding": "gzip" } }, (res) => {
        res.on("data", (c: Uint8Array) => bytes += c.byteLength);
        res.on("end", resolve);
        res.on("error", () => resolve());
      }).on("error", () => resolve());
    });
  const lane = async () => {
    while (!signal.aborted) await one();
  };
  return Promise.all(Array.from({ length: lanes }, lane)).then(() => {
    agent.destroy();
    return bytes;
  });
}

async function smallP99(ctx: BenchContext, pool: "on" | "off", withLoad: boolean) {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--serve", String(port), "--pool", pool],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  ctx.defer(async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
  });
  await waitForPort(port);
  const stop = new AbortController();
  const load = withLoad ? bigLoad(`http://127.0.0.1:${port}/big`, 2, stop.signal) : undefined;
  try {
    return await runWrk({
      url: `http://127.0.0.1:${port}/small`,
      durationSec: ctx.durationSec,
      connections: 10,
      threads: 1,
      headers: { "Accept-Encoding": "gzip" },
      tmpDir: ctx.tmpDir,
    });
  } finally {
    stop.abort();
    await load;
    child.kill("SIGTERM");
    await child.status;
  }
}

export const scenario: Scenario = {
  name: "compress",
  description:
    "worker round trip, compression MB/s per encoding (inline, pool 1/2) on 1 MiB JSON, small-request p99 under big compressions, pool on vs off",
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const notes: string[] = [];
    const rows: TargetRow[] = [];
    const seconds = Math.max(1, Math.min(ctx.durationSec, 3));

    ctx.log("worker round trip");
    const rtPool = createWorkerPool({
      size: 1,
      queueSize: 4,
      taskTimeoutMs: 10_000,
      entry: TASK_WORKER,
    });
    try {
      await roundTrip(rtPool, 200); // warm-up
      const rt = await roundTrip(rtPool, 2000);
      notes.push(
        `worker round trip (echo, 1 KiB transferred): p50 ${rt.p50.toFixed(0)} µs, p99 ${
          rt.p99.toFixed(0)
        } µs`,
      );
    } finally {
      rtPool.close();
    }

    ctx.log("inline cost by size");
    for (const size of [1024, 16 * 1024, 64 * 1024, 256 * 1024]) {
      const data = jsonOf(size);
      const cells = ENCODINGS.map((e) => `${e} ${inlineMicros(e, data, 150).toFixed(0)} µs`);
      notes.push(`inline compress ${size / 1024} KiB JSON: ${cells.join(", ")}`);
    }

    ctx.log("throughput on 1 MiB JSON");
    const mib = jsonOf(1024 * 1024);
    for (const e of ENCODINGS) {
      const inline = mib.byteLength / inlineMicros(e, mib, seconds * 1000);
      const p1 = await poolMBps(1, e, mib, seconds);
      const p2 = await poolMBps(2, e, mib, seconds);
      notes.push(
        `${e} 1 MiB JSON: inline ${inline.toFixed(0)} MB/s, pool×1 ${p1.toFixed(0)} MB/s, ` +
          `pool×2 ${p2.toFixed(0)} MB/s (ratio ${
            (compressSync(e, mib).byteLength / mib.byteLength).toFixed(3)
          })`,
      );
    }

    if (!ctx.tools.wrk) {
      rows.push({ target: "small p99", status: "skipped", note: "wrk not found" });
      return { rows, ratios: [], notes };
    }
    const cases: [string, "on" | "off", boolean][] = [
      ["small, idle", "on", false],
      ["small + big gzip, pool on", "on", true],
      ["small + big gzip, pool off", "off", true],
    ];
    const results: Record<string, number> = {};
    for (const [label, pool, load] of cases) {
      ctx.log(label);
      const r = await smallP99(ctx, pool, load);
      results[label] = r.p99Ms;
      rows.push({
        target: label,
        status: "ok",
        rps: r.rps,
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
        errors: r.socketErrors + r.non2xx,
        requests: r.requests,
      });
    }
    return {
      rows,
      ratios: [{
        label: "small p99: pool off / pool on",
        value: results["small + big gzip, pool off"] / results["small + big gzip, pool on"],
      }],
      notes,
    };
  },
};

/** `--serve PORT --pool on|off`: the server process of part 3. */
if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { serve: { type: "string" }, pool: { type: "string", default: "on" } },
  });
  const small = jsonOf(2048);
  const big = jsonOf(1024 * 1024);
  const pool = values.pool === "on"
    ? createWorkerPool({ size: 2, queueSize: 256, taskTimeoutMs: 60_000, entry: TASK_WORKER })
    : undefined;
  const compression = createCompression({
    enabled: true,
    encodings: ["gzip"],
    pool,
    inlineMaxBytes: pool ? undefined : Infinity,
  });
  const json = (body: Uint8Array<ArrayBuffer>) =>
    Promise.resolve(
      new Response(body.slice(), {
        headers: { "content-type": "application/json", "content-length": String(body.length) },
      }),
    );
  const handler = compression.wrap((req) =>
    new URL(req.url).pathname === "/big" ? json(big) : json(small)
  );
  const ctx = (): RequestContext => ({
    id: "b",
    kind: "http",
    conn: { remoteAddr: "127.0.0.1", remotePort: 0, form: "origin", secure: false },
    startedAt: 0,
    clientIp: "127.0.0.1",
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: Number(values.serve), onListen() {} },
    (req) => handler(req, ctx()),
  );
  Deno.addSignalListener("SIGTERM", async () => {
    await server.shutdown();
    pool?.close();
    Deno.exit(0);
  });
}
