// InOrderHash: the whole-file SHA-1 from pieces fed in any order, held or read back, with bounded memory.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { InOrderHash } from '../../src/peer/whole-hash.ts'

const PIECE = 1024

function file (pieces: number): { bytes: Buffer, piece: (i: number) => Buffer, sha1: Buffer } {
  const bytes = randomBytes(pieces * PIECE - 100) // a short last piece
  return {
    bytes,
    piece: (i) => bytes.subarray(i * PIECE, Math.min(bytes.length, (i + 1) * PIECE)),
    sha1: createHash('sha1').update(bytes).digest(),
  }
}

/** Feeds pieces in `order`; reads back from `f` whatever the hash asks for; returns what was held at most. */
function feed (h: InOrderHash, f: ReturnType<typeof file>, order: number[]): { maxHeld: number, readBack: number[] } {
  let maxHeld = 0
  const readBack: number[] = []
  const drain = (): void => {
    for (let p = h.nextReadBack(); p >= 0; p = h.nextReadBack()) {
      readBack.push(p)
      h.addReadBack(p, f.piece(p))
    }
  }
  drain()
  for (const i of order) {
    h.add(i, f.piece(i))
    maxHeld = Math.max(maxHeld, h.heldCount)
    drain()
  }
  return { maxHeld, readBack }
}

test('in-order pieces are hashed at once: nothing held, nothing read back', () => {
  const f = file(10)
  const h = new InOrderHash({ pieceCount: 10, onDisk: new Uint8Array(10), release: () => assert.fail('nothing was held') })
  const r = feed(h, f, [...Array(10).keys()])
  assert.deepEqual(r, { maxHeld: 0, readBack: [] })
  assert.ok(h.done)
  assert.deepEqual(h.digest(), f.sha1)
})

test('out-of-order pieces are held until their turn, then released', () => {
  const f = file(6)
  const released: Uint8Array[] = []
  const h = new InOrderHash({ pieceCount: 6, onDisk: new Uint8Array(6), release: (d) => released.push(d) })
  assert.equal(h.add(2, f.piece(2)), true)
  assert.equal(h.add(1, f.piece(1)), true)
  assert.equal(h.cursor, 0)
  assert.equal(h.add(0, f.piece(0)), false)
  assert.equal(h.cursor, 3)
  assert.equal(released.length, 2)
  feed(h, f, [5, 3, 4])
  assert.deepEqual(h.digest(), f.sha1)
})

test('past the hold limit the farthest piece is dropped and read back from disk in its turn', () => {
  const f = file(12)
  const released: number[] = []
  const h = new InOrderHash({ pieceCount: 12, onDisk: new Uint8Array(12), hold: 3, release: (d) => released.push(d.length) })
  const r = feed(h, f, [11, 10, 9, 1, 2, 3, 0, 4, 5, 6, 7, 8])
  assert.ok(r.maxHeld <= 3)
  assert.deepEqual(r.readBack, [9, 10, 11]) // evicted by the nearer 1, 2, 3
  assert.deepEqual(h.digest(), f.sha1)
})

test('pieces on disk from an earlier run are read back; a random order always gives the right hash', () => {
  const f = file(40)
  for (let seed = 0; seed < 20; seed++) {
    const onDisk = new Uint8Array(40)
    for (let i = 0; i < 40; i++) if ((i * 7 + seed) % 5 === 0) onDisk[i] = 1
    const order = [...Array(40).keys()].filter((i) => onDisk[i] === 0).sort(() => Math.random() - 0.5)
    const h = new InOrderHash({ pieceCount: 40, onDisk, hold: 4, release: () => {} })
    const r = feed(h, f, order)
    assert.ok(r.maxHeld <= 4)
    assert.deepEqual(h.digest(), f.sha1)
  }
})

test('an empty file is done at once; a repeated piece is ignored; digest before the end is refused', () => {
  const empty = new InOrderHash({ pieceCount: 0, onDisk: new Uint8Array(0), release: () => {} })
  assert.deepEqual(empty.digest(), createHash('sha1').digest())
  const f = file(3)
  const h = new InOrderHash({ pieceCount: 3, onDisk: new Uint8Array(3), release: () => {} })
  h.add(1, f.piece(1))
  assert.equal(h.add(1, f.piece(1)), false)
  assert.throws(() => h.digest(), RangeError)
  feed(h, f, [0, 2])
  assert.deepEqual(h.digest(), f.sha1)
})
