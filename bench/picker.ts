// node bench/picker.ts — how many picker calls per second one core sustains (not a test).
// A 4 GiB file (8192 pieces × 4 blocks) downloaded from 4 simulated peers: every delivered block is one
// onBlock() followed by one next() for that peer, as download.ts will do. Simulated time advances as if
// the blocks arrived at 600 MB/s, so pipeline depths settle where they would in the real target.
// Scenarios: 4 seeders (the rarity scan is O(1)); 4 peers each holding a random 60% (the scan skips
// pieces the peer lacks); and the scan's worst case, 1 seeder + 3 peers holding the same half, so the
// rarest bucket is full of pieces those 3 lack. For scale: 600 MB/s is ~4,600 blocks/s (~9,200 calls/s).
// Each scenario runs 3 times (the first includes JIT warm-up).

import { Bitfield } from '../src/common/bitfield.ts'
import { PIECE_BYTES } from '../src/protocol/file-meta.ts'
import { BLOCK_BYTES } from '../src/protocol/wire.ts'
import { Picker } from '../src/peer/picker.ts'
import type { Block } from '../src/peer/picker.ts'
import { seededRandom as seeded } from '../src/common/seeded-random.ts'

const PIECES = 8192
const PEERS = 4
const TARGET_BYTES_PER_S = 600e6
const MS_PER_BLOCK = BLOCK_BYTES / TARGET_BYTES_PER_S * 1000

function run (name: string, holds: (peer: number, piece: number) => boolean): void {
  const rand = seeded(1)
  const picker = new Picker({ size: PIECES * PIECE_BYTES, pieceBytes: PIECE_BYTES, rand })
  const ids = Array.from({ length: PEERS }, (_, i) => `peer${i}`)
  const queues: Block[][] = ids.map(() => [])
  const setupStart = performance.now()
  ids.forEach((id, p) => {
    const bf = new Bitfield(PIECES)
    for (let i = 0; i < PIECES; i++) if (holds(p, i) || (p === 0 && !holds(1, i) && !holds(2, i) && !holds(3, i))) bf.set(i)
    picker.addPeer(id, bf)
  })
  const setupMs = performance.now() - setupStart
  let now = 0
  let nextCalls = 0
  let blockCalls = 0
  const start = performance.now()
  ids.forEach((id, p) => { queues[p]!.push(...picker.next(id, now)); nextCalls++ })
  while (!picker.isComplete()) {
    let progressed = false
    for (let p = 0; p < PEERS; p++) {
      const block = queues[p]!.shift()
      if (block === undefined) continue
      progressed = true
      now += MS_PER_BLOCK
      const result = picker.onBlock(ids[p]!, block, now)
      blockCalls++
      if (result.pieceComplete) picker.onPieceVerified(block.piece)
      for (const c of result.cancel) {
        const q = queues[ids.indexOf(c.peer)]!
        const i = q.findIndex(b => b.piece === c.block.piece && b.offset === c.block.offset)
        if (i >= 0) q.splice(i, 1)
      }
      queues[p]!.push(...picker.next(ids[p]!, now))
      nextCalls++
    }
    if (!progressed) throw new Error('stalled: no peer has anything outstanding')
  }
  const seconds = (performance.now() - start) / 1000
  const calls = nextCalls + blockCalls
  const depths = picker.stats().peers.map(s => s.depth).join('/')
  console.log(`${name}: ${Math.round(calls / seconds).toLocaleString('en')} calls/s ` +
    `(${nextCalls} next + ${blockCalls} onBlock in ${seconds.toFixed(2)} s; ` +
    `${Math.round(blockCalls / seconds).toLocaleString('en')} blocks/s = ` +
    `${(blockCalls / seconds * BLOCK_BYTES / 1e9).toFixed(1)} GB/s worth; addPeer ×${PEERS} ${setupMs.toFixed(1)} ms; depths ${depths})`)
}

const availability = seeded(2)
const partial = Array.from({ length: PEERS }, () => Array.from({ length: PIECES }, () => availability() < 0.6))
for (let round = 0; round < 3; round++) {
  run('4 seeders', () => true)
  run('4 peers with 60% each', (p, i) => partial[p]![i]!)
  run('1 seeder + 3 with the same half', (p, i) => p === 0 || i < PIECES / 2)
}
