/**
 * A latency histogram with fixed log-linear buckets: constant memory, O(1)
 * record, percentiles accurate to about 1.5 % of the value (HdrHistogram-like,
 * 64 sub-buckets per power of two) from 1 µs to about 1 hour.
 *
 * @module
 */

const SUB_BUCKET_BITS = 6;
const SUB_BUCKETS = 1 << SUB_BUCKET_BITS; // 64
const MAGNITUDES = 32; // 2^32 µs ≈ 71 minutes
const BUCKETS = SUB_BUCKETS * MAGNITUDES;

/** Records durations in milliseconds; reports percentiles in milliseconds. */
export class Histogram {
  #counts = new Float64Array(BUCKETS);
  #count = 0;
  #sum = 0;
  #min = Infinity;
  #max = 0;

  /** Adds one observation (milliseconds; negative values count as 0). */
  record(ms: number): void {
    const v = ms > 0 ? ms : 0;
    this.#counts[bucketOf(v)]++;
    this.#count++;
    this.#sum += v;
    if (v < this.#min) this.#min = v;
    if (v > this.#max) this.#max = v;
  }

  get count(): number {
    return this.#count;
  }

  /** Sum of all observations in milliseconds. */
  get sum(): number {
    return this.#sum;
  }

  get min(): number {
    return this.#count === 0 ? 0 : this.#min;
  }

  get max(): number {
    return this.#max;
  }

  get mean(): number {
    return this.#count === 0 ? 0 : this.#sum / this.#count;
  }

  /** The value at percentile `p` (0–100), in milliseconds; 0 when empty. */
  percentile(p: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i];
      if (seen >= rank) return Math.min(Math.max(upperBoundOf(i), this.min), this.#max);
    }
    return this.#max;
  }

  /** Count of observations at or below `ms` (for Prometheus cumulative buckets). */
  countAtOrBelow(ms: number): number {
    const last = bucketOf(ms);
    let n = 0;
    for (let i = 0; i <= last; i++) n += this.#counts[i];
    return n;
  }

  /** Adds every observation of `other` to this histogram. */
  merge(other: Histogram): void {
    for (let i = 0; i < BUCKETS; i++) this.#counts[i] += other.#counts[i];
    this.#count += other.#count;
    this.#sum += other.#sum;
    if (other.#count > 0) {
      this.#min = Math.min(this.#min, other.#min);
      this.#max = Math.max(this.#max, other.#max);
    }
  }

  /** A plain copy that can cross threads (postMessage) and be merged back with `fromState`. */
  toState(): HistogramState {
    const buckets: [number, number][] = [];
    for (let i = 0; i < BUCKETS; i++) if (this.#counts[i] !== 0) buckets.push([i, this.#counts[i]]);
    return { buckets, count: this.#count, sum: this.#sum, min: this.min, max: this.#max };
  }

  /** A histogram holding what `toState` exported. */
  static fromState(state: HistogramState): Histogram {
    const h = new Histogram();
    for (const [i, n] of state.buckets) h.#counts[i] = n;
    h.#count = state.count;
    h.#sum = state.sum;
    h.#min = state.count === 0 ? Infinity : state.min;
    h.#max = state.max;
    return h;
  }

  reset(): void {
    this.#counts.fill(0);
    this.#count = 0;
    this.#sum = 0;
    this.#min = Infinity;
    this.#max = 0;
  }

  /** p50/p90/p99/p999 and friends, rounded to 0.001 ms, for JSON output. */
  summary(): LatencySummary {
    const r = (x: number) => Math.round(x * 1000) / 1000;
    return {
      count: this.#count,
      min: r(this.min),
      mean: r(this.mean),
      p50: r(this.percentile(50)),
      p90: r(this.percentile(90)),
      p99: r(this.percentile(99)),
      p999: r(this.percentile(99.9)),
      max: r(this.#max),
    };
  }
}

/** A histogram as plain data: non-empty buckets and the running totals. */
export interface HistogramState {
  buckets: [number, number][];
  count: number;
  sum: number;
  min: number;
  max: number;
}

/** Latency percentiles in milliseconds. */
export interface LatencySummary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

function bucketOf(ms: number): number {
  const us = Math.floor(ms * 1000);
  if (us < SUB_BUCKETS) return us;
  const magnitude = Math.min(31 - Math.clz32(us) - SUB_BUCKET_BITS + 1, MAGNITUDES - 1);
  const sub = Math.min(us >>> (magnitude - 1), 2 * SUB_BUCKETS - 1) - SUB_BUCKETS;
  return Math.min(magnitude * SUB_BUCKETS + sub, BUCKETS - 1);
}

function upperBoundOf(bucket: number): number {
  const magnitude = Math.floor(bucket / SUB_BUCKETS);
  const sub = bucket % SUB_BUCKETS;
  if (magnitude === 0) return (sub + 1) / 1000;
  return (((SUB_BUCKETS + sub + 1) * 2 ** (magnitude - 1)) - 1) / 1000;
}
