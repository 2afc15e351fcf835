/**
 * Compression as the configuration asks for it, with the worker pool that
 * takes bodies above INLINE_MAX_BYTES (and the filter's big lists).
 *
 * @module
 */
import type { Config } from "../config/mod.ts";
import { logger } from "../log/mod.ts";
import { createWorkerPool, TASK_WORKER, type WorkerPool } from "../workers/mod.ts";
import { type Compression, createCompression } from "./compression.ts";

export function workerPoolFromConfig(config: Config): WorkerPool {
  return createWorkerPool({
    size: config.threadPoolSize,
    queueSize: 1024,
    taskTimeoutMs: 30_000,
    entry: TASK_WORKER,
    logger: logger("workers"),
  });
}

export function compressionFromConfig(config: Config, pool: WorkerPool): Compression {
  return createCompression({
    enabled: config.enableCompression,
    encodings: config.compressionEncodings,
    minSize: config.compressionMinSize,
    pool,
  });
}
