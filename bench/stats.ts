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
