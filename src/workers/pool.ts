/**
 * A pool of up to `size` module Web Workers with a bounded FIFO queue.
 *
 * - Workers start when work comes, not with the pool, and end after `idleMs` without work:
 *   an idle proxy starts no worker isolate (each costs 15–25 MiB of RSS), and a busy one
 *   keeps what its load needs.
 * - One task per worker at a time; tasks wait in the queue (at most `queueSize`;
 *   beyond that {@linkcode WorkerPool.run} rejects at once with {@linkcode PoolQueueFullError}
 *   so callers can fall back instead of piling up memory).
 * - Each task has a deadline (`taskTimeoutMs`). A worker that misses it, or that crashes
 *   (an uncaught error, a failed module load), is terminated and replaced; its task fails
 *   with a {@linkcode PoolTaskError} saying why, or is retried once on the new worker
 *   when the task is marked `idempotent`.
 * - Buffers are transferred, not copied, in both directions, except for idempotent tasks:
 *   a retry needs the input again, so their input is structured-cloned (a copy) instead.
 *
 * @module
 */
import { counter, gauge, type MetricFamily, type StatsSource } from "../stats/metric.ts";
import type { PoolTask, ResultMessage, TaskMessage } from "./protocol.ts";

/** Anything with a `warn` method (a LogTape logger fits). */
export interface PoolLogger {
  warn(message: string): void;
}

export interface WorkerPoolOptions {
  /** Number of workers (at least 1). More than the CPUs is allowed, with a warning. */
  size: number;
  /** Tasks that may wait for a free worker; more are refused. */
  queueSize: number;
  /** Deadline for one task from the moment a worker starts it. */
  taskTimeoutMs: number;
  /** Module URL of the worker entry (one of `WORKER_ENTRIES`, or a test's own). */
  entry: URL;
  /** A worker without work for this long is ended. Default {@linkcode WORKER_IDLE_MS}. */
  idleMs?: number;
  logger?: PoolLogger;
}

/** How long a worker may wait for work before it is ended (default of `idleMs`). */
export const WORKER_IDLE_MS = 30_000;

export interface PoolSnapshot {
  /** Workers running now (started on demand, ended when idle). */
  workers: number;
  busy: number;
  queued: number;
  completed: number;
  failed: number;
  restarts: number;
  timeouts: number;
  retries: number;
  rejected: number;
}

/** The queue was full; nothing was started. */
export class PoolQueueFullError extends Error {
  constructor(queueSize: number) {
    super(`worker pool queue is full (${queueSize} tasks waiting)`);
    this.name = "PoolQueueFullError";
  }
}

/** The task failed: its handler threw, its worker crashed or timed out, or the pool closed. */
export class PoolTaskError extends Error {
  constructor(message: string, readonly reason: "error" | "crash" | "timeout" | "closed") {
    super(message);
    this.name = "PoolTaskError";
  }
}

export interface WorkerPool extends StatsSource {
  /** Runs a task on a worker; `transfer` lists buffers inside `task` to move, not copy. */
  run<T>(task: PoolTask, transfer?: Transferable[]): Promise<T>;
  /** Terminates worker `index` as a crash would (admin/test hook): its task fails or retries. */
  kill(index: number): boolean;
  /** Index of a worker currently running a task, if any. */
  busyWorker(): number | undefined;
  snapshot(): PoolSnapshot;
  metrics(): MetricFamily[];
  /** Fails queued and running tasks and terminates every worker. */
  close(): void;
}

interface Job {
  readonly id: number;
  readonly task: PoolTask;
  readonly transfer: Transferable[];
  resolve(value: unknown): void;
  reject(err: Error): void;
  attempts: number;
}

interface Slot {
  /** None until work comes, and again once ended for idleness. */
  worker?: Worker;
  job?: Job;
  timer?: ReturnType<typeof setTimeout>;
  idleTimer?: ReturnType<typeof setTimeout>;
}

export function createWorkerPool(options: WorkerPoolOptions): WorkerPool {
  const size = Math.max(1, Math.floor(options.size));
  const cpus = navigator.hardwareConcurrency || 1;
  if (size > cpus) {
    options.logger?.warn(
      `THREAD_POOL_SIZE=${size} is more than the ${cpus} CPUs here; workers will compete for them`,
    );
  }
  const queue: Job[] = [];
  const slots: Slot[] = [];
  let nextId = 1;
  let closed = false;
  const counts = {
    completed: 0,
    failed: 0,
    restarts: 0,
    timeouts: 0,
    retries: 0,
    rejected: 0,
  };

  const idleMs = options.idleMs ?? WORKER_IDLE_MS;

  function spawn(s: Slot): Worker {
    const worker = new Worker(options.entry, { type: "module" });
    s.worker = worker;
    worker.onmessage = (e: MessageEvent<ResultMessage>) => {
      if (s.worker !== worker) return;
      const job = s.job;
      if (!job || job.id !== e.data.id) return;
      finish(s);
      if (e.data.ok) {
        counts.completed++;
        job.resolve(e.data.value);
      } else {
        counts.failed++;
        job.reject(new PoolTaskError(`worker task "${job.task.kind}": ${e.data.error}`, "error"));
      }
      pump();
    };
    worker.onerror = (e: ErrorEvent) => {
      // An uncaught error ends the worker's usefulness: replace it rather than trust its state.
      e.preventDefault();
      if (s.worker !== worker) return;
      replace(s, "crash", `worker crashed: ${e.message || "uncaught error"}`);
    };
    worker.onmessageerror = () => {
      if (s.worker !== worker) return;
      replace(s, "crash", "worker sent a message that could not be deserialised");
    };
    return worker;
  }
  function finish(slot: Slot): void {
    if (slot.timer !== undefined) clearTimeout(slot.timer);
    slot.timer = undefined;
    slot.job = undefined;
  }
  /** Terminates the slot's worker; the slot starts a new one when work comes. */
  function end(slot: Slot): void {
    if (slot.idleTimer !== undefined) clearTimeout(slot.idleTimer);
    slot.idleTimer = undefined;
    slot.worker?.terminate();
    slot.worker = undefined;
  }
  /** Ends a worker that crashed or overran, and fails or retries its task (on a fresh one). */
  function replace(slot: Slot, reason: "crash" | "timeout", message: string): void {
    const job = slot.job;
    finish(slot);
    end(slot);
    if (closed) return;
    counts.restarts++;
    if (job) {
      if (job.task.idempotent && job.attempts < 2) {
        counts.retries++;
        queue.unshift(job);
      } else {
        counts.failed++;
        job.reject(new PoolTaskError(`worker task "${job.task.kind}": ${message}`, reason));
      }
    }
    pump();
  }
  function start(slot: Slot, job: Job): void {
    if (slot.idleTimer !== undefined) clearTimeout(slot.idleTimer);
    slot.idleTimer = undefined;
    const worker = slot.worker ?? spawn(slot);
    slot.job = job;
    job.attempts++;
    const message: TaskMessage = { id: job.id, task: job.task };
    // Idempotent tasks keep their input for a retry, so it is copied, not transferred.
    const transfer = job.task.idempotent ? [] : job.transfer;
    try {
      worker.postMessage(message, transfer);
    } catch (err) {
      finish(slot);
      counts.failed++;
      job.reject(
        new PoolTaskError(`worker task "${job.task.kind}" could not be sent: ${err}`, "error"),
      );
      return;
    }
    slot.timer = setTimeout(() => {
      counts.timeouts++;
      replace(slot, "timeout", `timed out after ${options.taskTimeoutMs} ms`);
    }, options.taskTimeoutMs);
  }

  function pump(): void {
    for (const slot of slots) {
      if (slot.job) continue;
      const job = queue.shift();
      if (job) start(slot, job);
      else if (slot.worker && slot.idleTimer === undefined) {
        const timer = setTimeout(() => end(slot), idleMs);
        // An idle worker never keeps the process alive.
        Deno.unrefTimer(timer);
        slot.idleTimer = timer;
      }
    }
  }
  for (let i = 0; i < size; i++) slots.push({});
  function snapshot(): PoolSnapshot {
    return {
      workers: slots.filter((s) => s.worker).length,
      busy: slots.filter((s) => s.job).length,
      queued: queue.length,
      ...counts,
    };
  }

  return {
    name: "workers",
    run<T>(task: PoolTask, transfer: Transferable[] = []): Promise<T> {
      if (closed) return Promise.reject(new PoolTaskError("worker pool is closed", "closed"));
      // A running worker first; else a slot that starts one.
      const idle = slots.find((s) => !s.job && s.worker) ?? slots.find((s) => !s.job);
      if (!idle && queue.length >= options.queueSize) {
        counts.rejected++;
        return Promise.reject(new PoolQueueFullError(options.queueSize));
      }
      return new Promise<T>((resolve, reject) => {
        const job: Job = {
          id: nextId++,
          task,
          transfer,
          resolve: resolve as (v: unknown) => void,
          reject,
          attempts: 0,
        };
        if (idle) start(idle, job);
        else queue.push(job);
      });
    },
    kill(index: number): boolean {
      const slot = slots[index];
      if (!slot?.worker || closed) return false;
      replace(slot, "crash", "worker was terminated");
      return true;
    },
    busyWorker(): number | undefined {
      const i = slots.findIndex((s) => s.job);
      return i < 0 ? undefined : i;
    },
    snapshot,
    metrics(): MetricFamily[] {
      const s = snapshot();
      return [
        gauge("proxy_worker_pool_workers", "Web Workers in the pool.", s.workers),
        gauge("proxy_worker_pool_busy", "Workers running a task.", s.busy),
        gauge("proxy_worker_pool_queued", "Tasks waiting for a worker.", s.queued),
        counter("proxy_worker_tasks_completed_total", "Tasks that succeeded.", s.completed),
        counter("proxy_worker_tasks_failed_total", "Tasks that failed.", s.failed),
        counter(
          "proxy_worker_restarts_total",
          "Workers replaced after a crash or timeout.",
          s.restarts,
        ),
        counter("proxy_worker_timeouts_total", "Tasks that overran their deadline.", s.timeouts),
        counter("proxy_worker_tasks_rejected_total", "Tasks refused: queue full.", s.rejected),
      ];
    },
    close(): void {
      if (closed) return;
      closed = true;
      for (const job of queue.splice(0)) {
        job.reject(new PoolTaskError("worker pool is closed", "closed"));
      }
      for (const slot of slots) {
        const job = slot.job;
        finish(slot);
        end(slot);
        job?.reject(new PoolTaskError("worker pool is closed", "closed"));
      }
    },
  };
}
