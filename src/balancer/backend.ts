/**
 * One backend's live state: active-health verdict, passive ejection with
 * back-off, and the counters reported in /proxy-stats and /metrics.
 *
 * @module
 */

import { Histogram } from "../stats/histogram.ts";

/** Longest passive ejection, however often a backend keeps failing. */
export const MAX_EJECTION_MS = 5 * 60_000;

export type BackendState = "up" | "down" | "ejected" | "drained";

export interface PassiveOptions {
  /** Consecutive failed requests that eject a backend (0 disables passive ejection). */
  maxFails: number;
  /** First ejection period; doubles on each repeated ejection up to 5 min; a success resets it. */
  failTimeoutMs: number;
  /** Count 502/503/504 responses from the backend as failures too (default false). */
  countServerErrors?: boolean;
}

/** Result of the last active health check. */
export interface HealthRecord {
  at: number;
  ok: boolean;
  status?: number;
  error?: string;
  durationMs: number;
}

export class Backend {
  readonly url: URL;
  /** scheme://host:port, the value reported as ctx.backend and in labels. */
  readonly origin: string;
  readonly weight: number;
  readonly index: number;

  // Active health checks (a backend starts up: optimistic).
  healthy = true;
  checkSuccesses = 0;
  checkFailures = 0;
  lastCheck?: HealthRecord;

  // Passive ejection.
  consecutiveFailures = 0;
  /** Ejections in a row without a success in between; drives the back-off. */
  ejections = 0;
  /** Epoch ms until which the backend gets no traffic (0: not ejected). */
  ejectedUntil = 0;
  ejectionsTotal = 0;

  // Counters.
  requests = 0;
  errors = 0;
  inFlight = 0;
  readonly latency = new Histogram();

  /** Taken out by the operator (admin API): no new requests; those in flight finish. */
  drained = false;

  /** Smooth weighted round robin's running weight. */
  currentWeight = 0;

  constructor(url: URL, weight: number, index: number) {
    this.url = url;
    this.origin = `${url.protocol}//${url.host}`;
    this.weight = weight;
    this.index = index;
  }

  /** Whether the backend may receive a request at `now` (epoch ms). */
  available(now: number): boolean {
    return !this.drained && this.healthy && now >= this.ejectedUntil;
  }

  state(now: number): BackendState {
    if (this.drained) return "drained";
    if (!this.healthy) return "down";
    return now < this.ejectedUntil ? "ejected" : "up";
  }

  /**
   * Records a failed request. Returns the ejection period in ms when this
   * failure ejected the backend, else 0. Failures of requests that were
   * already in flight when it got ejected do not extend the ejection; the
   * first failure after an ejection ran out ejects again, for twice as long.
   */
  recordFailure(now: number, opts: PassiveOptions): number {
    this.consecutiveFailures++;
    if (opts.maxFails <= 0 || now < this.ejectedUntil) return 0;
    if (this.consecutiveFailures < opts.maxFails && this.ejections === 0) return 0;
    this.ejections++;
    this.ejectionsTotal++;
    const period = Math.min(opts.failTimeoutMs * 2 ** (this.ejections - 1), MAX_EJECTION_MS);
    this.ejectedUntil = now + period;
    return period;
  }

  /** Records a successful request: failure streak and back-off start over. */
  recordSuccess(): void {
    this.consecutiveFailures = 0;
    this.ejections = 0;
  }

  /** Forgets passive state (used when active checks bring a down backend back). */
  resetPassive(): void {
    this.consecutiveFailures = 0;
    this.ejections = 0;
    this.ejectedUntil = 0;
  }
}
