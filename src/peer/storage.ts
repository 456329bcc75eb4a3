// Bytes on disk for the peer layer. PieceStore: one download's `<target>.part` (positional writes and
// reads), its resume record `<target>.part.resume` (which pieces are verified), and the final
// whole-file check + rename. ShareFile: read-only blocks of a shared file, refusing once the file changed.
// Which pieces to fetch, and from whom, is download.ts's business.

import { createHash } from 'node:crypto'
import { constants } from 'node:fs'
import { link, lstat, open, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { Bitfield } from '../common/bitfield.ts'
import { PeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import { pieceCount, pieceHash, pieceLength } from '../protocol/file-meta.ts'
import type { FileMeta } from '../protocol/file-meta.ts'
import { DIRECT_IO_ALIGN } from './direct-io.ts'
import { verifyPiece } from './hashing.ts'
import { releasePieceBuffer, takePieceBuffer } from './piece-buffers.ts'
import type { PieceSource } from './server.ts'

const log = createLog('peer:storage')

/** At most this often the resume record is rewritten while pieces arrive (and always at the end). */
export const RESUME_SAVE_MS = 250
/** How often a shared file's size and mtime are checked again while it is served. */
export const SHARE_RECHECK_MS = 1_000
const RESUME_VERSION = 1
const HASH_READ_BYTES = 4 * 1024 * 1024 // final pass: few syscalls, bounded memory

export interface PieceStoreOptions {
  target: string
  meta: FileMeta
  fileId: string
  /** Open the direct-write descriptor (directFd) when the platform allows; default true. */
  directIo?: boolean
}

export type FinishResult = { ok: true } | { ok: false, bad: number[] }

export class PieceStore {
  readonly meta: FileMeta
  readonly fileId: string
  readonly target: string
  readonly partPath: string
  readonly resumePath: string
  /** Pieces trusted from a resume record when opened. */
  readonly resumed: number
  #fh: FileHandle | undefined
  #direct: FileHandle | undefined
  #have: Bitfield
  #dirty = false
  #saveTimer: NodeJS.Timeout | undefined
  #saving: Promise<void> = Promise.resolve()

  private constructor (opts: PieceStoreOptions, fh: FileHandle, direct: FileHandle | undefined, have: Bitfield) {
    this.meta = opts.meta
    this.#direct = direct
    this.fileId = opts.fileId
    this.target = opts.target
    this.partPath = `${opts.target}.part`
    this.resumePath = `${opts.target}.part.resume`
    this.#fh = fh
    this.#have = have
    this.resumed = have.count()
  }

  /**
   * Opens (resumes) or creates the download's `.part`. EXISTS when the target exists, or when a `.part`
   * is there that is not a download of this file (no resume record, or one for another file).
   */
  static async open (opts: PieceStoreOptions): Promise<PieceStore> {
    const { target, meta, fileId } = opts
    const partPath = `${target}.part`
    const resumePath = `${target}.part.resume`
    const count = pieceCount(meta.size, meta.pieceBytes)
    if (await exists(target)) throw new PeershareError('EXISTS', `${target} already exists: refusing to overwrite it`)
    const record = await readResume(resumePath, count)
    if (record.kind === 'other' || (record.kind === 'ok' && record.fileId !== fileId)) {
      throw new PeershareError('EXISTS', `${partPath} belongs to a download of another file: finish or remove it first`)
    }
    const partExists = await exists(partPath)
    if (record.kind === 'none' && partExists) {
      throw new PeershareError('EXISTS', `${partPath} exists and is not a download of this file: remove it first`)
    }
    let have = new Bitfield(count)
    let resave = false
    let fh: FileHandle
    if (record.kind === 'ok' && partExists) {
      fh = await openOrExplain(partPath, 'r+')
      if ((await fh.stat()).size === meta.size) {
        have = record.have
      } else {
        log.warn('partial file has the wrong size: starting over', { partPath })
        resave = true
      }
    } else {
      if (record.kind === 'corrupt') log.warn('unreadable resume record: starting the download over', { resumePath })
      // the record first: a .part without one is never ours, so a crash here leaves nothing to misjudge
      await writeResume(resumePath, fileId, meta.size, have)
      fh = await openOrExplain(partPath, 'w+')
    }
    try {
      await fh.truncate(meta.size) // pre-size: positional writes never extend the file
    } catch (err) {
      await fh.close()
      throw new PeershareError('UNAVAILABLE', `cannot size ${partPath} to ${meta.size} bytes: ${(err as Error).message}`, { cause: err })
    }
    const store = new PieceStore(opts, fh, opts.directIo === false ? undefined : await openDirect(partPath, meta.pieceBytes), have)
    if (resave) await store.#save()
    return store
  }

  /** The `.part`'s file descriptor, for piece-worker.ts's positional writes (valid until close()). */
  get fd (): number {
    return this.#open().fd
  }

  /**
   * A second descriptor of the `.part` opened with O_DIRECT (direct-io.ts says why), for
   * piece-worker.ts's whole-piece writes from page-aligned buffers; undefined where the file system or
   * platform has none (tmpfs, macOS) or pieces are not a multiple of DIRECT_IO_ALIGN.
   */
  get directFd (): number | undefined {
    this.#open()
    return this.#direct?.fd
  }

  /** Verified pieces; the live set (do not modify). */
  have (): Bitfield {
    return this.#have
  }

  /** Writes a piece's blocks, in order, at the piece's position (one writev, no copy). */
  async writePiece (piece: number, blocks: Buffer[]): Promise<void> {
    const fh = this.#open()
    let position = piece * this.meta.pieceBytes
    let written = 0
    const want = blocks.reduce((n, b) => n + b.length, 0)
    while (written < want) {
      const rest = written === 0 ? blocks : sliceFrom(blocks, written)
      const { bytesWritten } = await fh.writev(rest, position)
      if (bytesWritten === 0) throw new PeershareError('INTERNAL', `write to ${this.partPath} made no progress`)
      written += bytesWritten
      position += bytesWritten
    }
  }

  async writeBlock (piece: number, offset: number, buf: Buffer): Promise<void> {
    await writeAll(this.#open(), buf, piece * this.meta.pieceBytes + offset)
  }

  async readBlock (piece: number, offset: number, length: number): Promise<Buffer> {
    return await readAll(this.#open(), length, piece * this.meta.pieceBytes + offset, this.partPath)
  }

  /** The piece is written and its hash matched: record it (the resume record follows within RESUME_SAVE_MS). */
  markVerified (piece: number): void {
    if (!this.#have.set(piece)) return
    this.#dirty = true
    this.#saveTimer ??= setTimeout(() => {
      this.#saveTimer = undefined
      this.#save().catch(() => {}) // #save logs; a missed save costs only resume progress
    }, RESUME_SAVE_MS)
  }

  /** Writes the resume record now if anything changed since the last one. */
  async flush (): Promise<void> {
    if (this.#saveTimer !== undefined) clearTimeout(this.#saveTimer)
    this.#saveTimer = undefined
    if (this.#dirty) await this.#save()
    await this.#saving
  }

  /**
   * Every piece is verified: fsync the data, check the whole-file SHA-1, then give the file its final
   * name (never over an existing file), fsync the directory and drop the resume record. `wholeHash`:
   * the SHA-1 the download computed over the verified pieces as it wrote them (whole-hash.ts); when it
   * matches, the file is not read again. Without it, or when it does not match, one read pass decides.
   * `{ ok: false, bad }`: pieces on disk no longer match (e.g. lost writes after a power cut); they are
   * cleared from have() and must be fetched again. HASH_MISMATCH: every piece matches but the whole file
   * does not, so the metadata itself is inconsistent and no download can ever complete.
   */
  async finish (wholeHash?: Buffer): Promise<FinishResult> {
    await this.flush()
    const fh = this.#open()
    await fh.datasync()
    if (wholeHash === undefined || !wholeHash.equals(this.meta.fileHash)) {
      const bad = await this.#checkWhole(fh)
      if (bad.length > 0) return { ok: false, bad }
    }
    await this.close()
    await this.#moveIntoPlace()
    await unlink(this.resumePath).catch((err: unknown) => log.warn('could not remove the resume record', { resumePath: this.resumePath, error: err as Error }))
    return { ok: true }
  }

  /** The whole-file SHA-1 in one read pass; on a mismatch, the pieces that went bad on disk (HASH_MISMATCH if none). */
  async #checkWhole (fh: FileHandle): Promise<number[]> {
    const whole = createHash('sha1')
    const buf = Buffer.allocUnsafe(Math.min(HASH_READ_BYTES, Math.max(this.meta.size, 1)))
    for (let position = 0; position < this.meta.size;) {
      const n = Math.min(buf.length, this.meta.size - position)
      const chunk = await readInto(fh, buf, n, position, this.partPath)
      whole.update(chunk)
      position += n
    }
    if (!whole.digest().equals(this.meta.fileHash)) {
      const bad = await this.#findBadPieces()
      if (bad.length > 0) return bad
      throw new PeershareError('HASH_MISMATCH', `every piece of ${this.meta.name} matches its hash but the whole file does not: the file's metadata is inconsistent`)
    }
    return []
  }

  /** Stops: saves the resume record and closes the file; `.part` stays for a later resume. Idempotent. */
  async close (): Promise<void> {
    if (this.#fh === undefined) return
    await this.flush().catch(() => {})
    const fh = this.#fh
    const direct = this.#direct
    this.#fh = undefined
    this.#direct = undefined
    await fh.close()
    await direct?.close()
  }

  /** Closes and deletes `.part` and its resume record (a download that can never succeed). */
  async discard (): Promise<void> {
    await this.close()
    for (const path of [this.partPath, this.resumePath]) {
      await unlink(path).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn('could not remove', { path, error: err as Error })
      })
    }
  }

  #open (): FileHandle {
    if (this.#fh === undefined) throw new PeershareError('UNAVAILABLE', `${this.partPath} is closed`)
    return this.#fh
  }

  #save (): Promise<void> {
    // one save at a time, in order: two renames of the same temp file must not interleave
    this.#saving = this.#saving.then(async () => {
      this.#dirty = false
      try {
        await writeResume(this.resumePath, this.fileId, this.meta.size, this.#have)
      } catch (err) {
        this.#dirty = true
        log.warn('could not save the resume record', { resumePath: this.resumePath, error: err as Error })
      }
    })
    return this.#saving
  }

  async #findBadPieces (): Promise<number[]> {
    const fh = this.#open()
    const bad: number[] = []
    const buf = Buffer.allocUnsafe(this.meta.pieceBytes)
    for (let i = 0; i < this.#have.size; i++) {
      const piece = await readInto(fh, buf, pieceLength(this.meta, i), i * this.meta.pieceBytes, this.partPath)
      if (!verifyPiece(piece, pieceHash(this.meta, i))) bad.push(i)
    }
    for (const i of bad) this.#have.clear(i)
    if (bad.length > 0) {
      log.warn('pieces on disk no longer match their hashes', { partPath: this.partPath, bad: bad.length })
      this.#dirty = true
      await this.flush()
    }
    return bad
  }

  async #moveIntoPlace (): Promise<void> {
    try {
      // link fails with EEXIST when the target appeared meanwhile: rename would silently replace it
      await link(this.partPath, this.target)
      await unlink(this.partPath)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EEXIST') throw new PeershareError('EXISTS', `${this.target} appeared during the download: the file is left in ${this.partPath}`)
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err
      // a file system without hard links: check, then rename (a tiny race, the best it allows)
      if (await exists(this.target)) throw new PeershareError('EXISTS', `${this.target} appeared during the download: the file is left in ${this.partPath}`)
      await rename(this.partPath, this.target)
    }
    await fsyncDir(dirname(this.target))
  }
}

/** A shared file served read-only. Reads fail with FILE_CHANGED once its size or mtime moved since hashing. */
export class ShareFile implements PieceSource {
  readonly meta: FileMeta
  readonly path: string
  readonly onChanged: (() => void) | undefined
  #fh: FileHandle | undefined
  #mtimeMs: number
  #checkedAt = -Infinity
  #changed = false
  readonly #have: Bitfield

  private constructor (path: string, meta: FileMeta, mtimeMs: number, fh: FileHandle, onChanged?: () => void) {
    this.path = path
    this.meta = meta
    this.#mtimeMs = mtimeMs
    this.#fh = fh
    this.onChanged = onChanged
    this.#have = Bitfield.full(pieceCount(meta.size, meta.pieceBytes))
  }

  /** FILE_CHANGED right away when the file no longer has the size and mtime it was hashed with. */
  static async open (path: string, meta: FileMeta, mtimeMs: number, onChanged?: () => void): Promise<ShareFile> {
    const fh = await openOrExplain(path, 'r')
    const share = new ShareFile(path, meta, mtimeMs, fh, onChanged)
    try {
      await share.#check()
    } catch (err) {
      await share.close()
      throw err
    }
    return share
  }

  have (): Bitfield {
    return this.#have
  }

  /**
   * The bytes at (piece, offset), in a buffer from piece-buffers.ts: the caller may give it back
   * (releasePieceBuffer) once nothing reads it, as the peer server does after sending it.
   */
  async read (piece: number, offset: number, length: number): Promise<Buffer> {
    if (performance.now() - this.#checkedAt >= SHARE_RECHECK_MS || this.#changed) await this.#check()
    const fh = this.#fh
    if (fh === undefined) throw new PeershareError('UNAVAILABLE', `${this.path} is no longer served`)
    // a reused buffer when the read fits in a piece (all the server asks): piece-buffers.ts says why
    const buf = length <= this.meta.pieceBytes ? takePieceBuffer(this.meta.pieceBytes, length) : Buffer.allocUnsafe(length)
    try {
      return await readInto(fh, buf, length, piece * this.meta.pieceBytes + offset, this.path)
    } catch (err) {
      releasePieceBuffer(buf) // nobody saw it
      // a short read means the file shrank under us
      if (err instanceof PeershareError && err.code === 'FILE_CHANGED') this.#changed = true
      throw err
    }
  }

  async close (): Promise<void> {
    const fh = this.#fh
    this.#fh = undefined
    await fh?.close()
  }

  async #check (): Promise<void> {
    const fh = this.#fh
    if (fh === undefined) throw new PeershareError('UNAVAILABLE', `${this.path} is no longer served`)
    const st = await fh.stat()
    this.#checkedAt = performance.now()
    if (this.#changed || st.size !== this.meta.size || st.mtimeMs !== this.#mtimeMs) {
      this.#changed = true
      throw new PeershareError('FILE_CHANGED', `${this.path} changed since it was shared (size or modification time): stop sharing it, or share it again`)
    }
  }
}

// -------------------------------------------------------------------------------------------------

type ResumeRecord = { kind: 'none' } | { kind: 'corrupt' } | { kind: 'other' }
  | { kind: 'ok', fileId: string, have: Bitfield }

async function readResume (path: string, count: number): Promise<ResumeRecord> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' }
    throw new PeershareError('UNAVAILABLE', `cannot read ${path}: ${(err as Error).message}`, { cause: err })
  }
  let v: Record<string, unknown>
  try {
    v = JSON.parse(text) as Record<string, unknown>
    if (typeof v !== 'object' || v === null || v.v !== RESUME_VERSION) return { kind: 'corrupt' }
  } catch {
    return { kind: 'corrupt' } // a torn write after a power cut: the caller starts over
  }
  if (typeof v.fileId !== 'string' || typeof v.verified !== 'string') return { kind: 'corrupt' }
  if (v.pieces !== count) return { kind: 'other' }
  try {
    return { kind: 'ok', fileId: v.fileId, have: Bitfield.fromBuffer(count, Buffer.from(v.verified, 'base64')) }
  } catch {
    return { kind: 'corrupt' }
  }
}

async function writeResume (path: string, fileId: string, size: number, have: Bitfield): Promise<void> {
  const body = JSON.stringify({ v: RESUME_VERSION, fileId, size, pieces: have.size, verified: have.toBuffer().toString('base64') })
  const tmp = `${path}.tmp`
  await writeFile(tmp, body + '\n')
  await rename(tmp, path)
}

async function exists (path: string): Promise<boolean> {
  try {
    await lstat(path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw new PeershareError('UNAVAILABLE', `cannot check ${path}: ${(err as Error).message}`, { cause: err })
  }
}

/** The `.part` opened for direct writes, or undefined where direct I/O is not available. */
async function openDirect (path: string, pieceBytes: number): Promise<FileHandle | undefined> {
  const flag = (constants as Record<string, number | undefined>).O_DIRECT
  if (flag === undefined || pieceBytes % DIRECT_IO_ALIGN !== 0) return undefined
  try {
    return await open(path, constants.O_WRONLY | flag)
  } catch (err) {
    log.debug('no direct I/O for this file: buffered writes', { path, error: err as Error })
    return undefined
  }
}

async function openOrExplain (path: string, flags: string): Promise<FileHandle> {
  try {
    return await open(path, flags)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new PeershareError('NOT_FOUND', `no such file or directory: ${path}`, { cause: err })
    if (code === 'EACCES' || code === 'EPERM') throw new PeershareError('BAD_REQUEST', `permission denied: ${path}`, { cause: err })
    if (code === 'EISDIR') throw new PeershareError('BAD_REQUEST', `${path} is a directory`, { cause: err })
    throw new PeershareError('UNAVAILABLE', `cannot open ${path}: ${code ?? String(err)}`, { cause: err })
  }
}

async function readAll (fh: FileHandle, length: number, position: number, path: string): Promise<Buffer> {
  return await readInto(fh, Buffer.allocUnsafe(length), length, position, path)
}

async function readInto (fh: FileHandle, buf: Buffer, length: number, position: number, path: string): Promise<Buffer> {
  let filled = 0
  while (filled < length) {
    const { bytesRead } = await fh.read(buf, filled, length - filled, position + filled)
    if (bytesRead === 0) throw new PeershareError('FILE_CHANGED', `${path} is shorter than expected`)
    filled += bytesRead
  }
  return buf.subarray(0, length)
}

async function writeAll (fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let written = 0
  while (written < buf.length) {
    const { bytesWritten } = await fh.write(buf, written, buf.length - written, position + written)
    written += bytesWritten
  }
}

/** The views of `blocks` past the first `skip` bytes (after a short writev). */
function sliceFrom (blocks: Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = []
  for (const b of blocks) {
    if (skip >= b.length) {
      skip -= b.length
      continue
    }
    out.push(skip > 0 ? b.subarray(skip) : b)
    skip = 0
  }
  return out
}

async function fsyncDir (dir: string): Promise<void> {
  let fh: FileHandle | undefined
  try {
    fh = await open(dir, 'r')
    await fh.sync()
  } catch (err) {
    // some platforms cannot fsync a directory; the rename itself already happened
    log.debug('directory fsync failed', { dir, error: err as Error })
  } finally {
    await fh?.close()
  }
}
