import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RarityIndex } from '../../src/peer/rarity.ts'
import { seededRandom as seeded } from '../../src/common/seeded-random.ts'


function index (pieces: number, avail: number[], seed = 1): RarityIndex {
  const r = new RarityIndex(pieces, seeded(seed))
  for (let i = 0; i < pieces; i++) {
    r.addFree(i)
    for (let k = 0; k < (avail[i] ?? 0); k++) r.increment(i)
  }
  return r
}

const any = (): boolean => true

test('returns the free piece with the fewest holders', () => {
  const r = index(4, [3, 1, 2, 2])
  assert.equal(r.rarest(any), 1)
  assert.ok([2, 3].includes(r.rarest(i => i !== 1)))
  assert.equal(r.availability(0), 3)
})

test('never returns a piece nobody has', () => {
  const r = index(3, [0, 0, 0])
  assert.equal(r.rarest(any), -1)
  assert.equal(r.anyFreeAvailable(), false)
  r.increment(2)
  assert.equal(r.rarest(any), 2)
  assert.equal(r.anyFreeAvailable(), true)
})

test('skips pieces the caller cannot use', () => {
  const r = index(4, [1, 1, 2, 3])
  assert.equal(r.rarest(i => i === 3), 3)
  assert.equal(r.rarest(() => false), -1)
})

test('a removed piece is not offered until it is added back, with its availability kept', () => {
  const r = index(2, [1, 2])
  r.removeFree(0)
  assert.equal(r.isFree(0), false)
  assert.equal(r.rarest(any), 1)
  r.increment(0) // availability still tracked while not free
  r.increment(0)
  r.addFree(0)
  assert.equal(r.availability(0), 3)
  assert.equal(r.rarest(any), 1)
  r.decrement(0)
  r.decrement(0)
  assert.equal(r.rarest(any), 0)
})

test('decrement at zero is ignored instead of wrapping around', () => {
  const r = index(1, [0])
  r.decrement(0)
  assert.equal(r.availability(0), 0)
})

test('equally rare pieces come out in a random order that differs by seed', () => {
  const firstPick = (seed: number): number => index(50, new Array(50).fill(1), seed).rarest(any)
  const picks = new Set(Array.from({ length: 30 }, (_, s) => firstPick(s + 1)))
  assert.ok(picks.size >= 15, `only ${picks.size} distinct first picks`)
})

test('every free piece stays reachable through many moves', () => {
  const rand = seeded(9)
  const r = index(200, [])
  const avail = new Array<number>(200).fill(0)
  for (let k = 0; k < 5000; k++) {
    const i = Math.floor(rand() * 200)
    if (rand() < 0.6) { r.increment(i); avail[i]!++ } else if (avail[i]! > 0) { r.decrement(i); avail[i]!-- }
  }
  const seen = new Set<number>()
  for (;;) {
    const i = r.rarest(any)
    if (i < 0) break
    assert.equal(r.availability(i), Math.min(...[...Array(200).keys()].filter(j => !seen.has(j) && avail[j]! > 0).map(j => avail[j]!)))
    seen.add(i)
    r.removeFree(i)
  }
  assert.equal(seen.size, avail.filter(a => a > 0).length)
})
