// Summary statistics for latency samples, in milliseconds.
//
// Percentiles use the nearest-rank method: the p-th percentile of n sorted samples is the
// smallest sample such that at least p% of all samples are ≤ it, i.e. sorted[ceil(p/100·n) − 1]
// (p = 0 gives the minimum). It always returns a value that was actually measured, never an
// interpolation between two; for [1…100] p50 = 50, p90 = 90, p99 = 99.

export interface Summary {
  readonly count: number;
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** Nearest-rank percentile of ascending `sorted`; `p` in [0, 100]. NaN for no samples. */
export function percentile(sorted: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile: p must be within 0…100, got ${p}`);
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * n));
  return sorted[Math.min(rank, n) - 1]!;
}

/** Count, extremes, p50/p90/p99 (nearest rank) and mean; the input is not modified. */
export function summarize(samples: readonly number[]): Summary {
  const sorted = Float64Array.from(samples).sort();
  const values = Array.from(sorted);
  let sum = 0;
  for (const value of values) sum += value;
  const n = values.length;
  return {
    count: n,
    min: n ? values[0]! : Number.NaN,
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    max: n ? values[n - 1]! : Number.NaN,
    mean: n ? sum / n : Number.NaN,
  };
}

/** The median (nearest rank) of unsorted samples. */
export function median(samples: readonly number[]): number {
  return percentile(Array.from(Float64Array.from(samples).sort()), 50);
}

/**
 * A duration given in ms, for tables: three significant digits (four from 1,000 to 9,999 ms),
 * in µs below 1 ms, in ms below 10 s, in s from there: "812 µs", "4.27 ms", "2410 ms", "12.5 s".
 */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return "–";
  if (ms < 1) return `${sig(ms * 1000)} µs`;
  if (ms < 10_000) return `${sig(ms)} ms`;
  return `${sig(ms / 1000)} s`;
}

function sig(value: number): string {
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}
