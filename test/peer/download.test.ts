import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { copyFile, open, readFile, readdir, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import type { Bitfield } from '../../src/common/bitfield.ts'
import { PIECE_BYTES, encodeFileMeta, fileId, pieceCount } from '../../src/protocol/file-meta.ts'
import type { FileMeta } from '../../src/protocol/file-meta.ts'
import { BLOCK_BYTES, encodeRequest } from '../../src/protocol/wire.ts'
import { Download } from '../../src/peer/download.ts'
import type { DownloadOptions, PeerLocation } from '../../src/peer/download.ts'
import type { PieceSource } from '../../src/peer/server.ts'
import { ShareFile } from '../../src/peer/storage.ts'
import { content, counting, handshake, makeFile, rawClient, serve, shareFile } from '../helpers/peer.ts'
import type { TestFile } from '../helpers/peer.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { waitFor } from '../helpers/wait.ts'

const SIZE = 40 * PIECE_BYTES + 12_345 // 41 pieces, a short last one

async function download (t: TestContext, file: { meta: FileMeta, id: string }, target: string,
  locate: () => Promise<PeerLocation[]>, extra: Partial<DownloadOptions> = {}): Promise<Download> {
  const d = await Download.open({ meta: file.meta, fileId: file.id, groupId: 'g1', target, locate, ...extra })
  t.after(() => d.stop())
  return d
}

function at (...addrs: string[]): () => Promise<PeerLocation[]> {
  return async () => addrs.map((a, i) => ({ peerAddr: a, userId: `u${i}` }))
}

async function sharers (t: TestContext, file: TestFile, n: number): Promise<Array<Awaited<ReturnType<typeof serve>>>> {
  const out = []
  for (let i = 0; i < n; i++) out.push(await serve(t, new Map([[file.id, await shareFile(t, file)]])))
  return out
}

test('downloads from one sharer: byte-identical, no .part or resume record left', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'a.bin', SIZE)
  const [s] = await sharers(t, file, 1)
  const target = join(dir, 'out.bin')
  const d = await download(t, file, target, at(s!.addr))
  const pieces: number[] = []
  d.on('piece', (p) => pieces.push(p))
  assert.equal(await d.run(), 'completed')
  assert.deepEqual(await readFile(target), file.bytes)
  assert.deepEqual((await readdir(dir)).sort(), ['a.bin', 'out.bin'])
  assert.equal(pieces.length, pieceCount(SIZE))
  const p = d.progress()
  assert.equal(p.state, 'completed')
  assert.equal(p.piecesDone, p.pieces)
  assert.equal(p.bytesDone, SIZE)
  assert.equal(p.peers[0]?.pieces, pieceCount(SIZE))
})

test('downloads from three sharers at once: pieces come from every one of them', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'a.bin', SIZE)
  const servers = await sharers(t, file, 3)
  const target = join(dir, 'out.bin')
  const d = await download(t, file, target, at(...servers.map((s) => s.addr)))
  assert.equal(await d.run(), 'completed')
  assert.deepEqual(await readFile(target), file.bytes)
  const given = d.progress().peers.map((p) => p.pieces)
  assert.equal(given.length, 3)
  assert.ok(given.every((n) => n > 0), `pieces per peer: ${given.join(', ')}`)
  assert.equal(given.reduce((a, b) => a + b, 0), pieceCount(SIZE))
})

test('a sharer that goes away mid-download costs nothing: the others finish it', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'a.bin', SIZE)
  const servers = await sharers(t, file, 3)
  const target = join(dir, 'out.bin')
  const d = await download(t, file, target, at(...servers.map((s) => s.addr)))
  let closed = false
  d.on('piece', () => {
    if (closed) return
    closed = true
    void servers[0]!.close()
  })
  assert.equal(await d.run(), 'completed')
  assert.deepEqual(await readFile(target), file.bytes)
  assert.equal(d.progress().peers.find((p) => p.addr === servers[0]!.addr)?.connected, false)
})

test('a sharer whose file was overwritten in place (same size, mtime restored) is dropped; the file is still right', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'a.bin', SIZE)
  const good = await sharers(t, file, 2)
  // the bad copy: other bytes written in place, then the mtime put back, so size+mtime checks pass
  const badPath = join(dir, 'bad.bin')
  await copyFile(file.path, badPath)
  const fh = await open(badPath, 'r+')
  await fh.write(content(SIZE, 4242), 0, SIZE, 0)
  await fh.close()
  const before = await stat(file.path)
  await utimes(badPath, before.atime, before.mtime)
  const badShare = await ShareFile.open(badPath, file.meta, (await stat(badPath)).mtimeMs)
  t.after(() => badShare.close())
  const bad = counting(badShare)
  const badServer = await serve(t, new Map<string, PieceSource>([[file.id, bad]]))
  const target = join(dir, 'out.bin')
  const d = await download(t, file, target, at(badServer.addr, ...good.map((s) => s.addr)))
  assert.equal(await d.run(), 'completed')
  assert.deepEqual(await readFile(target), file.bytes)
  const badPeer = d.progress().peers.find((p) => p.addr === badServer.addr)
  assert.equal(badPeer?.connected, false)
  assert.equal(badPeer?.pieces, 0)
  assert.ok(bad.reads > 0, 'the bad sharer was asked for blocks')
})

/** A source that records which pieces were read (the server reads whole pieces, sometimes twice). */
function recording (source: PieceSource): PieceSource & { pieces: Set<number> } {
  const pieces = new Set<number>()
  return { meta: source.meta, pieces, have: () => source.have(), read: async (p, o, l) => { pieces.add(p); return await source.read(p, o, l) } }
}

function assertReadExactlyMissing (read: Set<number>, resumed: Bitfield): void {
  const missing: number[] = []
  for (let i = 0; i < resumed.size; i++) if (!resumed.get(i)) missing.push(i)
  assert.deepEqual([...read].sort((a, b) => a - b), missing, 'exactly the missing pieces are fetched')
}

test('resumes after a stop from the verified pieces, without fetching them again', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'a.bin', SIZE)
  const first = counting(await shareFile(t, file))
  // slow enough that the stop lands mid-download
  const s1 = await serve(t, new Map<string, PieceSource>([[file.id, first]]), { uploadLimit: 8 * 1024 * 1024 })
  const target = join(dir, 'out.bin')
  const d1 = await download(t, file, target, at(s1.addr))
  d1.on('piece', () => { if (d1.progress().piecesDone >= 10) void d1.stop() })
  assert.equal(await d1.run(), 'stopped')
  await s1.close()
  assert.ok((await stat(`${target}.part`)).size === SIZE)

  const second = recording(await shareFile(t, file))
  const s2 = await serve(t, new Map<string, PieceSource>([[file.id, second]]))
  const d2 = await download(t, file, target, at(s2.addr))
  const resumed = d2.have().clone()
  assert.ok(resumed.count() >= 10, `resumed ${resumed.count()} pieces`)
  assert.equal(await d2.run(), 'completed')
  assert.deepEqual(await readFile(target), file.bytes)
  assertReadExactlyMissing(second.pieces, resumed)
})

test('resumes after kill -9 of the downloading process, without fetching verified pieces again', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'a.bin', SIZE)
  const metaPath = join(dir, 'meta.json')
  await writeFile(metaPath, JSON.stringify(encodeFileMeta(file.meta)))
  const s1 = await serve(t, new Map<string, PieceSource>([[file.id, await shareFile(t, file)]]), { uploadLimit: 4 * 1024 * 1024 })
  const target = join(dir, 'out.bin')
  const child = spawn(process.execPath, [fileURLToPath(new URL('../helpers/download-child.ts', import.meta.url)), metaPath, target, s1.addr],
    { stdio: ['ignore', 'pipe', 'inherit'] })
  t.after(() => { child.kill('SIGKILL') })
  const exited = once(child, 'exit')
  let done = 0
  createInterface({ input: child.stdout }).on('line', (line) => { done = (JSON.parse(line) as { piecesDone: number }).piecesDone })
  await waitFor(() => done >= 12 || undefined, 'a dozen verified pieces in the child')
  child.kill('SIGKILL')
  await exited
  await s1.close()

  const second = recording(await shareFile(t, file))
  const s2 = await serve(t, new Map<string, PieceSource>([[file.id, second]]))
  const d = await download(t, file, target, at(s2.addr))
  const resumed = d.have().clone()
  // the resume record lags by at most RESUME_SAVE_MS: most, not necessarily all, of the dozen survive
  assert.ok(resumed.count() > 0 && resumed.count() < pieceCount(SIZE), `resumed ${resumed.count()} pieces`)
  assert.equal(await d.run(), 'completed')
  assert.deepEqual(await readFile(target), file.bytes)
  assertReadExactlyMissing(second.pieces, resumed)
})

test('refuses a target that exists', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'a.bin', PIECE_BYTES)
  await assert.rejects(Download.open({ meta: file.meta, fileId: file.id, groupId: 'g1', target: file.path, locate: at() }), { code: 'EXISTS' })
})

test('a whole-file hash mismatch fails with HASH_MISMATCH and leaves nothing under the final name', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'a.bin', 4 * PIECE_BYTES)
  const meta: FileMeta = { ...file.meta, fileHash: Buffer.alloc(20, 7) } // pieces right, whole file "wrong"
  const id = fileId(meta)
  const share = await shareFile(t, file)
  const source: PieceSource = { meta, have: () => share.have(), read: (p, o, l) => share.read(p, o, l) }
  const s = await serve(t, new Map([[id, source]]))
  const target = join(dir, 'out.bin')
  const d = await download(t, { meta, id }, target, at(s.addr))
  await assert.rejects(d.run(), { code: 'HASH_MISMATCH' })
  assert.equal(d.progress().state, 'failed')
  assert.deepEqual(await readdir(dir), ['a.bin'])
})

test('with no peers it waits, then resumes when a sharer appears; with none for too long it fails', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'a.bin', 8 * PIECE_BYTES)
  let holders: string[] = []
  const d = await download(t, file, join(dir, 'out.bin'), async () => at(...holders)(), { waitingRelocateMs: 50 })
  const result = d.run()
  await waitFor(() => d.progress().state === 'waiting' || undefined, 'waiting')
  const [s] = await sharers(t, file, 1)
  holders = [s!.addr]
  assert.equal(await result, 'completed')
  assert.deepEqual(await readFile(join(dir, 'out.bin')), file.bytes)

  const lonely = await download(t, file, join(dir, 'out2.bin'), at('127.0.0.1:1'), { waitingRelocateMs: 50, noPeerTimeoutMs: 300 })
  await assert.rejects(lonely.run(), { code: 'TIMEOUT' })
  assert.equal(lonely.progress().error?.code, 'TIMEOUT')
})

test('a downloader serves verified pieces to a third party before it has finished', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'a.bin', SIZE)
  const [s] = await sharers(t, file, 1)
  s!.setUploadLimit(4 * 1024 * 1024) // ~5 s for the whole file: plenty of time in the middle
  const d = await download(t, file, join(dir, 'out.bin'), at(s!.addr))
  const ours = await serve(t, new Map([[file.id, d.source]]))
  d.on('piece', (piece) => ours.notifyHave(file.id, piece))
  const result = d.run()
  const first = await waitFor(() => {
    let found: number | undefined
    d.have().forEachSet((i) => { found ??= i })
    return found
  }, 'a verified piece')
  const c = await rawClient(t, ours.address.port)
  const bits = await handshake(c, file.id, pieceCount(SIZE))
  assert.ok(bits.get(first))
  c.conn.send(encodeRequest(first, BLOCK_BYTES, BLOCK_BYTES))
  const got = await waitFor(() => c.pieces[0], 'the block')
  assert.deepEqual(got.data, file.bytes.subarray(first * PIECE_BYTES + BLOCK_BYTES, first * PIECE_BYTES + 2 * BLOCK_BYTES))
  assert.notEqual(d.progress().state, 'completed')
  await waitFor(() => c.haves.length > 0 || undefined, 'a have announced as more pieces arrive')
  s!.setUploadLimit(0)
  assert.equal(await result, 'completed')
})
