// PieceVerifier + piece-worker.ts: pieces hashed and written in a worker thread, buffers pooled, the
// whole-file hash computed along the way (resumed pieces read back from the .part).

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { constants } from 'node:fs'
import { open, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import { Bitfield } from '../../src/common/bitfield.ts'
import { PIECE_BYTES, pieceCount } from '../../src/protocol/file-meta.ts'
import type { FileMeta } from '../../src/protocol/file-meta.ts'
import { PieceStore } from '../../src/peer/storage.ts'
import { PieceVerifier, SLAB_PIECES } from '../../src/peer/verifier.ts'
import { makeFile } from '../helpers/peer.ts'
import { defer } from '../helpers/cleanup.ts'
import { tmpDir } from '../helpers/tmp.ts'

const SIZE = 5 * PIECE_BYTES + 999

function piece (bytes: Buffer, i: number): Buffer {
  return bytes.subarray(i * PIECE_BYTES, Math.min(bytes.length, (i + 1) * PIECE_BYTES))
}

/** Whether this directory's file system takes O_DIRECT (tmpfs does not). */
async function takesDirectIo (dir: string): Promise<boolean> {
  const path = join(dir, 'probe')
  await writeFile(path, '')
  try {
    await (await open(path, constants.O_WRONLY | constants.O_DIRECT)).close()
    return true
  } catch {
    return false
  }
}

for (const directIo of [true, false]) {
  test(`verifies and writes good pieces, refuses bad ones, reuses buffers and yields the whole-file hash (${directIo ? 'direct' : 'buffered'} writes)`, async (t) => {
    const dir = await tmpDir(t)
    const src = await makeFile(dir, 'src.bin', SIZE)
    const bytes = await readFile(src.path)
    const store = await PieceStore.open({ target: join(dir, 'out.bin'), meta: src.meta, fileId: src.id, directIo })
    defer(t, () => store.close())
    assert.equal(store.directFd !== undefined, directIo && await takesDirectIo(dir))
    await checkVerifier(t, store, src.meta, bytes)
  })
}

async function checkVerifier (t: TestContext, store: PieceStore, meta: FileMeta, bytes: Buffer): Promise<void> {
  const dir = dirname(store.target)
  const v = new PieceVerifier({ meta, fd: store.fd, directFd: store.directFd, onDisk: store.have() })
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
  assert.equal(v.pooled, v.capacity, 'every buffer is back in the pool')
  assert.ok(v.capacity <= SLAB_PIECES, `one slab covers ${order.length} pieces in flight, not ${v.capacity} buffers`)
  for (const i of order) store.markVerified(i)
  assert.deepEqual(await store.finish(await v.wholeDigest()), { ok: true })
  assert.deepEqual(await readFile(join(dir, 'out.bin')), bytes)
}

test('pieces far ahead of the whole-file hash (past the hold) go through the page cache and are read back', async (t) => {
  const dir = await tmpDir(t)
  const src = await makeFile(dir, 'src.bin', SIZE)
  const bytes = await readFile(src.path)
  const store = await PieceStore.open({ target: join(dir, 'out.bin'), meta: src.meta, fileId: src.id })
  defer(t, () => store.close())
  // hold 1: with piece 0 missing, pieces 1..4 are at least one ahead: 1 is held, 2-4 written buffered
  const v = new PieceVerifier({ meta: src.meta, fd: store.fd, directFd: store.directFd, onDisk: store.have(), hold: 1 })
  t.after(() => v.close())
  for (const i of [4, 3, 2, 1, 5, 0]) {
    const buf = v.acquire()
    piece(bytes, i).copy(buf)
    assert.equal(await v.submit(i, buf), 'ok')
  }
  assert.deepEqual(await v.wholeDigest(), createHash('sha1').update(bytes).digest())
  assert.equal(v.pooled, v.capacity, 'every buffer is back in the pool')
  for (let i = 0; i < 6; i++) store.markVerified(i)
  assert.deepEqual(await store.finish(await v.wholeDigest()), { ok: true })
  assert.deepEqual(await readFile(join(dir, 'out.bin')), bytes)
})

test('submit refuses a buffer that is not from acquire(), or one already submitted', async (t) => {
  const dir = await tmpDir(t)
  const src = await makeFile(dir, 'src.bin', SIZE)
  const store = await PieceStore.open({ target: join(dir, 'out.bin'), meta: src.meta, fileId: src.id })
  defer(t, () => store.close())
  const v = new PieceVerifier({ meta: src.meta, fd: store.fd, directFd: store.directFd, onDisk: store.have() })
  t.after(() => v.close())
  await assert.rejects(v.submit(0, Buffer.alloc(PIECE_BYTES)), { code: 'INTERNAL' })
  const buf = v.acquire()
  ;(await readFile(src.path)).copy(buf, 0, 0, PIECE_BYTES)
  assert.equal(await v.submit(0, buf), 'ok')
  await assert.rejects(v.submit(1, buf), { code: 'INTERNAL' }) // back in the pool: not lent any more
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
  defer(t, () => store.close())
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
  defer(t, () => store.close())
  const v = new PieceVerifier({ meta: src.meta, fd: store.fd, onDisk: new Bitfield(pieceCount(0)) })
  assert.deepEqual(await v.wholeDigest(), createHash('sha1').digest())
  await v.close()
  await assert.rejects(v.submit(0, v.acquire()), { code: 'UNAVAILABLE' })
})
