import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { PeershareError } from '../../src/common/errors.ts'
import { PIECE_BYTES, SHA1_BYTES, fileId, pieceHash } from '../../src/protocol/file-meta.ts'
import { hashFile, verifyPiece } from '../../src/peer/hashing.ts'
import { tmpDir } from '../helpers/tmp.ts'

// Deterministic content that differs from piece to piece, so a piece mix-up changes the hashes.
function content (size: number): Buffer {
  const buf = Buffer.allocUnsafe(size)
  for (let i = 0; i < size; i++) buf[i] = (i * 31 + (i >>> 9)) & 0xff
  return buf
}

function sha1 (buf: Buffer): Buffer {
  return createHash('sha1').update(buf).digest()
}

// The reference: whole file in memory, sliced naively. Fine for test sizes.
function referencePieces (buf: Buffer): Buffer {
  const parts: Buffer[] = []
  for (let off = 0; off < buf.length; off += PIECE_BYTES) parts.push(sha1(buf.subarray(off, off + PIECE_BYTES)))
  return Buffer.concat(parts)
}

const SIZES: Array<[string, number]> = [
  ['empty file', 0],
  ['one byte', 1],
  ['exactly one piece', PIECE_BYTES],
  ['one piece plus one byte', PIECE_BYTES + 1],
  ['several pieces with a short last one', 3 * PIECE_BYTES + 12_345],
  ['several whole pieces', 4 * PIECE_BYTES],
]

for (const [what, size] of SIZES) {
  test(`hashes a file: ${what} (${size} bytes) like the reference`, async (t) => {
    const dir = await tmpDir(t)
    const data = content(size)
    const path = join(dir, 'data.bin')
    await writeFile(path, data)
    const progress: number[] = []
    const { meta, mtimeMs } = await hashFile(path, { onProgress: (done, total) => { assert.equal(total, size); progress.push(done) } })
    assert.equal(meta.name, 'data.bin')
    assert.equal(meta.size, size)
    assert.equal(meta.pieceBytes, PIECE_BYTES)
    assert.deepEqual(meta.pieceHashes, referencePieces(data))
    assert.equal(meta.pieceHashes.length, Math.ceil(size / PIECE_BYTES) * SHA1_BYTES)
    assert.deepEqual(meta.fileHash, sha1(data))
    assert.ok(mtimeMs > 0)
    assert.equal(progress.length, Math.ceil(size / PIECE_BYTES))
    if (size > 0) assert.equal(progress.at(-1), size)
    for (let i = 0; i * PIECE_BYTES < size; i++) {
      assert.ok(verifyPiece(data.subarray(i * PIECE_BYTES, (i + 1) * PIECE_BYTES), pieceHash(meta, i)))
    }
  })
}

test('different content of the same size gets a different file id', async (t) => {
  const dir = await tmpDir(t)
  const a = content(PIECE_BYTES + 1)
  const b = Buffer.from(a)
  b[PIECE_BYTES] = (b[PIECE_BYTES]! + 1) & 0xff
  await writeFile(join(dir, 'a'), a)
  await mkdir(join(dir, 'sub'))
  await writeFile(join(dir, 'sub', 'a'), b)
  const ha = await hashFile(join(dir, 'a'))
  const hb = await hashFile(join(dir, 'sub', 'a'))
  assert.notEqual(fileId(ha.meta), fileId(hb.meta))
})

test('verifyPiece rejects a corrupted piece', () => {
  const piece = content(1000)
  const expected = sha1(piece)
  assert.ok(verifyPiece(piece, expected))
  const bad = Buffer.from(piece)
  bad[10] = bad[10]! ^ 1
  assert.equal(verifyPiece(bad, expected), false)
})

test('refuses a missing file, a directory and a name that is not a valid network name', async (t) => {
  const dir = await tmpDir(t)
  await assert.rejects(hashFile(join(dir, 'nope')), (err: unknown) => err instanceof PeershareError && err.code === 'NOT_FOUND' && /no such file/.test(err.message))
  await mkdir(join(dir, 'adir'))
  await assert.rejects(hashFile(join(dir, 'adir')), (err: unknown) => err instanceof PeershareError && err.code === 'BAD_REQUEST' && /not a regular file|directory/.test(err.message))
  const odd = join(dir, 'bad\nname')
  await writeFile(odd, 'x')
  await assert.rejects(hashFile(odd), (err: unknown) => err instanceof PeershareError && err.code === 'BAD_REQUEST' && /cannot share/.test(err.message))
})

test('stops when its signal is aborted', async (t) => {
  const dir = await tmpDir(t)
  const path = join(dir, 'big')
  await writeFile(path, content(3 * PIECE_BYTES))
  const ctl = new AbortController()
  await assert.rejects(hashFile(path, { signal: ctl.signal, onProgress: () => ctl.abort() }), { name: 'AbortError' })
})
