import assert from 'node:assert/strict'
import { readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { PIECE_BYTES, fileId } from '../../src/protocol/file-meta.ts'
import type { FileMeta } from '../../src/protocol/file-meta.ts'
import { PieceStore } from '../../src/peer/storage.ts'
import { content, makeFile } from '../helpers/peer.ts'
import { defer } from '../helpers/cleanup.ts'
import { tmpDir } from '../helpers/tmp.ts'

const SIZE = 3 * PIECE_BYTES + 777

function pieceOf (bytes: Buffer, i: number): Buffer {
  return bytes.subarray(i * PIECE_BYTES, (i + 1) * PIECE_BYTES)
}

async function fill (store: PieceStore, bytes: Buffer, pieces: number[]): Promise<void> {
  for (const i of pieces) {
    await store.writePiece(i, [pieceOf(bytes, i)])
    store.markVerified(i)
  }
}

test('creates a pre-sized .part and a resume record; blocks round-trip; finish renames and cleans up', async (t) => {
  const dir = await tmpDir(t)
  const src = await makeFile(dir, 'src.bin', SIZE)
  const target = join(dir, 'out.bin')
  const store = await PieceStore.open({ target, meta: src.meta, fileId: src.id })
  assert.equal((await stat(`${target}.part`)).size, SIZE)
  assert.equal(JSON.parse(await readFile(`${target}.part.resume`, 'utf8')).fileId, src.id)
  // blocks of one piece as separate buffers (writev), the last piece as a single short block
  await store.writePiece(0, [src.bytes.subarray(0, 1000), src.bytes.subarray(1000, PIECE_BYTES)])
  await store.writeBlock(3, 0, src.bytes.subarray(3 * PIECE_BYTES))
  assert.deepEqual(await store.readBlock(0, 500, 2000), src.bytes.subarray(500, 2500))
  await fill(store, src.bytes, [1, 2])
  for (const i of [0, 3]) store.markVerified(i)
  assert.ok(store.have().isFull())
  assert.deepEqual(await store.finish(), { ok: true })
  assert.deepEqual(await readFile(target), src.bytes)
  assert.deepEqual((await readdir(dir)).sort(), ['out.bin', 'src.bin'])
})

test('a reopened download trusts the verified pieces of its resume record', async (t) => {
  const dir = await tmpDir(t)
  const src = await makeFile(dir, 'src.bin', SIZE)
  const target = join(dir, 'out.bin')
  const first = await PieceStore.open({ target, meta: src.meta, fileId: src.id })
  await fill(first, src.bytes, [0, 2])
  await first.close()
  const second = await PieceStore.open({ target, meta: src.meta, fileId: src.id })
  t.after(() => second.close())
  assert.equal(second.resumed, 2)
  assert.deepEqual([0, 1, 2, 3].map((i) => second.have().get(i)), [true, false, true, false])
  assert.deepEqual(await second.readBlock(2, 0, 100), src.bytes.subarray(2 * PIECE_BYTES, 2 * PIECE_BYTES + 100))
})

test('refuses an existing target, a foreign .part, and a .part of another file (EXISTS)', async (t) => {
  const dir = await tmpDir(t)
  const src = await makeFile(dir, 'src.bin', SIZE)
  const other = await makeFile(dir, 'other.bin', SIZE, 7)
  await assert.rejects(PieceStore.open({ target: src.path, meta: src.meta, fileId: src.id }), { code: 'EXISTS' })
  const foreign = join(dir, 'foreign.bin')
  await writeFile(`${foreign}.part`, 'somebody else’s bytes')
  await assert.rejects(PieceStore.open({ target: foreign, meta: src.meta, fileId: src.id }), { code: 'EXISTS' })
  assert.equal(await readFile(`${foreign}.part`, 'utf8'), 'somebody else’s bytes')
  const target = join(dir, 'out.bin')
  const store = await PieceStore.open({ target, meta: other.meta, fileId: other.id })
  await store.close()
  await assert.rejects(PieceStore.open({ target, meta: src.meta, fileId: src.id }), { code: 'EXISTS' })
})

test('an unreadable resume record starts the download over', async (t) => {
  const dir = await tmpDir(t)
  const src = await makeFile(dir, 'src.bin', SIZE)
  const target = join(dir, 'out.bin')
  const first = await PieceStore.open({ target, meta: src.meta, fileId: src.id })
  await fill(first, src.bytes, [0])
  await first.close()
  await writeFile(`${target}.part.resume`, '{"v":1,"fileId":') // torn write
  const second = await PieceStore.open({ target, meta: src.meta, fileId: src.id })
  t.after(() => second.close())
  assert.equal(second.have().count(), 0)
})

test('finish finds pieces whose bytes on disk are wrong and hands them back for refetching', async (t) => {
  const dir = await tmpDir(t)
  const src = await makeFile(dir, 'src.bin', SIZE)
  const target = join(dir, 'out.bin')
  const store = await PieceStore.open({ target, meta: src.meta, fileId: src.id })
  defer(t, () => store.close())
  await fill(store, src.bytes, [0, 2, 3])
  await store.writePiece(1, [content(PIECE_BYTES, 5)]) // marked verified, but wrong (a lost write)
  store.markVerified(1)
  assert.deepEqual(await store.finish(), { ok: false, bad: [1] })
  assert.equal(store.have().get(1), false)
  await assert.rejects(stat(target), { code: 'ENOENT' })
  await fill(store, src.bytes, [1])
  assert.deepEqual(await store.finish(), { ok: true })
  assert.deepEqual(await readFile(target), src.bytes)
})

test('a whole-file hash mismatch with good pieces is HASH_MISMATCH and never produces the target', async (t) => {
  const dir = await tmpDir(t)
  const src = await makeFile(dir, 'src.bin', SIZE)
  const meta: FileMeta = { ...src.meta, fileHash: Buffer.alloc(20, 1) }
  const target = join(dir, 'out.bin')
  const store = await PieceStore.open({ target, meta, fileId: fileId(meta) })
  await fill(store, src.bytes, [0, 1, 2, 3])
  await assert.rejects(store.finish(), { code: 'HASH_MISMATCH' })
  await assert.rejects(stat(target), { code: 'ENOENT' })
  await store.discard()
  assert.deepEqual(await readdir(dir), ['src.bin'])
})

test('a target that appears during the download is not replaced', async (t) => {
  const dir = await tmpDir(t)
  const src = await makeFile(dir, 'src.bin', PIECE_BYTES)
  const target = join(dir, 'out.bin')
  const store = await PieceStore.open({ target, meta: src.meta, fileId: src.id })
  await fill(store, src.bytes, [0])
  await writeFile(target, 'mine')
  await assert.rejects(store.finish(), { code: 'EXISTS' })
  assert.equal(await readFile(target, 'utf8'), 'mine')
  assert.equal((await stat(`${target}.part`)).size, PIECE_BYTES)
})

test('an empty file finishes at once', async (t) => {
  const dir = await tmpDir(t)
  const src = await makeFile(dir, 'empty.bin', 0)
  const target = join(dir, 'out.bin')
  const store = await PieceStore.open({ target, meta: src.meta, fileId: src.id })
  assert.ok(store.have().isFull())
  assert.deepEqual(await store.finish(), { ok: true })
  assert.equal((await stat(target)).size, 0)
})
