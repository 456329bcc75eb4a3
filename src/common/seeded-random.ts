// A small seeded generator (mulberry32): the same seed makes the same choices, so picker tests and
// benches that inject it as the picker's `rand` are reproducible. Not for anything secret.

/** Numbers in [0, 1), like Math.random, from `seed`. */
export function seededRandom (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
