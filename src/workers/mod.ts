/**
 * A generic Web Worker pool and the worker entry points the app starts.
 *
 * ## Where work runs: the inline threshold
 *
 * A task round trip to a worker (post, structured clone or transfer, wake-up, reply) costs
 * about 60–120 µs on this 2-core machine (measured with `bench/scenarios/compress.ts`:
 * 2,000 sequential `echo` tasks carrying a transferred 1 KiB buffer, median ≈ 75 µs, p99
 * ≈ 0.3 ms under load). Compressing JSON inline costs roughly 8–15 ns per byte (gzip
 * level 6 and brotli quality 5; zstd level 3 about a third of that), so a 16 KiB body is
 * done in ~0.15–0.25 ms — about two round trips — and its latency would *grow* in the pool.
 * At 64 KiB a body costs ~0.6–1 ms of main-thread time, enough to add visible queueing
 * delay to every other request on the event loop, while the round trip is < 15 % of it.
 * So {@linkcode INLINE_MAX_BYTES} = 64 KiB: at or below it work stays on the main thread,
 * above it it goes to the pool. Filter verdicts (a hash lookup per host label) never leave
 * the main thread; filter lists above the same size are parsed in the pool.
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
  type WorkerPool,
  type WorkerPoolOptions,
} from "./pool.ts";
export type { HandlerResult, PoolTask, TaskHandler } from "./protocol.ts";
export { serveTasks } from "./serve.ts";

/** The worker that compresses bodies and parses filter lists. */
export const TASK_WORKER: URL = new URL("./task_worker.ts", import.meta.url);

/** Every worker entry module, for `deno compile --include`. */
export const WORKER_ENTRIES: readonly URL[] = [TASK_WORKER];

/** Bytes at or below which compression and list parsing stay on the main thread (see above). */
export const INLINE_MAX_BYTES = 64 * 1024;
