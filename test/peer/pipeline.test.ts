import { test } from 'node:test'
import assert from 'node:assert/strict'
import { BLOCK_BYTES } from '../../src/protocol/wire.ts'
import {
  MAX_DEPTH, MIN_DEPTH, PeerPipeline, RATE_WINDOW_MS, START_DEPTH, TARGET_QUEUE_MS,
} from '../../src/peer/pipeline.ts'

/** Feeds `bytesPerS` for `ms` milliseconds in 1 ms steps, starting at `from`; returns the end time. */
function feed (p: PeerPipeline, bytesPerS: number, from: number, ms: number): number {
  for (let t = from; t < from + ms; t++) {
    p.received(bytesPerS / 1000)
    p.tick(t + 1, true)
  }
  return from + ms
}

test('starts at START_DEPTH before anything is measured', () => {
  const p = new PeerPipeline()
  assert.equal(p.depth(BLOCK_BYTES), START_DEPTH)
  p.tick(0, true)
  p.received(BLOCK_BYTES)
  p.tick(RATE_WINDOW_MS - 1, true)
  assert.equal(p.rate, undefined, 'no sample before a whole window')
})

test('depth is the measured rate times TARGET_QUEUE_MS, in blocks', () => {
  const p = new PeerPipeline()
  p.tick(0, true)
  const bytesPerS = 10 * BLOCK_BYTES * 1000 / TARGET_QUEUE_MS // 10 blocks per TARGET_QUEUE_MS
  feed(p, bytesPerS, 0, 3000)
  assert.ok(Math.abs(p.rate! - bytesPerS) / bytesPerS < 0.01, `rate ${p.rate}`)
  assert.equal(p.depth(BLOCK_BYTES), 10)
})

test('depth stays between MIN_DEPTH and MAX_DEPTH', () => {
  const fast = new PeerPipeline()
  fast.tick(0, true)
  feed(fast, 10e9, 0, 1000)
  assert.equal(fast.depth(BLOCK_BYTES), MAX_DEPTH)
  const slow = new PeerPipeline()
  slow.tick(0, true)
  feed(slow, 1000, 0, 1000)
  assert.equal(slow.depth(BLOCK_BYTES), MIN_DEPTH)
})

test('an idle window (nothing outstanding, nothing received) is not a sample', () => {
  const p = new PeerPipeline()
  p.tick(0, true)
  const end = feed(p, 100e6, 0, 1000)
  const before = p.rate
  p.tick(end + 5000, false)
  assert.equal(p.rate, before)
  p.tick(end + 10_000, true) // but a busy window with nothing received is: the peer stalled
  assert.ok(p.rate! < before!)
})

test('backOff halves the estimate, and a peer never measured drops to MIN_DEPTH', () => {
  const p = new PeerPipeline()
  p.tick(0, true)
  feed(p, 100e6, 0, 2000)
  const before = p.rate!
  p.backOff(2000)
  assert.equal(p.rate, before / 2)
  const fresh = new PeerPipeline()
  fresh.backOff(0)
  assert.equal(fresh.depth(BLOCK_BYTES), MIN_DEPTH)
})

test('recovers after a back-off once blocks flow again', () => {
  const p = new PeerPipeline()
  p.backOff(0)
  feed(p, 100e6, 0, 2000)
  assert.equal(p.depth(BLOCK_BYTES), MAX_DEPTH)
})
