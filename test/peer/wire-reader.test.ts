// WireReader: frames as FrameDecoder cuts them, with a piece message's block handed out as views of
// the received chunks (no copy), however the bytes are split.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { BLOCK_BYTES, MAX_HANDSHAKE_FRAME_BYTES, MAX_WIRE_FRAME_BYTES, encodeHave, encodePiece, encodeRequest } from '../../src/protocol/wire.ts'
import { WireReader } from '../../src/peer/wire-reader.ts'
import type { WireChunk } from '../../src/peer/wire-reader.ts'

function stream (): { bytes: Buffer, block: Buffer } {
  const block = Buffer.alloc(BLOCK_BYTES)
  for (let i = 0; i < block.length; i++) block[i] = (i * 31) & 0xff
  const bytes = Buffer.concat([encodeHave(3), encodePiece(7, BLOCK_BYTES, block), encodeRequest(1, 0, 10), encodePiece(8, 0, block.subarray(0, 5))])
  return { bytes, block }
}

function feed (bytes: Buffer, cut: number): WireChunk[] {
  const r = new WireReader(MAX_WIRE_FRAME_BYTES)
  const out: WireChunk[] = []
  for (let at = 0; at < bytes.length; at += cut) out.push(...r.push(Buffer.from(bytes.subarray(at, at + cut))))
  return out
}

for (const cut of [1, 7, 13, 4096, 65536, 1 << 20]) {
  test(`splits frames and blocks right with chunks of ${cut} bytes`, () => {
    const { bytes, block } = stream()
    const out = feed(bytes, cut)
    assert.deepEqual(out.map((c) => c.kind), ['frame', 'piece', 'frame', 'piece'])
    assert.deepEqual(out[0], { kind: 'frame', body: encodeHave(3).subarray(4) })
    const p = out[1] as Extract<WireChunk, { kind: 'piece' }>
    assert.equal(p.piece, 7)
    assert.equal(p.offset, BLOCK_BYTES)
    assert.equal(p.length, BLOCK_BYTES)
    assert.deepEqual(Buffer.concat(p.parts), block)
    if (cut >= bytes.length) assert.equal(p.parts.length, 1) // one chunk: a view, nothing copied
    assert.deepEqual(out[2], { kind: 'frame', body: encodeRequest(1, 0, 10).subarray(4) })
    const q = out[3] as Extract<WireChunk, { kind: 'piece' }>
    assert.deepEqual([q.piece, q.offset, q.length, Buffer.concat(q.parts)], [8, 0, 5, block.subarray(0, 5)])
  })
}

test('refuses a frame over the cap before buffering it, and a piece message without a block', () => {
  const r = new WireReader(MAX_HANDSHAKE_FRAME_BYTES)
  assert.throws(() => r.push(encodePiece(0, 0, Buffer.alloc(BLOCK_BYTES))), { code: 'PROTOCOL' })
  const empty = Buffer.from([0, 0, 0, 9, 7, 0, 0, 0, 0, 0, 0, 0, 0])
  assert.throws(() => new WireReader(MAX_WIRE_FRAME_BYTES).push(empty), { code: 'PROTOCOL' })
  const keepAlive = new WireReader(MAX_WIRE_FRAME_BYTES).push(Buffer.alloc(4))
  assert.deepEqual(keepAlive, [{ kind: 'frame', body: Buffer.alloc(0) }])
})
