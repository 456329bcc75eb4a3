import assert from 'node:assert/strict'
import { writeFile, utimes } from 'node:fs/promises'
import { test } from 'node:test'
import type { Bitfield } from '../../src/common/bitfield.ts'
import { PIECE_BYTES, pieceCount } from '../../src/protocol/file-meta.ts'
import {
  BLOCK_BYTES, MAX_QUEUED_REQUESTS, RejectReason, encodeCancel, encodeHandshake, encodeRequest,
} from '../../src/protocol/wire.ts'
import type { PieceSource } from '../../src/peer/server.ts'
import { ShareFile } from '../../src/peer/storage.ts'
import { content, handshake, makeFile, rawClient, serve, shareFile } from '../helpers/peer.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { waitFor } from '../helpers/wait.ts'

const SIZE = 3 * PIECE_BYTES + 1000

/** A source whose reads wait until the test opens the gate: lets requests pile up in the queue. */
function gated (source: PieceSource): PieceSource & { open: () => void } {
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  return {
    meta: source.meta,
    have: () => source.have(),
    read: async (piece, offset, length) => { await gate; return await source.read(piece, offset, length) },
    open: () => release(),
  }
}

test('answers a handshake with its own and a full bitfield, then serves exact blocks', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'a.bin', SIZE)
  const server = await serve(t, new Map([[file.id, await shareFile(t, file)]]))
  const c = await rawClient(t, server.address.port)
  const bits = await handshake(c, file.id, pieceCount(SIZE))
  assert.equal(c.handshakes[0]?.fileId, file.id)
  assert.ok(bits.isFull())
  c.conn.batch(() => {
    c.conn.send(encodeRequest(0, BLOCK_BYTES, BLOCK_BYTES))
    c.conn.send(encodeRequest(3, 0, 1000)) // the last, short block of the file
  })
  await waitFor(() => c.pieces.length === 2 || undefined, 'two pieces')
  assert.deepEqual(c.pieces[0]?.data, file.bytes.subarray(BLOCK_BYTES, 2 * BLOCK_BYTES))
  assert.deepEqual(c.pieces[1]?.data, file.bytes.subarray(3 * PIECE_BYTES))
  assert.deepEqual([c.pieces[1]?.piece, c.pieces[1]?.offset], [3, 0])
})

test('closes a connection that asks for an unknown file id', async (t) => {
  const server = await serve(t, new Map())
  const c = await rawClient(t, server.address.port)
  c.conn.send(encodeHandshake('ab'.repeat(32)))
  await waitFor(() => c.closed, 'the close')
  assert.equal(c.bitfields.length, 0)
})

test('closes a connection that sends garbage or a request before the handshake; others are unaffected', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'a.bin', SIZE)
  const server = await serve(t, new Map([[file.id, await shareFile(t, file)]]))
  const good = await rawClient(t, server.address.port)
  await handshake(good, file.id, pieceCount(SIZE))

  const garbage = await rawClient(t, server.address.port)
  garbage.conn.socket.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
  const early = await rawClient(t, server.address.port)
  early.conn.send(encodeRequest(0, 0, BLOCK_BYTES))
  const huge = await rawClient(t, server.address.port)
  huge.conn.socket.write(Buffer.from([0x7f, 0xff, 0xff, 0xff])) // a 2 GiB frame announced
  await waitFor(() => garbage.closed, 'garbage closed')
  await waitFor(() => early.closed, 'early request closed')
  await waitFor(() => huge.closed, 'huge frame closed')

  good.conn.send(encodeRequest(1, 0, BLOCK_BYTES))
  await waitFor(() => good.pieces[0], 'a piece on the good connection')
  assert.deepEqual(good.pieces[0]?.data, file.bytes.subarray(PIECE_BYTES, PIECE_BYTES + BLOCK_BYTES))
  assert.equal(good.closed, undefined)
})

test(`rejects with Busy past ${MAX_QUEUED_REQUESTS} accepted requests, serves the accepted ones`, async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'big.bin', 20 * PIECE_BYTES)
  const source = gated(await shareFile(t, file))
  const server = await serve(t, new Map([[file.id, source]]))
  const c = await rawClient(t, server.address.port)
  await handshake(c, file.id, 20)
  const extra = 5
  c.conn.batch(() => {
    for (let i = 0; i < MAX_QUEUED_REQUESTS + extra; i++) c.conn.send(encodeRequest(i >> 2, (i & 3) * BLOCK_BYTES, BLOCK_BYTES))
  })
  // MAX_QUEUED_REQUESTS accepted in all (some being read, held at the gate; the rest queued)
  await waitFor(() => c.rejects.length === extra || undefined, 'busy rejects')
  assert.ok(c.rejects.every((r) => r.reason === RejectReason.Busy))
  source.open()
  await waitFor(() => c.pieces.length === MAX_QUEUED_REQUESTS || undefined, 'every queued block', 20_000)
  assert.equal(c.closed, undefined)
})

test('rejects a block outside the file with BadRange and keeps serving', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'a.bin', SIZE)
  const server = await serve(t, new Map([[file.id, await shareFile(t, file)]]))
  const c = await rawClient(t, server.address.port)
  await handshake(c, file.id, pieceCount(SIZE))
  c.conn.batch(() => {
    c.conn.send(encodeRequest(4, 0, BLOCK_BYTES)) // no piece 4
    c.conn.send(encodeRequest(3, 0, BLOCK_BYTES)) // the last piece is 1000 bytes
    c.conn.send(encodeRequest(0, 100, BLOCK_BYTES)) // not a block boundary
    c.conn.send(encodeRequest(0, 0, BLOCK_BYTES))
  })
  await waitFor(() => c.pieces[0], 'the good block')
  assert.deepEqual(c.rejects.map((r) => r.reason), [RejectReason.BadRange, RejectReason.BadRange, RejectReason.BadRange])
  assert.equal(c.closed, undefined)
})

test('rejects pieces the source lacks with NotHave, and announces pieces it gains', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'a.bin', SIZE)
  const share = await shareFile(t, file)
  const partial = share.have().clone()
  partial.clear(2)
  const source: PieceSource = { meta: file.meta, have: (): Bitfield => partial, read: (p, o, l) => share.read(p, o, l) }
  const server = await serve(t, new Map([[file.id, source]]))
  const c = await rawClient(t, server.address.port)
  const bits = await handshake(c, file.id, pieceCount(SIZE))
  assert.equal(bits.get(2), false)
  c.conn.send(encodeRequest(2, 0, BLOCK_BYTES))
  await waitFor(() => c.rejects[0], 'a reject')
  assert.equal(c.rejects[0]?.reason, RejectReason.NotHave)
  partial.set(2)
  server.notifyHave(file.id, 2)
  await waitFor(() => c.haves[0], 'a have')
  assert.equal(c.haves[0], 2)
})

test('a cancel removes a queued request', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'a.bin', SIZE)
  const source = gated(await shareFile(t, file))
  const server = await serve(t, new Map([[file.id, source]]))
  const c = await rawClient(t, server.address.port)
  await handshake(c, file.id, pieceCount(SIZE))
  c.conn.batch(() => {
    c.conn.send(encodeRequest(0, 0, BLOCK_BYTES)) // taken at once (held at the gate)
    c.conn.send(encodeRequest(1, 0, BLOCK_BYTES))
    c.conn.send(encodeRequest(2, 0, BLOCK_BYTES))
    c.conn.send(encodeCancel(1, 0, BLOCK_BYTES))
    c.conn.send(encodeRequest(3, 0, 1000))
  })
  await waitFor(() => server.connectionCount() === 1 || undefined, 'the connection')
  source.open()
  await waitFor(() => c.pieces.length === 3 || undefined, 'three pieces')
  assert.deepEqual(c.pieces.map((p) => p.piece), [0, 2, 3])
})

test('a shared file changed on disk: FILE_CHANGED on open, and mid-serving the connection closes and onChanged fires', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'a.bin', SIZE)
  let changed = 0
  const share = await ShareFile.open(file.path, file.meta, file.mtimeMs, () => { changed++ })
  t.after(() => share.close())
  const server = await serve(t, new Map([[file.id, share]]))
  const c = await rawClient(t, server.address.port)
  await handshake(c, file.id, pieceCount(SIZE))
  await writeFile(file.path, content(SIZE, 99)) // new bytes and a new mtime
  await utimes(file.path, new Date(), new Date(file.mtimeMs + 5_000))
  await assert.rejects(ShareFile.open(file.path, file.meta, file.mtimeMs), { code: 'FILE_CHANGED' })
  // the share rechecks at most every SHARE_RECHECK_MS: keep asking until it notices
  await waitFor(() => {
    if (c.closed !== undefined) return true
    c.conn.send(encodeRequest(0, 0, BLOCK_BYTES))
    return undefined
  }, 'the connection to close', 5_000)
  assert.equal(changed, 1)
})

test('the upload limit paces what all connections send', async (t) => {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'big.bin', 8 * PIECE_BYTES)
  const rate = 8 * 1024 * 1024 // 8 MiB/s: 4 MiB take at least ~0.5 s
  const server = await serve(t, new Map([[file.id, await shareFile(t, file)]]), { uploadLimit: rate })
  const clients = [await rawClient(t, server.address.port), await rawClient(t, server.address.port)]
  for (const c of clients) await handshake(c, file.id, 8)
  const start = performance.now()
  clients.forEach((c, k) => c.conn.batch(() => {
    for (let i = 0; i < 16; i++) c.conn.send(encodeRequest(k * 4 + (i >> 2), (i & 3) * BLOCK_BYTES, BLOCK_BYTES))
  }))
  await waitFor(() => clients.every((c) => c.pieces.length === 16) || undefined, 'every block')
  const seconds = (performance.now() - start) / 1000
  const bytes = 32 * BLOCK_BYTES
  assert.ok(seconds >= (bytes - rate * 0.1) / rate * 0.95, `${bytes} bytes in ${seconds.toFixed(2)} s is faster than ${rate} B/s`)
})
