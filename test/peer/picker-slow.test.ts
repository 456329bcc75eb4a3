// The picker with one peer far slower than the others (issue 4: three unlimited sharers and one capped
// at 1 MB/s): the slow peer must not hold up the pieces near the front, which the in-order whole-file
// hash waits for (whole-hash.ts). Simulated time, 1 ms steps; each peer answers its requests in order
// at its own pace, as a server does. No sockets: the picker is pure.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Bitfield } from '../../src/common/bitfield.ts'
import { PIECE_BYTES } from '../../src/protocol/file-meta.ts'
import { RESCUE_AHEAD, Picker } from '../../src/peer/picker.ts'
import type { Block } from '../../src/peer/picker.ts'
import { seededRandom as seeded } from '../../src/common/seeded-random.ts'


interface Asked { peer: string, block: Block, now: number, have: number, endgame: boolean }

/**
 * Runs `ms` steps: a peer answers one block every `msPerBlock[peer]` ms (Infinity: never), the picker
 * hears it and the piece is verified when complete; then each peer is topped up. Returns every request.
 */
function simulate (p: Picker, msPerBlock: Record<string, number>, ms: number): Asked[] {
  const queues = new Map<string, Block[]>(Object.keys(msPerBlock).map((id) => [id, []]))
  const asked: Asked[] = []
  for (const id of queues.keys()) p.addPeer(id, Bitfield.full(p.pieceCount))
  for (let now = 0; now < ms && !p.isComplete(); now++) {
    for (const [id, queue] of queues) {
      if (now % msPerBlock[id]! === 0 && queue.length > 0) {
        const b = queue.shift()!
        const res = p.onBlock(id, b, now)
        for (const c of res.cancel) { // the other holder drops the request, as a server does on cancel
          const q = queues.get(c.peer)!
          const i = q.findIndex((x) => x.piece === c.block.piece && x.offset === c.block.offset)
          if (i >= 0) q.splice(i, 1)
        }
        if (res.pieceComplete) p.onPieceVerified(b.piece)
      }
      const stats = p.stats()
      for (const block of p.next(id, now)) {
        asked.push({ peer: id, block, now, have: stats.have, endgame: stats.endgame })
        queue.push(block)
      }
    }
  }
  return asked
}

test('a peer far slower than the others starts its pieces from the back and leaves the front to them', () => {
  const pieces = 2048
  const p = new Picker({ size: pieces * PIECE_BYTES, pieceBytes: PIECE_BYTES, rand: seeded(11) })
  // 128 KiB blocks: ~131 MB/s each for the fast ones, ~1.3 MB/s for the slow one
  const asked = simulate(p, { fast1: 1, fast2: 1, slow: 100 }, 1500)
  const measured = asked.filter((a) => a.peer === 'slow' && a.now >= 1000) // its rate is known by then
  assert.ok(measured.length > 0, 'the slow peer was asked for nothing once measured')
  for (const a of measured) {
    // it took ~15 blocks in the last 500 ms, under 4 pieces: all of them from the last few
    assert.ok(a.block.piece >= pieces - 64, `at ${a.now} ms the slow peer was asked for piece ${a.block.piece}, near the front`)
    const before = asked.find((x) => x.peer !== 'slow' && x.block.piece === a.block.piece && x.now <= a.now)
    assert.equal(before, undefined, `the slow peer joined piece ${a.block.piece}, which ${before?.peer} had started`)
  }
})

test('the first missing piece, stuck at a peer that sends nothing, is duplicated to a fast peer before the endgame', () => {
  const pieces = 256
  const p = new Picker({ size: pieces * PIECE_BYTES, pieceBytes: PIECE_BYTES, rand: seeded(5) })
  const asked = simulate(p, { stuck: Infinity, fast: 1 }, 400)
  const stuckPieces = new Set(asked.filter((a) => a.peer === 'stuck').map((a) => a.block.piece))
  const first = Math.min(...stuckPieces)
  const rescue = asked.find((a) => a.peer === 'fast' && a.block.piece === first)
  assert.ok(rescue !== undefined, `piece ${first}, held by the stuck peer, was never asked of the fast one`)
  assert.equal(rescue.endgame, false, 'only the endgame rescued it')
  assert.ok(rescue.have >= first + RESCUE_AHEAD, `rescued with ${rescue.have} pieces verified, before the hash could be stuck on piece ${first}`)
  assert.ok(p.hasPiece(first), `piece ${first} is still missing`)
})

test('a piece held by a fast peer is not duplicated while that peer delivers', () => {
  const pieces = 256
  const p = new Picker({ size: pieces * PIECE_BYTES, pieceBytes: PIECE_BYTES, rand: seeded(3) })
  const asked = simulate(p, { a: 1, b: 1, c: 2 }, 2000)
  assert.ok(p.isComplete())
  const seen = new Set<string>()
  for (const x of asked.filter((x) => !x.endgame)) {
    const k = `${x.block.piece}:${x.block.offset}`
    assert.ok(!seen.has(k), `block ${k} asked twice before the endgame (again of ${x.peer} at ${x.now} ms)`)
    seen.add(k)
  }
})
