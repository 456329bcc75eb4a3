// Small figures every bench prints: the median of its runs, percentiles of its latencies.

/** The middle value (the upper one of an even count) of `xs`, in any order. */
export function median (xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

/** The p-th percentile (0-100) of ascending `sorted`, nearest rank; NaN when it is empty. */
export function percentile (sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

// Sub-buckets per power of two: a recorded value is kept to within 1/64 (1.6%) of itself
const SUB_BITS = 6
const SUB = 1 << SUB_BITS

/**
 * Latencies counted in fixed log-linear buckets (the layout of HdrHistogram), in microseconds up to
 * ~35 minutes. A load generator that kept every sample in an array grew its heap all run long, and
 * its own major GCs (5-8 ms pauses) showed up as the tracker's tail: every reply that arrived
 * during one was timed late. This takes the same 64 KB whatever the run's length.
 */
export class LatencyHistogram {
  readonly #counts = new Float64Array((32 - SUB_BITS + 1) * SUB)
  count = 0
  maxMs = 0

  record (ms: number): void {
    const us = Math.min(0x7fffffff, Math.max(0, Math.ceil(ms * 1000)))
    this.#counts[bucketOf(us)]!++
    this.count++
    if (ms > this.maxMs) this.maxMs = ms
  }

  /** The p-th percentile (0-100), nearest rank, as the top of its bucket (never under the true value); NaN when empty. */
  percentileMs (p: number): number {
    if (this.count === 0) return NaN
    const rank = Math.min(this.count, Math.max(1, Math.ceil((p / 100) * this.count)))
    if (rank === this.count) return this.maxMs
    let seen = 0
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i]!
      if (seen >= rank) return Math.min(this.maxMs, bucketTopUs(i) / 1000)
    }
    return this.maxMs
  }
}

/** Values below 2·SUB have a bucket each; above, SUB buckets per power of two. */
function bucketOf (us: number): number {
  if (us < 2 * SUB) return us
  const shift = 31 - Math.clz32(us) - SUB_BITS // ≥ 1
  return (shift + 1) * SUB + ((us >>> shift) - SUB)
}

/** The largest value (µs) that falls in bucket i. */
function bucketTopUs (i: number): number {
  if (i < 2 * SUB) return i
  const shift = Math.floor(i / SUB) - 1
  return ((i % SUB) + SUB + 1) * 2 ** shift - 1
}
