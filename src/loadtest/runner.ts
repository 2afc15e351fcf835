/**
 * The load generator: `concurrency` keep-alive connections, each sending one
 * request at a time, until a request count or a duration is reached.
 *
 * With a target rate, request i is due at `start + i / rate` and its latency
 * counts from that intended time, not from when a connection got free to
 * send it (coordinated-omission correction, as in wrk2): a server that
 * stalls for a second shows a second of latency on every request that was
 * due meanwhile, instead of one slow sample.
 *
 * @module
 */
import { Histogram } from "../stats/histogram.ts";
import {
  encodeRequest,
  type ErrorKind,
  Http1Connection,
  RequestError,
  type Target,
} from "./http1.ts";
import { type LoadtestOptions, type ResolvedOptions, resolveOptions } from "./options.ts";
import process from "node:process";
import {
  LOADGEN_SATURATED_PERCENT,
  type LoadgenCpu,
  type Report,
  type TimelinePoint,
} from "./report.ts";

/** Live numbers while a run goes on. */
export interface Progress {
  elapsed_s: number;
  /** Responses so far. */
  requests: number;
  errors: number;
  /** Requests/s over the last progress interval. */
  current_rps: number;
  /** 0–1: share of requests or of the duration done. */
  fraction: number;
  /** Total requests (count-based) or 0. */
  total_requests: number;
  /** Total seconds (time-based) or 0. */
  duration_s: number;
}

export interface LoadtestHooks {
  onProgress?: (p: Progress) => void;
  /** Stops the run early; the report then covers what was done (aborted: true). */
  signal?: AbortSignal;
  /** How often onProgress is called (default 250 ms). */
  progressIntervalMs?: number;
}

interface Second {
  requests: number;
  errors: number;
  hist: Histogram;
}

/** Runs a load test and resolves with its report. Throws OptionsError for bad options. */
export async function loadtest(
  options: LoadtestOptions,
  hooks: LoadtestHooks = {},
): Promise<Report> {
  const o = resolveOptions(options);
  return await new Run(o, hooks).run();
}

class Run {
  readonly #o: ResolvedOptions;
  readonly #hooks: LoadtestHooks;
  readonly #target: Target;
  readonly #bytes: Uint8Array;
  readonly #noBody: boolean;
  readonly #hist = new Histogram();
  readonly #seconds: Second[] = [];
  readonly #status = new Map<number, number>();
  readonly #errors = new Map<ErrorKind, number>();
  readonly #errorSamples = new Map<ErrorKind, string>();
  readonly #open = new Set<Http1Connection>();
  #issued = 0;
  #responses = 0;
  #errorCount = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  #rateLimited = 0;
  #start = 0;
  #endAt = Infinity;
  #stopping = false;
  #aborted = false;

  constructor(o: ResolvedOptions, hooks: LoadtestHooks) {
    this.#o = o;
    this.#hooks = hooks;
    this.#target = { url: o.url, proxy: o.proxy, caCerts: o.caCerts };
    this.#bytes = encodeRequest(this.#target, o.method, o.headers, o.body);
    this.#noBody = o.method === "HEAD";
  }

  async run(): Promise<Report> {
    const o = this.#o;
    const startedAt = new Date();
    const cpuAtStart = process.cpuUsage();
    this.#start = performance.now();
    if (o.mode === "duration") this.#endAt = this.#start + o.duration * 1000;
    const stop = () => this.#stop();
    const onAbort = () => {
      this.#aborted = true;
      stop();
    };
    const signal = this.#hooks.signal;
    if (signal?.aborted) onAbort();
    signal?.addEventListener("abort", onAbort);
    const endTimer = o.mode === "duration" ? setTimeout(stop, o.duration * 1000) : undefined;
    const watchdog = setInterval(() => this.#checkTimeouts(), 100);
    let lastCount = 0;
    let lastAt = this.#start;
    const progressTimer = this.#hooks.onProgress
      ? setInterval(() => {
        const now = performance.now();
        const done = this.#responses + this.#errorCount;
        const rps = ((this.#responses - lastCount) * 1000) / Math.max(1, now - lastAt);
        lastCount = this.#responses;
        lastAt = now;
        this.#hooks.onProgress!(this.#progress(now, rps, done));
      }, this.#hooks.progressIntervalMs ?? 250)
      : undefined;
    try {
      const workers = [];
      for (let i = 0; i < o.concurrency; i++) workers.push(this.#worker());
      await Promise.all(workers);
    } finally {
      clearTimeout(endTimer);
      clearInterval(watchdog);
      clearInterval(progressTimer);
      signal?.removeEventListener("abort", onAbort);
      for (const c of this.#open) c.close();
    }
    const end = performance.now();
    const elapsed = o.mode === "duration" && !this.#aborted
      ? Math.min(end, this.#endAt) - this.#start
      : end - this.#start;
    if (this.#hooks.onProgress) {
      const average = (this.#responses * 1000) / Math.max(1, elapsed);
      this.#hooks.onProgress(this.#progress(end, average, this.#responses + this.#errorCount));
    }
    return this.#report(startedAt, elapsed / 1000, process.cpuUsage(cpuAtStart));
  }

  #progress(now: number, rps: number, done: number): Progress {
    const o = this.#o;
    const elapsed = (now - this.#start) / 1000;
    const fraction = o.mode === "requests" ? done / o.requests : Math.min(1, elapsed / o.duration);
    return {
      elapsed_s: Math.round(elapsed * 1000) / 1000,
      requests: this.#responses,
      errors: this.#errorCount,
      current_rps: Math.round(rps * 10) / 10,
      fraction: Math.min(1, fraction),
      total_requests: o.mode === "requests" ? o.requests : 0,
      duration_s: o.mode === "duration" ? o.duration : 0,
    };
  }

  #stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    // In-flight requests at the end of a timed run are cut off, as wrk does.
    for (const c of this.#open) c.close();
  }

  #checkTimeouts(): void {
    const now = performance.now();
    for (const c of this.#open) {
      if (now > c.deadline) {
        c.timedOut = true;
        c.close();
      }
    }
  }

  /** The intended send time of the next request, or -1 when the run is complete. */
  #take(): number {
    if (this.#stopping) return -1;
    const o = this.#o;
    if (o.mode === "requests" && this.#issued >= o.requests) return -1;
    const i = this.#issued++;
    if (o.rate === undefined) return 0;
    const due = this.#start + (i * 1000) / o.rate;
    if (due >= this.#endAt) {
      this.#issued--;
      return -1;
    }
    return due;
  }

  async #worker(): Promise<void> {
    const o = this.#o;
    const timeoutMs = o.timeout * 1000;
    let conn: Http1Connection | null = null;
    while (true) {
      const due = this.#take();
      if (due < 0) break;
      if (o.rate !== undefined) {
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
        if (this.#stopping) break;
      }
      let t0 = o.rate !== undefined ? due : 0;
      let current: Http1Connection | null = conn;
      try {
        if (!current) {
          const deadlineConnect = performance.now() + timeoutMs;
          current = await withTimeout(Http1Connection.open(this.#target), deadlineConnect);
          if (this.#stopping) {
            current.close();
            break;
          }
          this.#open.add(current);
        }
        const sent = performance.now();
        if (o.rate === undefined) t0 = sent;
        current.deadline = sent + timeoutMs;
        let res;
        try {
          res = await current.request(this.#bytes, this.#noBody);
        } catch (err) {
          // A server may close an idle keep-alive connection just as we reuse it:
          // retry once on a fresh connection when nothing of the response came back.
          if (
            !(err instanceof RequestError) || err.kind !== "read" || current.served === 0 ||
            !err.message.includes("before a response") || this.#stopping ||
            current.timedOut
          ) throw err;
          this.#drop(current);
          current = null;
          current = await Http1Connection.open(this.#target);
          this.#open.add(current);
          current.deadline = performance.now() + timeoutMs;
          res = await current.request(this.#bytes, this.#noBody);
        }
        current.deadline = Infinity;
        const now = performance.now();
        // A response after the end of a timed run is not counted (the stop timer may fire late).
        if (now > this.#endAt) break;
        this.#bytesOut += this.#bytes.length;
        this.#record(now, now - t0, res.status, res.bytes, res.rateLimited);
        if (res.keepAlive) {
          conn = current;
        } else {
          this.#drop(current);
          conn = null;
        }
      } catch (err) {
        const timedOut = current !== null && current.timedOut;
        if (current) this.#drop(current);
        conn = null;
        if (this.#stopping && !timedOut) break; // cut off by the end of the run
        const kind: ErrorKind = timedOut
          ? "timeout"
          : err instanceof RequestError
          ? err.kind
          : "read";
        this.#fail(performance.now(), kind, err instanceof Error ? err.message : String(err));
        // Do not spin on a refused connection: a short pause keeps a dead target from
        // eating the CPU in a timed run while still counting every attempt.
        if (kind === "connect" || kind === "proxy") await sleep(o.mode === "duration" ? 10 : 1);
      }
    }
    if (conn) this.#drop(conn);
  }

  #drop(c: Http1Connection): void {
    c.close();
    this.#open.delete(c);
  }

  #second(now: number): Second {
    const s = Math.max(0, Math.floor((now - this.#start) / 1000));
    while (this.#seconds.length <= s) {
      this.#seconds.push({ requests: 0, errors: 0, hist: new Histogram() });
    }
    return this.#seconds[s];
  }

  #record(now: number, latency: number, status: number, bytes: number, limited: boolean): void {
    this.#responses++;
    this.#hist.record(latency);
    const sec = this.#second(now);
    sec.requests++;
    sec.hist.record(latency);
    this.#status.set(status, (this.#status.get(status) ?? 0) + 1);
    this.#bytesIn += bytes;
    if (limited) this.#rateLimited++;
  }

  #fail(now: number, kind: ErrorKind, message: string): void {
    this.#errorCount++;
    this.#second(now).errors++;
    this.#errors.set(kind, (this.#errors.get(kind) ?? 0) + 1);
    if (!this.#errorSamples.has(kind)) this.#errorSamples.set(kind, message);
  }

  #report(startedAt: Date, seconds: number, cpu: { user: number; system: number }): Report {
    const o = this.#o;
    const secs = Math.max(seconds, 1e-6);
    const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
    const timeline: TimelinePoint[] = this.#seconds.map((s, i) => {
      const span = Math.min(1, Math.max(seconds - i, 0.001));
      return {
        second: i,
        requests: s.requests,
        errors: s.errors,
        rps: round(s.requests / span),
        p50_ms: round(s.hist.percentile(50), 3),
        p99_ms: round(s.hist.percentile(99), 3),
      };
    });
    const rps = this.#responses / secs;
    const warnings: string[] = [];
    const loadgenCpu = cpuShare(cpu, secs);
    // Under a second, start-up (JIT, connecting) weighs too much for the share to mean much.
    // A run asked for one second is long enough: its timer may end it a hair before the mark.
    const longEnough = o.mode === "duration" ? o.duration >= 1 : seconds >= 1;
    if (
      loadgenCpu.core_percent >= LOADGEN_SATURATED_PERCENT && !this.#aborted && longEnough
    ) {
      warnings.push(
        `the load generator itself used ${loadgenCpu.core_percent.toFixed(0)} % of its CPU core: ` +
          "the rate may be its limit rather than the target's (compare with wrk -t1, " +
          "or load from another machine)",
      );
    }
    const rateLimited = this.#rateLimited > 0;
    if (rateLimited) {
      warnings.push(
        `a rate limit shaped these results: ${this.#rateLimited} of ${this.#responses} responses ` +
          "were 429 or said RateLimit-Remaining: 0, so the rate shows the limit, not capacity",
      );
    }
    if (this.#errorCount > 0) {
      warnings.push(
        `${this.#errorCount} requests failed (${
          [...this.#errors].map(([k, v]) => `${k} ${v}`).join(", ")
        })`,
      );
    }
    if (o.rate !== undefined && !this.#aborted && rps < o.rate * 0.9 && this.#responses > 0) {
      warnings.push(
        `the target rate of ${o.rate}/s was not reached (${rps.toFixed(1)}/s): ` +
          "raise --concurrency or the target is saturated",
      );
    }
    return {
      url: redact(o.url),
      method: o.method,
      proxy: o.proxy ? redact(o.proxy).replace(/\/$/, "") : null,
      mode: o.mode,
      concurrency: o.concurrency,
      rate: o.rate ?? null,
      started_at: startedAt.toISOString(),
      duration_s: round(seconds, 3),
      aborted: this.#aborted,
      requests: this.#responses,
      errors_total: this.#errorCount,
      rps: round(rps),
      latency_ms: this.#hist.summary(),
      status: Object.fromEntries(
        [...this.#status].sort(([a], [b]) => a - b).map((
          [k, v],
        ) => [String(k), v]),
      ),
      errors: Object.fromEntries(this.#errors),
      error_samples: Object.fromEntries(this.#errorSamples),
      bytes_received: this.#bytesIn,
      bytes_sent: this.#bytesOut,
      throughput_bytes_per_s: Math.round(this.#bytesIn / secs),
      rate_limited: rateLimited,
      rate_limited_responses: this.#rateLimited,
      loadgen_cpu: loadgenCpu,
      warnings,
      timeline,
      latency_percentiles: PERCENTILES.map((p) => ({
        p,
        ms: round(p === 0 ? this.#hist.min : this.#hist.percentile(p), 3),
      })),
    };
  }
}

const PERCENTILES = [
  0,
  10,
  20,
  30,
  40,
  50,
  60,
  70,
  75,
  80,
  85,
  90,
  95,
  97.5,
  99,
  99.5,
  99.9,
  99.99,
  100,
];

/** A URL without its password, for reports (they are saved and shown). */
function redact(u: URL): string {
  const c = new URL(u.href);
  if (c.password) c.password = "***";
  return c.href;
}

/** Process CPU (µs, from process.cpuUsage) used over a run of `seconds`. */
function cpuShare(used: { user: number; system: number }, seconds: number): LoadgenCpu {
  const user = used.user / 1e6, system = used.system / 1e6;
  return {
    user_s: Math.round(user * 1000) / 1000,
    system_s: Math.round(system * 1000) / 1000,
    core_percent: Math.round(((user + system) / seconds) * 1000) / 10,
    threads: 1,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Rejects with a timeout error when `p` is not settled by `deadline` (performance.now() ms). */
async function withTimeout<T extends { close(): void }>(
  p: Promise<T>,
  deadline: number,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let late = false;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late = true;
      reject(new RequestError("timeout", "connect timed out"));
    }, Math.max(0, deadline - performance.now()));
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
    // A connection that arrives after the timeout is closed, not leaked.
    if (late) p.then((c) => c.close(), () => {});
  }
}
