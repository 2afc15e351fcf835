/**
 * Admission control: the event-loop counterpart of a threaded server's
 * worker pool (MAX_CONCURRENCY ≈ THREAD_POOL_SIZE) and its accept queue
 * (REQUEST_QUEUE_SIZE). At most `maxConcurrency` requests are processed at
 * once; up to `queueSize` more wait in FIFO order for at most
 * `queueTimeoutMs`; anything beyond is turned away with 503 and Retry-After
 * right away, so overload sheds load instead of growing latency without
 * bound. A slot is held until the response body has been sent, not just its
 * headers.
 *
 * @module
 */

import { Histogram } from "../stats/histogram.ts";
import { counter, gauge, type MetricFamily } from "../stats/metric.ts";
import { Fifo, type QueueNode } from "./queue.ts";

export interface AdmissionOptions {
  /** Requests processed at once (MAX_CONCURRENCY). */
  maxConcurrency: number;
  /** Requests that may wait for a slot beyond that (REQUEST_QUEUE_SIZE; 0: none wait). */
  queueSize: number;
  /** Longest wait in the queue before 503 (QUEUE_TIMEOUT). */
  queueTimeoutMs: number;
  /**
   * Counts shared with the other serving threads (SERVE_THREADS > 1), so MAX_CONCURRENCY and
   * REQUEST_QUEUE_SIZE hold for the process: each thread queues its own waiters, and a
   * thread that frees a slot while others wait wakes them through `freed`.
   */
  shared?: SharedCounts;
}

/** Int32 cells in a SharedArrayBuffer and which of them holds what. */
export interface SharedCounts {
  readonly cells: Int32Array;
  /** Slots held over every thread. */
  readonly inFlight: number;
  /** Requests waiting over every thread. */
  readonly queued: number;
  /** Bumped and notified when a slot frees while requests wait. */
  readonly freed: number;
}

/** How long a thread with waiters sleeps between checks for a slot freed elsewhere. */
const WAKE_CHECK_MS = 100;

export type RejectReason = "queue-full" | "queue-timeout" | "closed" | "aborted";

/** Thrown by `acquire()` when a request is not admitted; carries the answer to give. */
export class AdmissionRejected extends Error {
  readonly status = 503;
  constructor(readonly reason: RejectReason, readonly retryAfter: number) {
    super(
      reason === "queue-full"
        ? "server busy: request queue is full"
        : reason === "queue-timeout"
        ? "server busy: timed out waiting in the request queue"
        : reason === "closed"
        ? "server is shutting down"
        : "client went away while queued",
    );
    this.name = "AdmissionRejected";
  }
}

export interface AdmissionSnapshot {
  in_flight: number;
  max_concurrency: number;
  queued: number;
  queue_size: number;
  queue_timeout_ms: number;
  /** Requests let in (at once or after waiting). */
  admitted: number;
  /** Of those, requests that had to wait in the queue. */
  waited: number;
  /** Turned away because the queue was full. */
  rejected: number;
  /** Turned away after waiting `queue_timeout_ms`. */
  timed_out: number;
  /** Left the queue because their client disconnected. */
  cancelled: number;
  /** Time spent waiting for a slot, over all admitted requests. */
  wait_ms: { p50: number; p99: number; max: number };
}

export interface Admission {
  /** Section "admission" of /proxy-stats. */
  readonly name: string;
  /** A slot right away without queueing (release it like `acquire`'s), or undefined. */
  tryGrant(): (() => void) | undefined;
  /**
   * Waits for a slot; resolves to its release function (call it once when
   * the response is done; extra calls are ignored). Rejects with
   * {@linkcode AdmissionRejected} when the queue is full, the wait times out,
   * `signal` aborts, or the admission is closed.
   */
  acquire(signal?: AbortSignal): Promise<() => void>;
  snapshot(): AdmissionSnapshot;
  metrics(): MetricFamily[];
  /** Turns away everyone still queued and any later request; admitted ones finish. */
  close(): void;
}

interface Waiter {
  admit(): void;
  reject(err: AdmissionRejected): void;
}

/** Smoothing of the average slot hold time behind the Retry-After estimate. */
const EWMA_WEIGHT = 0.1;

export function createAdmission(options: AdmissionOptions): Admission {
  const max = Math.max(1, Math.floor(options.maxConcurrency));
  const queueSize = Math.max(0, Math.floor(options.queueSize));
  const queueTimeoutMs = Math.max(0, options.queueTimeoutMs);
  const queue = new Fifo<Waiter>();
  const waits = new Histogram();
  let inFlight = 0;
  let admitted = 0;
  let waited = 0;
  let rejected = 0;
  let timedOut = 0;
  let cancelled = 0;
  let closed = false;
  /** Average ms a slot is held, to estimate when the queue drains. */
  let avgHoldMs = 0;
  const shared = options.shared;

  /** Claims a slot in the process-wide count (this thread's without `shared`). */
  const take = (): boolean => {
    if (shared === undefined) return inFlight < max;
    if (Atomics.add(shared.cells, shared.inFlight, 1) < max) return true;
    Atomics.sub(shared.cells, shared.inFlight, 1);
    return false;
  };
  /** Requests waiting in the process (this thread's queue without `shared`). */
  const waiting = () =>
    shared === undefined ? queue.size : Atomics.load(shared.cells, shared.queued);
  const inFlightNow = () =>
    shared === undefined ? inFlight : Atomics.load(shared.cells, shared.inFlight);

  /** With waiters here, takes slots other threads free until none wait (shared only). */
  let watching = false;
  const watch = async () => {
    if (shared === undefined || watching) return;
    watching = true;
    try {
      while (queue.size > 0 && !closed) {
        const seen = Atomics.load(shared.cells, shared.freed);
        while (queue.size > 0 && take()) queue.shift()!.admit();
        if (queue.size === 0) break;
        const w = Atomics.waitAsync(shared.cells, shared.freed, seen, WAKE_CHECK_MS);
        if (w.async) await w.value;
      }
    } finally {
      watching = false;
    }
  };

  /** Seconds until a queued request would likely get a slot, 1–60. */
  const retryAfter = () => {
    const drainMs = avgHoldMs * (queue.size + 1) / max;
    return Math.max(1, Math.min(60, Math.ceil(drainMs / 1000)));
  };

  const grant = (): () => void => {
    inFlight++;
    admitted++;
    const since = performance.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      inFlight--;
      avgHoldMs += (performance.now() - since - avgHoldMs) * EWMA_WEIGHT;
      if (shared === undefined) {
        // Hand the freed slot straight to the oldest waiter (FIFO).
        while (inFlight < max && queue.size > 0) queue.shift()!.admit();
        return;
      }
      // The slot stays claimed for this thread's oldest waiter, or goes back to the process.
      if (queue.size > 0) {
        queue.shift()!.admit();
        return;
      }
      Atomics.sub(shared.cells, shared.inFlight, 1);
      if (Atomics.load(shared.cells, shared.queued) > 0) {
        Atomics.add(shared.cells, shared.freed, 1);
        Atomics.notify(shared.cells, shared.freed);
      }
    };
  };

  /** A slot right away, or undefined when the caller would have to queue. */
  const tryGrant = (): (() => void) | undefined => {
    if (closed || queue.size > 0 || (shared !== undefined && waiting() > 0) || !take()) {
      return undefined;
    }
    waits.record(0);
    return grant();
  };

  const acquire = (signal?: AbortSignal): Promise<() => void> => {
    if (closed) return Promise.reject(new AdmissionRejected("closed", 1));
    const now = tryGrant();
    if (now) return Promise.resolve(now);
    if (waiting() >= queueSize) {
      rejected++;
      return Promise.reject(new AdmissionRejected("queue-full", retryAfter()));
    }
    if (signal?.aborted) {
      cancelled++;
      return Promise.reject(new AdmissionRejected("aborted", 1));
    }
    return new Promise((resolve, reject) => {
      const enqueued = performance.now();
      let node: QueueNode<Waiter> | undefined = undefined;
      if (shared !== undefined) Atomics.add(shared.cells, shared.queued, 1);
      const cleanup = () => {
        if (shared !== undefined) Atomics.sub(shared.cells, shared.queued, 1);
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const leave = (reason: RejectReason) => {
        queue.remove(node!);
        cleanup();
        reject(new AdmissionRejected(reason, retryAfter()));
      };
      const onAbort = () => {
        cancelled++;
        leave("aborted");
      };
      const timer = setTimeout(() => {
        timedOut++;
        leave("queue-timeout");
      }, queueTimeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      node = queue.push({
        admit() {
          cleanup();
          waited++;
          waits.record(performance.now() - enqueued);
          resolve(grant());
        },
        reject(err) {
          cleanup();
          reject(err);
        },
      });
      // A slot another thread freed between the try above and now, or later.
      watch();
    });
  };

  return {
    name: "admission",
    tryGrant,
    acquire,
    snapshot(): AdmissionSnapshot {
      const r = (x: number) => Math.round(x * 1000) / 1000;
      return {
        in_flight: inFlightNow(),
        max_concurrency: max,
        queued: waiting(),
        queue_size: queueSize,
        queue_timeout_ms: queueTimeoutMs,
        admitted,
        waited,
        rejected,
        timed_out: timedOut,
        cancelled,
        wait_ms: { p50: r(waits.percentile(50)), p99: r(waits.percentile(99)), max: r(waits.max) },
      };
    },
    metrics(): MetricFamily[] {
      return [
        gauge("proxy_admission_in_flight", "Requests holding a processing slot.", inFlightNow()),
        gauge("proxy_admission_max_concurrency", "Processing slots (MAX_CONCURRENCY).", max),
        gauge("proxy_admission_queued", "Requests waiting for a slot.", waiting()),
        gauge("proxy_admission_queue_size", "Queue capacity (REQUEST_QUEUE_SIZE).", queueSize),
        counter("proxy_admission_admitted_total", "Requests let in.", admitted),
        counter("proxy_admission_waited_total", "Requests let in after waiting.", waited),
        {
          name: "proxy_admission_rejected_total",
          help: "Requests turned away with 503, by reason.",
          type: "counter",
          samples: [
            { labels: { reason: "queue_full" }, value: rejected },
            { labels: { reason: "queue_timeout" }, value: timedOut },
            { labels: { reason: "client_gone" }, value: cancelled },
          ],
        },
        {
          name: "proxy_admission_wait_seconds",
          help: "Time admitted requests waited for a slot.",
          type: "summary",
          samples: [
            ...[0.5, 0.99].map((q) => ({
              labels: { quantile: String(q) },
              value: waits.percentile(q * 100) / 1000,
            })),
            { suffix: "_sum", value: waits.sum / 1000 },
            { suffix: "_count", value: waits.count },
          ],
        },
      ];
    },
    close() {
      closed = true;
      while (queue.size > 0) queue.shift()!.reject(new AdmissionRejected("closed", 1));
    },
  };
}
