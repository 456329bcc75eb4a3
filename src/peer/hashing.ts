// Hashing a local file into its FileMeta: one streaming read pass computing the SHA-1 of every
// 512 KiB piece and of the whole file, with one reused piece buffer (memory does not grow with the
// file). Also verifyPiece for downloads. Sharing and downloading decide what to do with the result.

import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'
import { basename } from 'node:path'
import { PeershareError } from '../common/errors.ts'
import { MAX_FILE_BYTES, PIECE_BYTES, SHA1_BYTES, pieceCount } from '../protocol/file-meta.ts'
import type { FileMeta } from '../protocol/file-meta.ts'
import { printable, validateFileName } from '../protocol/names.ts'

export interface HashOptions {
  /** Called after every piece with the bytes hashed so far and the file size. */
  onProgress?: (doneBytes: number, totalBytes: number) => void
  signal?: AbortSignal
}

export interface HashedFile {
  meta: FileMeta
  /** Modification time when hashed: a later change of size or mtime means the metadata is stale. */
  mtimeMs: number
}

export async function hashFile (path: string, opts: HashOptions = {}): Promise<HashedFile> {
  const name = fileNameOf(path)
  opts.signal?.throwIfAborted()
  let fh
  try {
    fh = await open(path, 'r')
  } catch (err) {
    throw openError(path, err)
  }
  try {
    const before = await fh.stat()
    if (!before.isFile()) throw new PeershareError('BAD_REQUEST', `${path} is not a regular file`)
    const size = before.size
    if (size > MAX_FILE_BYTES) throw new PeershareError('BAD_REQUEST', `${path} is larger than the ${MAX_FILE_BYTES / 2 ** 30} GiB limit`)
    const count = pieceCount(size)
    const pieceHashes = Buffer.allocUnsafe(count * SHA1_BYTES)
    const whole = createHash('sha1')
    const buf = Buffer.allocUnsafe(Math.min(PIECE_BYTES, Math.max(size, 1)))
    let position = 0
    for (let i = 0; i < count; i++) {
      opts.signal?.throwIfAborted()
      const want = Math.min(PIECE_BYTES, size - position)
      let filled = 0
      while (filled < want) {
        const { bytesRead } = await fh.read(buf, filled, want - filled, position + filled)
        if (bytesRead === 0) throw changed(path, 'it got shorter while being read')
        filled += bytesRead
      }
      const piece = buf.subarray(0, want)
      whole.update(piece)
      createHash('sha1').update(piece).digest().copy(pieceHashes, i * SHA1_BYTES)
      position += want
      opts.onProgress?.(position, size)
    }
    const after = await fh.stat()
    if (after.size !== size || after.mtimeMs !== before.mtimeMs) throw changed(path, 'it was modified while being read')
    const meta: FileMeta = { name, size, pieceBytes: PIECE_BYTES, pieceHashes, fileHash: whole.digest() }
    return { meta, mtimeMs: before.mtimeMs }
  } finally {
    await fh.close()
  }
}

/** True when the piece's SHA-1 is the expected one. */
export function verifyPiece (buf: Buffer, expectedHash: Buffer): boolean {
  return createHash('sha1').update(buf).digest().equals(expectedHash)
}

/** The name the file is shared under: its basename, which must be a valid network file name. */
export function fileNameOf (path: string): string {
  const name = basename(path)
  try {
    return validateFileName(name)
  } catch (err) {
    throw new PeershareError('BAD_REQUEST',
      `cannot share '${printable(name)}' under that name: ${(err as Error).message}; rename the file first`, { cause: err })
  }
}

function changed (path: string, why: string): PeershareError {
  return new PeershareError('FILE_CHANGED', `${path} changed while hashing (${why}): try again once it is stable`)
}

function openError (path: string, err: unknown): PeershareError {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOENT') return new PeershareError('NOT_FOUND', `no such file: ${path}`, { cause: err })
  if (code === 'EACCES' || code === 'EPERM') return new PeershareError('BAD_REQUEST', `cannot read ${path}: permission denied`, { cause: err })
  if (code === 'EISDIR') return new PeershareError('BAD_REQUEST', `${path} is a directory, not a file`, { cause: err })
  return new PeershareError('BAD_REQUEST', `cannot open ${path}: ${code ?? String(err)}`, { cause: err })
}
