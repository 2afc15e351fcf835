/**
 * A generic Web Worker pool and the worker entry points the app starts.
 *
 * ## Where work runs: the inline threshold
 *
 * Measured with `deno task bench --only compress` (bench/scenarios/compress.ts) on this
 * 2-core machine while other engineers' jobs kept the load average at 6–7:
 *
 * - a bare round trip to a worker (an `echo` task with a transferred 1 KiB buffer, 2,000
 *   sequential runs after warm-up): p50 ≈ 25 µs, p99 ≈ 230 µs;
 * - compressing JSON inline (node:zlib, one shot): 1 KiB ≈ 25–50 µs (gzip, brotli q4);
 *   16 KiB ≈ 0.2–0.35 ms; 32 KiB ≈ 0.6–0.7 ms; 64 KiB ≈ 1.1–1.8 ms (zstd about a third).
 *
 * Below ~16 KiB a body costs about as much as a few round trips plus the queueing in a
 * two-worker pool, so sending it away would only add latency. Above ~32 KiB each response
 * holds the event loop for more than half a millisecond, which every other request on the
 * loop pays as queueing delay, while the round trip is under 5 % of the work. So
 * {@linkcode INLINE_MAX_BYTES} = 32 KiB: at or below it work stays on the main thread, above
 * it it goes to the pool. The effect, same bench: with clients fetching 1 MiB gzip bodies
 * continuously, small requests had p99 ≈ 106 ms and 1,665 req/s with the pool against
 * p99 ≈ 272 ms and 72 req/s with everything inline. Filter verdicts (a hash lookup per host
 * label) never leave the main thread, and the lists are compiled there too, in chunks between
 * requests (src/filter/compile.ts says why not in a worker).
 *
 * ## Compiled binaries
 *
 * `deno compile` embeds worker modules only when they are named with `--include`;
 * {@linkcode WORKER_ENTRIES} lists them (statically analysable `new URL(…, import.meta.url)`
 * literals) so the compile script can pass one `--include` per entry, and the same URLs
 * resolve inside the binary's embedded file system at run time.
 *
 * @example
 * ```ts
 * const pool = createWorkerPool({ size: 2, queueSize: 256, taskTimeoutMs: 30_000, entry: TASK_WORKER });
 * const out = await pool.run<ArrayBuffer>({ kind: "compress", encoding: "gzip", data: buf }, [buf]);
 * pool.close();
 * ```
 *
 * @module
 */
export {
  createWorkerPool,
  type PoolLogger,
  PoolQueueFullError,
  type PoolSnapshot,
  PoolTaskError,
  WORKER_IDLE_MS,
  type WorkerPool,
  type WorkerPoolOptions,
} from "./pool.ts";
export type { HandlerResult, PoolTask, TaskHandler } from "./protocol.ts";
export { serveTasks } from "./serve.ts";

/** The worker that compresses bodies and checks bcrypt passwords. */
export const TASK_WORKER: URL = new URL("./task_worker.ts", import.meta.url);

/** Every worker entry module, for `deno compile --include`. */
export const WORKER_ENTRIES: readonly URL[] = [TASK_WORKER];

/** Bytes at or below which compression and list parsing stay on the main thread (see above). */
export const INLINE_MAX_BYTES = 32 * 1024;
