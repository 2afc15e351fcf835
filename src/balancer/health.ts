/**
 * Active health checks: every `intervalMs` each backend gets `GET path`;
 * a 2xx or 3xx answer within `timeoutMs` passes. `fall` failures in a row
 * mark an up backend down; `rise` passes in a row bring a down one back.
 * Checks of one backend never overlap (the next is scheduled when the last
 * ends), and a dedicated HTTP client keeps their connections apart from the
 * proxy's own pool.
 *
 * @module
 */

import type { Backend } from "./backend.ts";

export interface HealthCheckOptions {
  /** Path probed on each backend; empty turns active checks off. */
  path: string;
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive passing checks that bring a down backend back. */
  rise: number;
  /** Consecutive failing checks that mark an up backend down. */
  fall: number;
  /** Extra CA certificates (PEM) trusted for https backends (UPSTREAM_CA_FILE). */
  caCerts?: string[];
}

export type HealthTransition = (backend: Backend, healthy: boolean) => void;

export class HealthChecker {
  readonly #opts: HealthCheckOptions;
  readonly #onChange: HealthTransition;
  readonly #client: Deno.HttpClient;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #running = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #closed = false;

  constructor(backends: readonly Backend[], opts: HealthCheckOptions, onChange: HealthTransition) {
    this.#opts = opts;
    this.#onChange = onChange;
    this.#client = Deno.createHttpClient({ caCerts: opts.caCerts });
    // The first round runs right away so a backend that is down at start-up
    // is found within `fall` checks rather than after a full interval.
    for (const b of backends) this.#schedule(b, 0);
  }

  #schedule(b: Backend, delay: number): void {
    if (this.#closed) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      const run = this.check(b).finally(() => {
        this.#running.delete(run);
        this.#schedule(b, this.#opts.intervalMs);
      });
      this.#running.add(run);
    }, delay);
    this.#timers.add(timer);
  }

  /** Runs one check of `b` now and applies the rise/fall rules. */
  async check(b: Backend): Promise<void> {
    const started = performance.now();
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#opts.timeoutMs)]);
    let status: number | undefined;
    let error: string | undefined;
    try {
      const res = await fetch(new URL(this.#opts.path, b.url), {
        headers: { "accept-encoding": "identity", "user-agent": "proxy-health-check" },
        redirect: "manual",
        signal,
        client: this.#client,
      });
      status = res.status;
      // Read the body to the end so the connection can be reused (bounded by the timeout).
      await res.arrayBuffer();
      if (status >= 400) error = `status ${status}`;
    } catch (err) {
      error = signal.aborted ? `timeout after ${this.#opts.timeoutMs} ms` : errorText(err);
    }
    if (this.#closed) return;
    const ok = error === undefined;
    b.lastCheck = { at: Date.now(), ok, status, error, durationMs: performance.now() - started };
    if (ok) {
      b.checkFailures = 0;
      b.checkSuccesses++;
      if (!b.healthy && b.checkSuccesses >= this.#opts.rise) {
        b.healthy = true;
        this.#onChange(b, true);
      }
    } else {
      b.checkSuccesses = 0;
      b.checkFailures++;
      if (b.healthy && b.checkFailures >= this.#opts.fall) {
        b.healthy = false;
        this.#onChange(b, false);
      }
    }
  }

  /** Stops scheduling, aborts running checks and waits for them to settle. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#abort.abort();
    await Promise.allSettled([...this.#running]);
    this.#client.close();
  }
}

function errorText(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.length > 200 ? msg.slice(0, 200) + "…" : msg;
}
