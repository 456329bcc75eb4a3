// Behaviours of the piece picker, in the manner of transmission's peer-mgr-wishlist-test: each test
// sets up peers and availability, drives the picker with plain calls and simulated time, and checks
// the decision. No sockets: the picker is pure.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Bitfield } from '../../src/common/bitfield.ts'
import { PIECE_BYTES } from '../../src/protocol/file-meta.ts'
import { BLOCK_BYTES, RejectReason } from '../../src/protocol/wire.ts'
import { ENDGAME_MAX_OWNERS, MAX_STRIKES, NEAR_WINDOW, Picker, REQUEST_TIMEOUT_MS } from '../../src/peer/picker.ts'
import { MAX_DEPTH, MIN_DEPTH, START_DEPTH } from '../../src/peer/pipeline.ts'
import type { Block } from '../../src/peer/picker.ts'
import { seededRandom as seeded } from '../../src/common/seeded-random.ts'

const BLOCKS_PER_PIECE = PIECE_BYTES / BLOCK_BYTES


function bits (size: number, pieces: Iterable<number>): Bitfield {
  const bf = new Bitfield(size)
  for (const i of pieces) bf.set(i)
  return bf
}

function picker (pieces: number, opts: { seed?: number, have?: Bitfield, lastPieceBytes?: number } = {}): Picker {
  const size = (pieces - 1) * PIECE_BYTES + (opts.lastPieceBytes ?? PIECE_BYTES)
  return new Picker({ size, pieceBytes: PIECE_BYTES, rand: seeded(opts.seed ?? 1), have: opts.have })
}

const key = (b: Block): string => `${b.piece}:${b.offset}`
const piecesOf = (blocks: Block[]): number[] => [...new Set(blocks.map(b => b.piece))]

/** Delivers every block of a piece from `peer`; returns whether the last one completed the piece. */
function deliverPiece (p: Picker, peer: string, blocks: Block[], now = 0): boolean {
  let complete = false
  for (const b of blocks) complete = p.onBlock(peer, b, now).pieceComplete
  return complete
}

test('prefersRarerPieces', () => {
  const p = picker(4)
  p.addPeer('a', Bitfield.full(4))
  p.addPeer('b', bits(4, [0, 1, 2]))
  p.addPeer('c', bits(4, [0, 1]))
  assert.deepEqual(piecesOf(p.next('a', 0)), [3]) // only a has piece 3
  p.addPeer('d', Bitfield.full(4))
  assert.deepEqual(piecesOf(p.next('d', 0)), [2]) // then 2 (three peers) before 0 and 1 (four)
})

test('breaks ties among equally rare pieces at random within the window near the front, reproducibly for a seed', () => {
  const first = (seed: number): number => {
    const p = picker(64, { seed })
    p.addPeer('a', Bitfield.full(64))
    return p.next('a', 0)[0]!.piece
  }
  const seen = new Set<number>()
  for (let seed = 1; seed <= 40; seed++) seen.add(first(seed))
  assert.ok(seen.size >= NEAR_WINDOW / 2, `40 seeds started only ${seen.size} different pieces`)
  assert.ok([...seen].every((piece) => piece < NEAR_WINDOW), `a piece outside the window was started: ${[...seen].join(',')}`)
  assert.equal(first(7), first(7))
})

test('pieces complete near file order: starts stay within the window past the first missing piece', () => {
  const pieces = 8 * NEAR_WINDOW
  const p = picker(pieces, { seed: 3 })
  p.addPeer('a', Bitfield.full(pieces))
  let now = 0
  let verified = 0
  while (!p.isComplete()) {
    const blocks = p.next('a', now)
    for (const b of blocks) {
      // verified pieces are all below the window's end: no piece is started far ahead of the front
      assert.ok(b.piece < verified + 2 * NEAR_WINDOW + 8, `piece ${b.piece} started with ${verified} verified`)
      if (p.onBlock('a', b, ++now).pieceComplete) {
        p.onPieceVerified(b.piece)
        verified++
      }
    }
  }
})

test('a rarer piece outside the window still comes first', () => {
  const pieces = 4 * NEAR_WINDOW
  const p = picker(pieces, { seed: 5 })
  p.addPeer('a', Bitfield.full(pieces))
  p.addPeer('b', bits(pieces, Array.from({ length: pieces - 1 }, (_, i) => i))) // all but the last piece
  assert.deepEqual(piecesOf(p.next('a', 0)), [pieces - 1])
})

test('requests a whole piece at the starting depth, with the last block of the file short', () => {
  const p = picker(1, { lastPieceBytes: BLOCK_BYTES + 10 })
  p.addPeer('a', Bitfield.full(1))
  assert.deepEqual(p.next('a', 0), [
    { piece: 0, offset: 0, length: BLOCK_BYTES },
    { piece: 0, offset: BLOCK_BYTES, length: 10 },
  ])
  const q = picker(8)
  q.addPeer('a', Bitfield.full(8))
  assert.equal(q.next('a', 0).length, START_DEPTH)
  assert.deepEqual(q.next('a', 0), [], 'nothing more until requests are answered')
})

test('finishesStartedPiecesFirst', () => {
  const p = picker(3)
  p.addPeer('a', bits(3, [0, 1]))
  p.addPeer('b', Bitfield.full(3))
  p.addPeer('c', bits(3, [0, 1]))
  const started = p.next('a', 0) // a's rarest: piece 0 or 1 (three peers each)
  assert.equal(piecesOf(started).length, 1)
  deliverPiece(p, 'a', started.slice(0, 2))
  p.removePeer('a') // leaves a piece half received, half unrequested
  // b could start piece 2 (only b has it: rarer), but finishes the started piece first
  const got = p.next('b', 0)
  assert.deepEqual(got.slice(0, 2), started.slice(2))
  assert.deepEqual(piecesOf(got.slice(2)), [2])
})

test('starts no more pieces than the caller allows, but still finishes started ones', () => {
  const p = picker(6)
  p.addPeer('a', Bitfield.full(6))
  p.addPeer('b', Bitfield.full(6))
  assert.deepEqual(p.next('a', 0, 0), [], 'no buffer: nothing new starts')
  assert.equal(p.inProgress, 0)
  const started = p.next('a', 0, 1)
  assert.equal(piecesOf(started).length, 1)
  assert.equal(p.inProgress, 1)
  deliverPiece(p, 'a', started.slice(0, 2))
  p.removePeer('a') // half of the piece goes back unrequested
  const rest = p.next('b', 0, 0)
  assert.deepEqual(rest, started.slice(2), 'the started piece is finished without a new buffer')
  assert.equal(deliverPiece(p, 'b', rest), true)
  p.onPieceVerified(started[0]!.piece)
  assert.equal(p.inProgress, 0, 'a verified piece gives its buffer back')
  assert.equal(piecesOf(p.next('b', 0, 1)).length, 1)
})

test('doesNotRequestSameBlockTwice outside the endgame', () => {
  const p = picker(64, { seed: 3 })
  const peers = ['a', 'b', 'c']
  for (const id of peers) p.addPeer(id, Bitfield.full(64))
  const requested = new Set<string>()
  let rounds = 0
  while (!p.stats().endgame && !p.isComplete()) {
    for (const id of peers) {
      const blocks = p.next(id, rounds)
      for (const b of blocks) {
        assert.ok(!requested.has(key(b)), `block ${key(b)} requested twice`)
        requested.add(key(b))
      }
      for (const b of blocks) if (p.onBlock(id, b, rounds).pieceComplete) p.onPieceVerified(b.piece)
    }
    rounds++
  }
  assert.equal(requested.size, 64 * BLOCKS_PER_PIECE)
})

test('spreadsAcrossPeers', () => {
  const p = picker(16)
  p.addPeer('a', Bitfield.full(16))
  p.addPeer('b', Bitfield.full(16))
  const a = p.next('a', 0)
  const b = p.next('b', 0)
  assert.equal(a.length, START_DEPTH)
  assert.equal(b.length, START_DEPTH)
  assert.deepEqual(a.map(key).filter(k => b.map(key).includes(k)), [])
})

test('slowPeerGetsFewerRequests', () => {
  const pieces = 2048
  const p = picker(pieces, { seed: 5 })
  const everyMs: Record<string, number> = { fast: 1, slow: 50 } // one block per ...
  const queue: Record<string, Block[]> = { fast: [], slow: [] }
  for (const id of ['fast', 'slow']) p.addPeer(id, Bitfield.full(pieces))
  for (let now = 0; now <= 2000; now++) {
    for (const id of ['fast', 'slow']) {
      if (now % everyMs[id]! === 0 && queue[id]!.length > 0) {
        const b = queue[id]!.shift()!
        if (p.onBlock(id, b, now).pieceComplete) p.onPieceVerified(b.piece)
      }
      queue[id]!.push(...p.next(id, now))
    }
  }
  const stats = new Map(p.stats().peers.map(s => [s.id, s]))
  assert.equal(stats.get('fast')!.depth, MAX_DEPTH)
  assert.ok(stats.get('slow')!.depth < MAX_DEPTH / 2, `slow depth ${stats.get('slow')!.depth}`)
  assert.ok(stats.get('slow')!.depth >= MIN_DEPTH)
  assert.ok(queue.slow!.length < queue.fast!.length)
  assert.equal(p.stats().endgame, false)
})

test('endgameDuplicatesAndCancels', () => {
  const p = picker(1)
  for (const id of ['a', 'b', 'c']) p.addPeer(id, Bitfield.full(1))
  const a = p.next('a', 0)
  assert.equal(a.length, BLOCKS_PER_PIECE)
  assert.equal(p.stats().endgame, true)
  const b = p.next('b', 0)
  assert.deepEqual(b.map(key).sort(), a.map(key).sort(), 'b duplicates what a has outstanding')
  assert.equal(ENDGAME_MAX_OWNERS, 2)
  assert.deepEqual(p.next('c', 0), [], 'no third copy of a block')
  const first = p.onBlock('b', b[0]!, 1)
  assert.equal(first.accepted, true)
  assert.deepEqual(first.cancel, [{ peer: 'a', block: b[0] }])
  assert.equal(p.onBlock('a', b[0]!, 2).accepted, false, 'the duplicate that raced the cancel is dropped')
  assert.equal(p.stats().peers.find(s => s.id === 'a')!.inFlight, BLOCKS_PER_PIECE - 1)
})

test('expiredRequestGoesToAnotherPeer', () => {
  const p = picker(1)
  p.addPeer('slow', Bitfield.full(1))
  p.addPeer('b', Bitfield.full(1))
  const sent = p.next('slow', 0)
  assert.deepEqual(p.expire(REQUEST_TIMEOUT_MS - 1), [])
  const expired = p.expire(REQUEST_TIMEOUT_MS)
  assert.deepEqual(expired, sent.map(block => ({ peer: 'slow', block })))
  assert.deepEqual(p.next('b', REQUEST_TIMEOUT_MS), sent)
  assert.equal(p.stats().peers.find(s => s.id === 'slow')!.depth, MIN_DEPTH, 'the slow peer gets fewer requests')
})

test('accepts a late block after its request expired, unless another peer delivered it', () => {
  const p = picker(1)
  p.addPeer('slow', Bitfield.full(1))
  p.addPeer('b', Bitfield.full(1))
  const [b0, b1] = p.next('slow', 0)
  p.expire(REQUEST_TIMEOUT_MS)
  p.next('b', REQUEST_TIMEOUT_MS)
  assert.equal(p.onBlock('b', b1!, REQUEST_TIMEOUT_MS).accepted, true)
  assert.equal(p.onBlock('slow', b1!, REQUEST_TIMEOUT_MS).accepted, false)
  const late = p.onBlock('slow', b0!, REQUEST_TIMEOUT_MS)
  assert.equal(late.accepted, true)
  assert.deepEqual(late.cancel, [{ peer: 'b', block: b0 }])
})

test('rejectReturnsBlock', () => {
  const p = picker(2)
  p.addPeer('a', Bitfield.full(2))
  const sent = p.next('a', 0)
  p.onReject('a', sent[0]!, RejectReason.Busy, 0)
  assert.equal(p.stats().peers[0]!.depth, MIN_DEPTH, 'a busy peer gets fewer requests')
  p.addPeer('b', Bitfield.full(2))
  assert.deepEqual(p.next('b', 0)[0], sent[0], 'the rejected block goes to the next peer first')
})

test('a peer that rejects with NotHave is not asked for that piece again', () => {
  const p = picker(2)
  p.addPeer('a', Bitfield.full(2))
  const sent = p.next('a', 0)
  for (const b of sent) p.onReject('a', b, RejectReason.NotHave, 0)
  const again = p.next('a', 0)
  assert.ok(again.length > 0)
  assert.ok(!again.some(b => b.piece === sent[0]!.piece))
})

test('removePeerReturnsBlocks', () => {
  const p = picker(4)
  p.addPeer('a', Bitfield.full(4))
  const sent = p.next('a', 0)
  p.onBlock('a', sent[0]!, 0)
  assert.deepEqual(p.removePeer('a'), sent.slice(1))
  assert.deepEqual(p.removePeer('a'), [], 'removing twice is harmless')
  p.addPeer('b', Bitfield.full(4))
  assert.deepEqual(p.next('b', 0).slice(0, 3), sent.slice(1))
  assert.equal(p.next('a', 0).length, 0, 'a removed peer gets nothing')
  assert.equal(p.onBlock('a', sent[0]!, 0).accepted, false)
})

test('failedPieceIsRefetchedFromOnePeerAndStrikesOnlyAProvenSender', () => {
  const p = picker(1)
  p.addPeer('a', Bitfield.full(1))
  p.addPeer('b', Bitfield.full(1))
  const first = p.next('a', 0)
  p.onBlock('a', first[0]!, 0)
  p.onBlock('a', first[1]!, 0)
  p.next('b', 0) // endgame: b duplicates the two outstanding blocks
  assert.equal(p.onBlock('b', first[2]!, 0).accepted, true)
  assert.equal(p.onBlock('b', first[3]!, 0).pieceComplete, true)
  assert.deepEqual(p.onPieceFailed(0), { drop: [] })
  const strikes = (): Record<string, number> => Object.fromEntries(p.stats().peers.map(s => [s.id, s.strikes]))
  assert.deepEqual(strikes(), { a: 0, b: 0 }, 'a piece from two peers proves neither guilty')
  let dropped: string[] = []
  for (let round = 1; round <= MAX_STRIKES; round++) {
    // the refetch comes from a single peer so that the next failure names the culprit
    const again = p.next('a', round)
    assert.equal(again.length, BLOCKS_PER_PIECE)
    assert.deepEqual(p.next('b', round), [], 'no second source for a failed piece')
    assert.equal(deliverPiece(p, 'a', again, round), true)
    dropped = p.onPieceFailed(0).drop
  }
  assert.deepEqual(strikes(), { a: MAX_STRIKES, b: 0 })
  assert.deepEqual(dropped, ['a'])
  p.removePeer('a')
  const fromB = p.next('b', 10)
  assert.equal(fromB.length, BLOCKS_PER_PIECE)
  assert.equal(deliverPiece(p, 'b', fromB, 10), true)
  assert.deepEqual(p.onPieceVerified(0), [])
  assert.equal(p.isComplete(), true)
})

test('a failed piece is freed for others when its single source stops serving it', () => {
  const p = picker(1)
  p.addPeer('a', Bitfield.full(1))
  p.addPeer('b', Bitfield.full(1))
  deliverPiece(p, 'a', p.next('a', 0))
  p.onPieceFailed(0)
  const again = p.next('a', 1)
  p.onBlock('a', again[0]!, 1)
  p.expire(1 + REQUEST_TIMEOUT_MS)
  assert.equal(p.next('b', 1 + REQUEST_TIMEOUT_MS).length, BLOCKS_PER_PIECE - 1)
})

test('neverRequestsPieceThePeerLacks', () => {
  const pieces = 40
  const rand = seeded(11)
  const p = picker(pieces, { seed: 12 })
  const has = new Map<string, Bitfield>()
  for (const id of ['a', 'b', 'c', 'd']) {
    const bf = bits(pieces, Array.from({ length: pieces }, (_, i) => i).filter(() => rand() < 0.3))
    has.set(id, bf)
    p.addPeer(id, bf)
  }
  for (let now = 0; now < 200; now++) {
    for (const [id, bf] of has) {
      for (const b of p.next(id, now)) {
        assert.ok(bf.get(b.piece), `${id} asked for piece ${b.piece} it lacks`)
        if (rand() < 0.5 && p.onBlock(id, b, now).pieceComplete) p.onPieceVerified(b.piece)
      }
    }
    p.expire(now)
  }
})

test('peerHave makes a piece requestable; pieces we already have are never requested', () => {
  const p = picker(3, { have: bits(3, [0]) })
  assert.equal(p.addPeer('a', bits(3, [0])), false, 'nothing we lack')
  assert.deepEqual(p.next('a', 0), [])
  assert.equal(p.peerHave('a', 0), false)
  assert.equal(p.peerHave('a', 2), true)
  assert.deepEqual(piecesOf(p.next('a', 0)), [2])
  assert.equal(p.stats().have, 1)
})

test('ignores blocks that are not exactly one block of the file', () => {
  const p = picker(2, { lastPieceBytes: 1000 })
  p.addPeer('a', Bitfield.full(2))
  for (const block of [
    { piece: 2, offset: 0, length: BLOCK_BYTES },
    { piece: 0, offset: 1, length: BLOCK_BYTES },
    { piece: 0, offset: 0, length: BLOCK_BYTES - 1 },
    { piece: 1, offset: 0, length: BLOCK_BYTES },
    { piece: 1, offset: BLOCK_BYTES, length: 1 },
  ]) assert.equal(p.onBlock('a', block, 0).accepted, false, JSON.stringify(block))
})

test('an empty file is complete from the start', () => {
  const p = new Picker({ size: 0, pieceBytes: PIECE_BYTES, rand: seeded(1) })
  assert.equal(p.isComplete(), true)
  p.addPeer('a', new Bitfield(0))
  assert.deepEqual(p.next('a', 0), [])
})

// A deterministic simulation: 3 peers with random partial availability (together they have every
// piece), random per-block latency, a peer that sometimes stalls, random hash failures and periodic
// expiry; runs until the picker says the file is complete.
for (const seed of [21, 22, 23]) {
  test(`completes a simulated download from 3 peers with random availability (seed ${seed})`, () => {
    const pieces = 96
    const rand = seeded(seed)
    const p = picker(pieces, { seed: seed + 100, lastPieceBytes: 3 * BLOCK_BYTES + 7 })
    const ids = ['a', 'b', 'c']
    const has = new Map(ids.map(id => [id, new Bitfield(pieces)]))
    for (let i = 0; i < pieces; i++) {
      const holders = ids.filter(() => rand() < 0.5)
      if (holders.length === 0) holders.push(ids[i % 3]!)
      for (const id of holders) has.get(id)!.set(i)
    }
    for (const id of ids) p.addPeer(id, has.get(id)!)
    let inTransit: Array<{ id: string, block: Block, at: number }> = []
    const accepted = new Set<string>()
    const contributed = new Map(ids.map(id => [id, 0]))
    let now = 0
    while (!p.isComplete()) {
      assert.ok(now < 100_000, `not complete after ${now} simulated ms: ${JSON.stringify(p.stats())}`)
      for (const id of ids) {
        for (const block of p.next(id, now)) {
          assert.ok(has.get(id)!.get(block.piece), 'requested from a peer that lacks the piece')
          // c is sometimes very slow: its requests time out and move elsewhere
          const delay = id === 'c' && rand() < 0.05 ? 2 * REQUEST_TIMEOUT_MS : 1 + Math.floor(rand() * 20)
          inTransit.push({ id, block, at: now + delay })
        }
      }
      now++
      const due = inTransit.filter(t => t.at <= now)
      inTransit = inTransit.filter(t => t.at > now)
      for (const t of due) {
        const result = p.onBlock(t.id, t.block, now)
        for (const c of result.cancel) {
          // cancels race the data: half of them arrive in time
          if (rand() < 0.5) inTransit = inTransit.filter(x => !(x.id === c.peer && key(x.block) === key(c.block)))
        }
        if (!result.accepted) continue
        assert.ok(!accepted.has(key(t.block)), `block ${key(t.block)} accepted twice`)
        accepted.add(key(t.block))
        contributed.set(t.id, contributed.get(t.id)! + 1)
        if (!result.pieceComplete) continue
        if (rand() < 0.03) {
          for (let b = 0; b < BLOCKS_PER_PIECE; b++) accepted.delete(`${t.block.piece}:${b * BLOCK_BYTES}`)
          p.onPieceFailed(t.block.piece) // a bad piece: refetched (strikes may say drop; nobody is dropped here)
        } else {
          assert.deepEqual(p.onPieceVerified(t.block.piece), [])
        }
      }
      if (now % 100 === 0) p.expire(now)
    }
    let blocks = 0
    for (let i = 0; i < pieces; i++) blocks += i === pieces - 1 ? 4 : BLOCKS_PER_PIECE
    assert.equal(accepted.size, blocks, 'every block received')
    for (const id of ids) assert.ok(contributed.get(id)! > 0, `${id} contributed nothing`)
    assert.equal(p.stats().inProgress, 0)
  })
}
