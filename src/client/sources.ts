// What this client serves to other peers, by file id: the Mediator behind the peer server's
// findSource. Two kinds: shared files (opened lazily on the first request, through storage.ts
// ShareFile, which refuses once the file changed on disk) and downloads (their verified pieces).
// Which shares and downloads are current (the logged-in user's) is decided by core.ts.

import { Bitfield } from '../common/bitfield.ts'
import { PeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import { pieceCount } from '../protocol/file-meta.ts'
import type { FileMeta } from '../protocol/file-meta.ts'
import type { PieceSource } from '../peer/server.ts'
import { ShareFile } from '../peer/storage.ts'

const log = createLog('client:sources')

export interface ShareSpec {
  fileId: string
  path: string
  meta: FileMeta
  mtimeMs: number
}

/** A shared file as a PieceSource: no file handle until someone asks for a block. */
class LazyShare implements PieceSource {
  readonly meta: FileMeta
  readonly spec: ShareSpec
  readonly #onChanged: () => void
  #file: Promise<ShareFile> | undefined
  #have: Bitfield | undefined
  #closed = false

  constructor (spec: ShareSpec, onChanged: () => void) {
    this.spec = spec
    this.meta = spec.meta
    this.#onChanged = onChanged
  }

  have (): Bitfield {
    // a share has every piece; built once, without opening the file
    this.#have ??= Bitfield.full(pieceCount(this.meta.size, this.meta.pieceBytes))
    return this.#have
  }

  async read (piece: number, offset: number, length: number): Promise<Buffer> {
    if (this.#closed) throw new PeershareError('UNAVAILABLE', `${this.spec.path} is no longer served`)
    this.#file ??= ShareFile.open(this.spec.path, this.spec.meta, this.spec.mtimeMs)
    let file: ShareFile
    try {
      file = await this.#file
    } catch (err) {
      this.#file = undefined
      // a shared file that vanished can no more be served than one that changed
      if (err instanceof PeershareError && err.code === 'NOT_FOUND') {
        throw new PeershareError('FILE_CHANGED', `${this.spec.path} is gone`, { cause: err })
      }
      throw err
    }
    return await file.read(piece, offset, length)
  }

  onChanged (): void {
    this.#onChanged()
  }

  async close (): Promise<void> {
    this.#closed = true
    const file = this.#file
    this.#file = undefined
    if (file !== undefined) await file.then((f) => f.close(), () => {}) // a failed open holds nothing
  }
}

export class SourceTable {
  readonly #shares = new Map<string, LazyShare>()
  readonly #downloads = new Map<string, PieceSource>()
  readonly #onShareChanged: (spec: ShareSpec) => void

  /** `onShareChanged` runs at most once per share: the file changed or vanished while served. */
  constructor (onShareChanged: (spec: ShareSpec) => void) {
    this.#onShareChanged = onShareChanged
  }

  /** The peer server's findSource: a complete share first, else a download's verified pieces. */
  find (fileId: string): PieceSource | undefined {
    return this.#shares.get(fileId) ?? this.#downloads.get(fileId)
  }

  /** Serves a shared file (replacing a share of the same file id, e.g. a second group or a new path). */
  addShare (spec: ShareSpec): void {
    const old = this.#shares.get(spec.fileId)
    if (old !== undefined && old.spec.path === spec.path && old.spec.mtimeMs === spec.mtimeMs) return
    let reported = false
    const share = new LazyShare(spec, () => {
      if (reported) return // the server reports once per connection
      reported = true
      if (this.#shares.get(spec.fileId) === share) this.#shares.delete(spec.fileId)
      void share.close()
      this.#onShareChanged(spec)
    })
    this.#shares.set(spec.fileId, share)
    if (old !== undefined) void old.close()
  }

  /** Stops serving a shared file. */
  removeShare (fileId: string): void {
    const old = this.#shares.get(fileId)
    if (old === undefined) return
    this.#shares.delete(fileId)
    old.close().catch((err: unknown) => log.debug('closing a share failed', { error: err as Error }))
  }

  /** Stops serving every shared file (logout). */
  clearShares (): void {
    for (const id of [...this.#shares.keys()]) this.removeShare(id)
  }

  shareIds (): string[] {
    return [...this.#shares.keys()]
  }

  addDownload (fileId: string, source: PieceSource): void {
    this.#downloads.set(fileId, source)
  }

  removeDownload (fileId: string, source?: PieceSource): void {
    if (source === undefined || this.#downloads.get(fileId) === source) this.#downloads.delete(fileId)
  }

  async close (): Promise<void> {
    const shares = [...this.#shares.values()]
    this.#shares.clear()
    this.#downloads.clear()
    await Promise.all(shares.map((s) => s.close()))
  }
}
