import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { Bitfield } from '../../src/common/bitfield.ts'
import { SourceTable } from '../../src/client/sources.ts'
import type { ShareSpec } from '../../src/client/sources.ts'
import { hashFile } from '../../src/peer/hashing.ts'
import type { PieceSource } from '../../src/peer/server.ts'
import { fileId } from '../../src/protocol/file-meta.ts'
import { tmpDir } from '../helpers/tmp.ts'

async function shared (dir: string, name: string, bytes: Buffer): Promise<ShareSpec> {
  const path = join(dir, name)
  await writeFile(path, bytes)
  const { meta, mtimeMs } = await hashFile(path)
  return { fileId: fileId(meta), path, meta, mtimeMs }
}

test('serves a shared file lazily, with every piece', async (t) => {
  const dir = await tmpDir(t)
  const bytes = Buffer.from('x'.repeat(600 * 1024))
  const spec = await shared(dir, 'a.bin', bytes)
  const table = new SourceTable(() => assert.fail('unchanged file reported as changed'))
  t.after(() => table.close())
  table.addShare(spec)
  const src = table.find(spec.fileId)!
  assert.equal(src.have().count(), 2)
  assert.deepEqual(await src.read(1, 0, 10), bytes.subarray(512 * 1024, 512 * 1024 + 10))
  assert.equal(table.find('0'.repeat(64)), undefined)
  table.removeShare(spec.fileId)
  assert.equal(table.find(spec.fileId), undefined)
})

test('a changed or vanished file: FILE_CHANGED, reported once, no longer served', async (t) => {
  const dir = await tmpDir(t)
  const changed: ShareSpec[] = []
  const table = new SourceTable((s) => changed.push(s))
  t.after(() => table.close())
  const a = await shared(dir, 'a.bin', Buffer.from('hello'))
  const b = await shared(dir, 'b.bin', Buffer.from('world!'))
  table.addShare(a)
  table.addShare(b)
  await writeFile(a.path, 'HELLO, longer now')
  await rm(b.path)
  for (const spec of [a, b]) {
    const src = table.find(spec.fileId)!
    await assert.rejects(src.read(0, 0, 5), { code: 'FILE_CHANGED' })
    src.onChanged!() // the server calls it once per connection that hit the change
    src.onChanged!()
    assert.equal(table.find(spec.fileId), undefined)
  }
  assert.deepEqual(changed.map((s) => s.path), [a.path, b.path])
})

test('a share of a file wins over a download of it; downloads come and go by identity', () => {
  const table = new SourceTable(() => {})
  const id = 'a'.repeat(64)
  const meta = { name: 'x', size: 1, pieceBytes: 512 * 1024, pieceHashes: createHash('sha1').update('x').digest(), fileHash: createHash('sha1').update('x').digest() }
  const dl: PieceSource = { meta, have: () => new Bitfield(1), read: async () => Buffer.alloc(1) }
  const other: PieceSource = { ...dl }
  table.addDownload(id, dl)
  assert.equal(table.find(id), dl)
  table.removeDownload(id, other) // not the registered one: kept
  assert.equal(table.find(id), dl)
  table.addShare({ fileId: id, path: '/nonexistent', meta, mtimeMs: 1 })
  assert.notEqual(table.find(id), dl)
  table.removeShare(id)
  table.removeDownload(id, dl)
  assert.equal(table.find(id), undefined)
})
