import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { DownloadRecords, MAX_FINISHED_KEPT } from '../../src/client/download-records.ts'
import type { DownloadRecord } from '../../src/client/download-records.ts'
import { PIECE_BYTES, fileId } from '../../src/protocol/file-meta.ts'
import type { FileMeta } from '../../src/protocol/file-meta.ts'
import { tmpDir } from '../helpers/tmp.ts'

const sha1 = (s: string): Buffer => createHash('sha1').update(s).digest()
const META: FileMeta = { name: 'movie.bin', size: PIECE_BYTES + 5, pieceBytes: PIECE_BYTES, pieceHashes: Buffer.concat([sha1('a'), sha1('b')]), fileHash: sha1('ab') }

function record (target: string, over: Partial<DownloadRecord> = {}): DownloadRecord {
  return { userId: 'bob', groupId: 'g1', fileId: fileId(META), target, meta: META, state: 'running', startedAt: 1, ...over }
}

test('records survive a reopen, metadata included; a target has one record', async (t) => {
  const dir = await tmpDir(t)
  const file = join(dir, 'downloads.json')
  const book = await DownloadRecords.open(file)
  await book.put(record('/d/a'))
  const b = record('/d/b')
  await book.put(b)
  await book.update(b, { state: 'failed', finishedAt: 5, error: { code: 'NOT_FOUND', message: 'gone' }, final: { piecesDone: 1, bytesDone: 9, peers: [{ addr: '127.0.0.1:1', userId: 'al', pieces: 1, connected: false }] } })
  await book.put(record('/d/a', { userId: 'carol' })) // same target: replaces
  const again = await DownloadRecords.open(file)
  assert.deepEqual(again.of('bob').map((r) => [r.target, r.state, r.error?.code]), [['/d/b', 'failed', 'NOT_FOUND']])
  assert.deepEqual(again.of('carol')[0]!.meta, META)
  assert.deepEqual(again.of('bob')[0]!.final?.peers, [{ addr: '127.0.0.1:1', userId: 'al', pieces: 1, connected: false }])
  assert.equal((await readFile(file, 'utf8')).includes('"pieceHashes": "'), true) // base64, not a byte array
})

test('keeps at most MAX_FINISHED_KEPT finished downloads per user, dropping the oldest', async (t) => {
  const book = await DownloadRecords.open(join(await tmpDir(t), 'downloads.json'))
  for (let i = 0; i < MAX_FINISHED_KEPT + 3; i++) await book.put(record(`/d/${i}`, { state: 'completed', finishedAt: i }))
  await book.put(record('/d/live'))
  const mine = book.of('bob')
  assert.equal(mine.filter((r) => r.state === 'completed').length, MAX_FINISHED_KEPT)
  assert.equal(mine.some((r) => r.target === '/d/0'), false)
  assert.equal(mine.some((r) => r.target === '/d/live'), true)
})

test('a damaged downloads.json is set aside, not fatal', async (t) => {
  const dir = await tmpDir(t)
  const file = join(dir, 'downloads.json')
  for (const bad of ['{nope', JSON.stringify({ version: 1, downloads: [{ target: '/x', fileId: 'zz', state: 'running', startedAt: 1 }] }),
    JSON.stringify({ version: 1, downloads: [{ ...record('/x'), userId: '../evil', meta: {} }] })]) {
    await writeFile(file, bad)
    const book = await DownloadRecords.open(file)
    assert.deepEqual(book.all(), [])
  }
})
