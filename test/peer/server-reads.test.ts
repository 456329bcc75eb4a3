// What the peer server reads and holds to serve blocks: pooled piece buffers (reused, all given back,
// never overwritten while a block of them is being sent), one read per piece asked for whole, no more
// bytes read than asked for when a piece is split among peers, and the per-connection memory bound.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PIECE_BYTES } from '../../src/protocol/file-meta.ts'
import { BLOCK_BYTES, encodeRequest } from '../../src/protocol/wire.ts'
import { pieceBufferStats } from '../../src/peer/piece-buffers.ts'
import { PIECES_KEPT } from '../../src/peer/server.ts'
import type { PieceSource } from '../../src/peer/server.ts'
import { handshake, makeFile, rawClient, serve, shareFile } from '../helpers/peer.ts'
import type { RawClient, TestFile } from '../helpers/peer.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { waitFor } from '../helpers/wait.ts'

const BLOCKS = PIECE_BYTES / BLOCK_BYTES

/** Pooled buffers handed out and not given back yet (process-wide). */
function outstanding (): number {
  const s = pieceBufferStats()
  return s.allocated + s.reused - s.released
}

/** A source that records each read's range, and the most pooled buffers out at any read. */
function recording (source: PieceSource): PieceSource & { reads: Array<[number, number, number]>, maxOut: number } {
  const out = {
    meta: source.meta,
    reads: [] as Array<[number, number, number]>,
    maxOut: 0,
    have: () => source.have(),
    read: async (piece: number, offset: number, length: number) => {
      out.reads.push([piece, offset, length])
      out.maxOut = Math.max(out.maxOut, outstanding() + 1)
      return await source.read(piece, offset, length)
    },
  }
  return out
}

async function setup (t: Parameters<typeof tmpDir>[0], pieces: number): Promise<{ file: TestFile, source: ReturnType<typeof recording>, c: RawClient }> {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'f.bin', pieces * PIECE_BYTES)
  const source = recording(await shareFile(t, file))
  const server = await serve(t, new Map([[file.id, source]]))
  const c = await rawClient(t, server.address.port)
  await handshake(c, file.id, pieces)
  return { file, source, c }
}

function ask (c: RawClient, blocks: Array<[number, number]>): void {
  c.conn.batch(() => {
    for (const [piece, block] of blocks) c.conn.send(encodeRequest(piece, block * BLOCK_BYTES, BLOCK_BYTES))
  })
}

function assertServed (c: RawClient, file: TestFile): void {
  for (const p of c.pieces) {
    const at = p.piece * PIECE_BYTES + p.offset
    assert.ok(p.data.equals(file.bytes.subarray(at, at + BLOCK_BYTES)), `block ${p.piece}/${p.offset} has the file's bytes`)
  }
}

test('piece buffers are reused, every one comes back, and no block is overwritten while it is sent', async (t) => {
  const pieces = 24
  const { file, source, c } = await setup(t, pieces)
  const before = pieceBufferStats()
  // in batches of three pieces, each asked whole: the server never holds more than a few at once
  for (let first = 0; first < pieces; first += 3) {
    ask(c, Array.from({ length: 3 * BLOCKS }, (_, i) => [first + Math.floor(i / BLOCKS), i % BLOCKS]))
    await waitFor(() => c.pieces.length === (first + 3) * BLOCKS || undefined, `pieces up to ${first + 3}`)
  }
  assertServed(c, file)
  assert.equal(source.reads.length, pieces, 'one read per piece')
  const after = pieceBufferStats()
  assert.ok(after.reused - before.reused >= pieces - (PIECES_KEPT + 1), `reused ${after.reused - before.reused} of ${pieces}`)
  assert.ok(after.allocated - before.allocated <= PIECES_KEPT + 1, `allocated ${after.allocated - before.allocated}`)
  c.conn.close() // the server drops what it kept: every buffer is given back
  await waitFor(() => outstanding() === 0 || undefined, 'every buffer given back')
})

test('a piece asked for in two refills, with an empty queue between, is read once per half, never again', async (t) => {
  const { file, source, c } = await setup(t, 2)
  ask(c, [[0, 0], [0, 1]])
  await waitFor(() => c.pieces.length === 2 || undefined, 'the first half')
  ask(c, [[0, 2], [0, 3], [1, 0], [1, 1], [1, 2], [1, 3]])
  await waitFor(() => c.pieces.length === 8 || undefined, 'the rest')
  assertServed(c, file)
  assert.deepEqual(source.reads, [[0, 0, 2 * BLOCK_BYTES], [0, 2 * BLOCK_BYTES, 2 * BLOCK_BYTES], [1, 0, PIECE_BYTES]])
})

test('a piece whose blocks were asked for one by one is not read again for a block it kept', async (t) => {
  const { file, source, c } = await setup(t, 1)
  ask(c, [[0, 0], [0, 1], [0, 2], [0, 3]])
  await waitFor(() => c.pieces.length === 4 || undefined, 'the piece')
  ask(c, [[0, 1]]) // again: the piece was dropped once all its blocks were asked for, so one more read
  await waitFor(() => c.pieces.length === 5 || undefined, 'the block again')
  assertServed(c, file)
  assert.deepEqual(source.reads, [[0, 0, PIECE_BYTES], [0, BLOCK_BYTES, BLOCK_BYTES]])
})

test(`one block each of many pieces: at most ${PIECES_KEPT + 1} pieces held by a connection`, async (t) => {
  const pieces = 40
  const { file, source, c } = await setup(t, pieces)
  const base = outstanding()
  ask(c, Array.from({ length: pieces }, (_, p) => [p, p % BLOCKS]))
  await waitFor(() => c.pieces.length === pieces || undefined, 'every block')
  assertServed(c, file)
  assert.equal(source.reads.length, pieces)
  assert.ok(source.reads.every(([, , length]) => length === BLOCK_BYTES), 'only the block asked for is read')
  assert.ok(source.maxOut - base <= PIECES_KEPT + 1, `held at most ${source.maxOut - base} pieces`)
})
