// Peer-layer test helpers: files with known content, their metadata, peer servers over them, and a raw
// wire client that records what a server sends.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { Bitfield } from '../../src/common/bitfield.ts'
import type { PeershareError } from '../../src/common/errors.ts'
import { fileId } from '../../src/protocol/file-meta.ts'
import type { FileMeta } from '../../src/protocol/file-meta.ts'
import { encodeHandshake } from '../../src/protocol/wire.ts'
import type { WireHandshake, WirePiece, WireReject } from '../../src/protocol/wire.ts'
import { dial } from '../../src/security/transport.ts'
import { PeerConnection } from '../../src/peer/connection.ts'
import { hashFile } from '../../src/peer/hashing.ts'
import { startPeerServer } from '../../src/peer/server.ts'
import type { PeerServer, PeerServerOptions, PieceSource } from '../../src/peer/server.ts'
import { ShareFile } from '../../src/peer/storage.ts'
import { waitFor } from './wait.ts'

/** Deterministic bytes that differ per `seed` and per position. */
export function content (size: number, seed = 1): Buffer {
  const buf = Buffer.allocUnsafe(size)
  let x = (seed * 2654435761) >>> 0
  for (let i = 0; i < size; i++) {
    x = (x ^ (x << 13)) >>> 0
    x = (x ^ (x >>> 17)) >>> 0
    x = (x ^ (x << 5)) >>> 0
    buf[i] = x & 0xff
  }
  return buf
}

export interface TestFile { path: string, bytes: Buffer, meta: FileMeta, id: string, mtimeMs: number }

export async function makeFile (dir: string, name: string, size: number, seed = 1): Promise<TestFile> {
  const path = join(dir, name)
  const bytes = content(size, seed)
  await writeFile(path, bytes)
  const { meta, mtimeMs } = await hashFile(path)
  return { path, bytes, meta, id: fileId(meta), mtimeMs }
}

/** A source that counts reads (resume tests count what was served). */
export interface CountingSource extends PieceSource { reads: number }

export function counting (source: PieceSource): CountingSource {
  const out: CountingSource = {
    meta: source.meta,
    reads: 0,
    have: () => source.have(),
    read: async (piece, offset, length) => {
      out.reads++
      return await source.read(piece, offset, length)
    },
  }
  return out
}

export async function shareFile (t: Pick<TestContext, 'after'>, file: TestFile): Promise<ShareFile> {
  const share = await ShareFile.open(file.path, file.meta, file.mtimeMs)
  t.after(() => share.close())
  return share
}

/** A peer server on a loopback port serving `sources` by file id. */
export async function serve (t: Pick<TestContext, 'after'>, sources: Map<string, PieceSource>,
  extra: Partial<PeerServerOptions> = {}): Promise<PeerServer & { addr: string }> {
  const server = await startPeerServer({ host: '127.0.0.1', port: 0, findSource: (id) => sources.get(id), ...extra })
  t.after(() => server.close())
  return Object.assign(server, { addr: `127.0.0.1:${server.address.port}` })
}

/** A bare wire client recording every message; the test drives it by hand. */
export interface RawClient {
  conn: PeerConnection
  handshakes: WireHandshake[]
  bitfields: Buffer[]
  haves: number[]
  pieces: WirePiece[]
  rejects: WireReject[]
  closed: { reason: PeershareError | undefined } | undefined
}

export async function rawClient (t: Pick<TestContext, 'after'>, port: number): Promise<RawClient> {
  const socket = await dial('127.0.0.1', port)
  const conn = new PeerConnection(socket)
  t.after(() => conn.close())
  const c: RawClient = { conn, handshakes: [], bitfields: [], haves: [], pieces: [], rejects: [], closed: undefined }
  conn.on('handshake', (m) => c.handshakes.push(m))
  conn.on('bitfield', (b) => c.bitfields.push(Buffer.from(b)))
  conn.on('have', (p) => c.haves.push(p))
  conn.on('piece', (m) => c.pieces.push({ ...m, data: Buffer.from(m.data) }))
  conn.on('reject', (m) => c.rejects.push(m))
  conn.on('close', (reason) => { c.closed = { reason } })
  return c
}

/** Handshakes for `id` and waits for the server's handshake and bitfield. */
export async function handshake (c: RawClient, id: string, pieces: number): Promise<Bitfield> {
  c.conn.send(encodeHandshake(id))
  c.conn.allowBlocks()
  const bits = await waitFor(() => c.bitfields[0], 'the bitfield')
  return Bitfield.fromBuffer(pieces, bits)
}
