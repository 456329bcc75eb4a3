import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { LatencyHistogram, percentile } from '../../bench/stats.ts'
import { seededRandom } from '../../src/common/seeded-random.ts'

describe('LatencyHistogram', () => {
  it('gives each percentile within 1.6% above the exact one, never below, over six decades', () => {
    const random = seededRandom(7)
    const h = new LatencyHistogram()
    const xs: number[] = []
    for (let i = 0; i < 100_000; i++) {
      const ms = Math.exp(random() * 14) / 1000 // 1 µs .. 1.2 s
      xs.push(ms)
      h.record(ms)
    }
    xs.sort((a, b) => a - b)
    assert.equal(h.count, xs.length)
    assert.equal(h.maxMs, xs.at(-1))
    for (const p of [50, 90, 99, 99.9, 100]) {
      const exact = percentile(xs, p)
      const got = h.percentileMs(p)
      assert.ok(got >= exact, `p${p}: ${got} is below ${exact}`)
      assert.ok(got <= exact * 1.016 + 0.001, `p${p}: ${got} is more than 1.6% above ${exact}`)
    }
  })

  it('is exact for small values, NaN when empty, and clamps what it cannot hold', () => {
    const h = new LatencyHistogram()
    assert.ok(Number.isNaN(h.percentileMs(50)))
    for (const ms of [0.001, 0.002, 0.003, 0.1]) h.record(ms)
    assert.equal(h.percentileMs(50), 0.002)
    assert.equal(h.percentileMs(100), 0.1)
    h.record(-1)
    h.record(1e12) // past the last bucket: counted in it, and still the max
    assert.equal(h.count, 6)
    assert.equal(h.percentileMs(100), 1e12)
  })
})
