// PieceVerifier + piece-worker.ts: pieces hashed and written in a worker thread, buffers pooled, the
// whole-file hash computed along the way (resumed pieces read back from the .part).

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { Bitfield } from '../../src/common/bitfield.ts'
import { PIECE_BYTES, pieceCount } from '../../src/protocol/file-meta.ts'
import { PieceStore } from '../../src/peer/storage.ts'
import { PieceVerifier } from '../../src/peer/verifier.ts'
import { makeFile } from '../helpers/peer.ts'
import { tmpDir } from '../helpers/tmp.ts'

const SIZE = 5 * PIECE_BYTES + 999

function piece (bytes: Buffer, i: number): Buffer {
  return bytes.subarray(i * PIECE_BYTES, Math.min(bytes.length, (i + 1) * PIECE_BYTES))
}

test('verifies and writes good pieces, refuses bad ones, reuses buffers and yields the whole-file hash', async (t) => {
  const dir = await tmpDir(t)
  const src = await makeFile(dir, 'src.bin', SIZE)
  const bytes = await readFile(src.path)
  const store = await PieceStore.open({ target: join(dir, 'out.bin'), meta: src.meta, fileId: src.id })
  t.after(() => store.close())
  const v = new PieceVerifier({ meta: src.meta, fd: store.fd, onDisk: store.have() })
  t.after(() => v.close())
  const submit = (i: number, data: Buffer): Promise<string> => {
    const buf = v.acquire()
    data.copy(buf)
    return v.submit(i, buf)
  }
  const wrong = Buffer.from(piece(bytes, 2))
  wrong[10]! ^= 1
  assert.equal(await submit(2, wrong), 'bad')
  const order = [3, 1, 5, 0, 2, 4] // out of order: 3, 1 and 5 are held for the whole-file hash
  assert.deepEqual(await Promise.all(order.map((i) => submit(i, piece(bytes, i)))), order.map(() => 'ok'))
  assert.deepEqual(await v.wholeDigest(), createHash('sha1').update(bytes).digest())
  assert.ok(v.pooled >= 1 && v.pooled <= order.length + 1, `pool holds ${v.pooled} buffers`)
  for (const i of order) store.markVerified(i)
  assert.deepEqual(await store.finish(await v.wholeDigest()), { ok: true })
  assert.deepEqual(await readFile(join(dir, 'out.bin')), bytes)
})

test('after a resume the pieces already on disk are read back for the whole-file hash', async (t) => {
  const dir = await tmpDir(t)
  const src = await makeFile(dir, 'src.bin', SIZE)
  const bytes = await readFile(src.path)
  const target = join(dir, 'out.bin')
  const first = await PieceStore.open({ target, meta: src.meta, fileId: src.id })
  for (const i of [0, 1, 4]) {
    await first.writePiece(i, [piece(bytes, i)])
    first.markVerified(i)
  }
  await first.close()
  const store = await PieceStore.open({ target, meta: src.meta, fileId: src.id })
  t.after(() => store.close())
  const v = new PieceVerifier({ meta: src.meta, fd: store.fd, onDisk: store.have() })
  t.after(() => v.close())
  for (const i of [5, 3, 2]) {
    const buf = v.acquire()
    piece(bytes, i).copy(buf)
    assert.equal(await v.submit(i, buf), 'ok')
  }
  assert.deepEqual(await v.wholeDigest(), createHash('sha1').update(bytes).digest())
})

test('an empty file has its whole-file hash at once; close rejects what is still pending', async (t) => {
  const dir = await tmpDir(t)
  const src = await makeFile(dir, 'empty.bin', 0)
  const store = await PieceStore.open({ target: join(dir, 'out.bin'), meta: src.meta, fileId: src.id })
  t.after(() => store.close())
  const v = new PieceVerifier({ meta: src.meta, fd: store.fd, onDisk: new Bitfield(pieceCount(0)) })
  assert.deepEqual(await v.wholeDigest(), createHash('sha1').digest())
  await v.close()
  await assert.rejects(v.submit(0, v.acquire()), { code: 'UNAVAILABLE' })
})
