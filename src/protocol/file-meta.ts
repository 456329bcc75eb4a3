// A shared file's metadata (what a .torrent is to BitTorrent): name, size, piece geometry, the SHA-1
// of every 512 KiB piece and of the whole file. Its id is derived from all of that, so two different
// files never share an id. Pure: no I/O.

import { createHash } from 'node:crypto'
import { PeershareError } from '../common/errors.ts'
import { validateFileName } from './names.ts'

export const PIECE_BYTES = 512 * 1024
export const SHA1_BYTES = 20
// 64 GiB = 131,072 pieces: their hashes (base64) fit the control protocol's frame cap with room to spare
export const MAX_FILE_BYTES = 64 * 1024 * 1024 * 1024

export interface FileMeta {
  readonly name: string
  readonly size: number
  readonly pieceBytes: number
  /** SHA-1 of every piece, concatenated: pieceCount × 20 bytes. */
  readonly pieceHashes: Buffer
  /** SHA-1 of the whole file. */
  readonly fileHash: Buffer
}

/** How FileMeta travels in JSON: binary as base64/hex, never as a string of bytes. */
export interface FileMetaWire {
  name: string
  size: number
  pieceBytes: number
  pieceHashes: string // base64
  fileHash: string // hex
}

export function pieceCount (size: number, pieceBytes: number = PIECE_BYTES): number {
  return size === 0 ? 0 : Math.ceil(size / pieceBytes)
}

export function pieceLength (meta: Pick<FileMeta, 'size' | 'pieceBytes'>, index: number): number {
  const start = index * meta.pieceBytes
  return Math.min(meta.pieceBytes, meta.size - start)
}

export function pieceHash (meta: FileMeta, index: number): Buffer {
  return meta.pieceHashes.subarray(index * SHA1_BYTES, (index + 1) * SHA1_BYTES)
}

/** Hex SHA-256 over a canonical encoding of every field. */
export function fileId (meta: FileMeta): string {
  const h = createHash('sha256')
  const name = Buffer.from(meta.name, 'utf8')
  const head = Buffer.allocUnsafe(4 + 8 + 4)
  head.writeUInt32BE(name.length, 0)
  head.writeBigUInt64BE(BigInt(meta.size), 4)
  head.writeUInt32BE(meta.pieceBytes, 12)
  h.update('peershare-file-v1\0').update(head).update(name).update(meta.pieceHashes).update(meta.fileHash)
  return h.digest('hex')
}

export function encodeFileMeta (meta: FileMeta): FileMetaWire {
  return {
    name: meta.name,
    size: meta.size,
    pieceBytes: meta.pieceBytes,
    pieceHashes: meta.pieceHashes.toString('base64'),
    fileHash: meta.fileHash.toString('hex'),
  }
}

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/
const SHA1_HEX_RE = /^[0-9a-f]{40}$/

export function decodeFileMeta (value: unknown): FileMeta {
  if (typeof value !== 'object' || value === null) throw bad('file metadata must be an object')
  const v = value as Record<string, unknown>
  const name = validateFileName(v.name)
  const size = v.size
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || size > MAX_FILE_BYTES) {
    throw bad(`file size must be an integer from 0 to ${MAX_FILE_BYTES}`)
  }
  if (v.pieceBytes !== PIECE_BYTES) throw bad(`piece size must be ${PIECE_BYTES}`)
  if (typeof v.pieceHashes !== 'string' || !BASE64_RE.test(v.pieceHashes)) throw bad('pieceHashes must be base64')
  const count = pieceCount(size)
  if (v.pieceHashes.length !== Math.ceil(count * SHA1_BYTES / 3) * 4) {
    throw bad(`pieceHashes must hold ${count} SHA-1 hashes`)
  }
  const pieceHashes = Buffer.from(v.pieceHashes, 'base64')
  if (pieceHashes.length !== count * SHA1_BYTES) throw bad(`pieceHashes must hold ${count} SHA-1 hashes`)
  if (typeof v.fileHash !== 'string' || !SHA1_HEX_RE.test(v.fileHash)) throw bad('fileHash must be 40 lowercase hex digits')
  return { name, size, pieceBytes: PIECE_BYTES, pieceHashes, fileHash: Buffer.from(v.fileHash, 'hex') }
}

function bad (message: string): PeershareError {
  return new PeershareError('BAD_REQUEST', message)
}
