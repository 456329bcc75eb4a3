// downloads.json in the data dir: which downloads this client has (running, completed, failed), for
// which user, into which target, with the metadata to resume them without asking the tracker first.
// The pieces themselves are tracked by the `.part.resume` record next to each download (peer/storage.ts).
// Written atomically (data-dir.ts writeJsonAtomic) on every change of the set or of a state.

import { isErrorCode } from '../common/errors.ts'
import type { ErrorCode } from '../common/errors.ts'
import { isFileId } from '../protocol/control.ts'
import { decodeFileMeta, encodeFileMeta } from '../protocol/file-meta.ts'
import type { FileMeta, FileMetaWire } from '../protocol/file-meta.ts'
import { validateGroupId, validateUserId } from '../protocol/names.ts'
import { readJson, writeJsonAtomic } from './data-dir.ts'
import type { PeerProgress } from '../peer/download.ts'

const FILE_VERSION = 1
/** Finished downloads kept for show_downloads, per user: the oldest go first. */
export const MAX_FINISHED_KEPT = 100

export type RecordState = 'running' | 'completed' | 'failed'

/** What one peer gave a download: the engine's own per-peer figures, kept in the record as they are. */
export type PeerContribution = PeerProgress

/** What a finished download looked like at the end (show_downloads after a restart). */
export interface FinalStats {
  piecesDone: number
  bytesDone: number
  peers: PeerContribution[]
}

export interface DownloadRecord {
  userId: string
  groupId: string
  fileId: string
  /** Absolute path of the final file; the download writes `<target>.part`. */
  target: string
  meta: FileMeta
  state: RecordState
  startedAt: number
  finishedAt?: number
  error?: { code: ErrorCode, message: string }
  final?: FinalStats
}

interface StoredRecord extends Omit<DownloadRecord, 'meta'> {
  meta: FileMetaWire
}

export class DownloadRecords {
  readonly #file: string
  #records: DownloadRecord[]
  // saves run one after another: two writers of one file must not interleave their renames
  #saving: Promise<void> = Promise.resolve()

  private constructor (file: string, records: DownloadRecord[]) {
    this.#file = file
    this.#records = records
  }

  static async open (file: string): Promise<DownloadRecords> {
    return new DownloadRecords(file, (await readJson(file, parseRecords)) ?? [])
  }

  of (userId: string): DownloadRecord[] {
    return this.#records.filter((r) => r.userId === userId)
  }

  all (): readonly DownloadRecord[] {
    return this.#records
  }

  /** Adds a record, replacing one for the same target (a finished download of that path, or this one resumed). */
  async put (record: DownloadRecord): Promise<void> {
    this.#records = [...this.#records.filter((r) => r.target !== record.target), record]
    this.#trim(record.userId)
    await this.#save()
  }

  /** Changes a record in place (state, error, final stats) and saves. */
  async update (record: DownloadRecord, change: Partial<DownloadRecord>): Promise<void> {
    Object.assign(record, change)
    this.#trim(record.userId)
    await this.#save()
  }

  #trim (userId: string): void {
    const finished = this.#records.filter((r) => r.userId === userId && r.state !== 'running')
    if (finished.length <= MAX_FINISHED_KEPT) return
    finished.sort((a, b) => (a.finishedAt ?? 0) - (b.finishedAt ?? 0))
    const drop = new Set(finished.slice(0, finished.length - MAX_FINISHED_KEPT))
    this.#records = this.#records.filter((r) => !drop.has(r))
  }

  #save (): Promise<void> {
    const snapshot: StoredRecord[] = this.#records.map((r) => ({ ...r, meta: encodeFileMeta(r.meta) }))
    this.#saving = this.#saving.catch(() => {}).then(() => writeJsonAtomic(this.#file, { version: FILE_VERSION, downloads: snapshot }))
    return this.#saving
  }
}

function parseRecords (v: unknown): DownloadRecord[] | undefined {
  const file = v as { version?: unknown, downloads?: unknown } | null
  if (file?.version !== FILE_VERSION || !Array.isArray(file.downloads)) return undefined
  const out: DownloadRecord[] = []
  for (const item of file.downloads as Array<Partial<StoredRecord>>) {
    if (typeof item?.target !== 'string' || !isFileId(item.fileId) || typeof item.startedAt !== 'number' ||
        (item.state !== 'running' && item.state !== 'completed' && item.state !== 'failed')) return undefined
    const record: DownloadRecord = {
      userId: validateUserId(item.userId), // throws on damage: readJson sets the file aside
      groupId: validateGroupId(item.groupId),
      fileId: item.fileId,
      target: item.target,
      meta: decodeFileMeta(item.meta),
      state: item.state,
      startedAt: item.startedAt,
    }
    if (typeof item.finishedAt === 'number') record.finishedAt = item.finishedAt
    const e = item.error
    if (e !== undefined && isErrorCode(e.code) && typeof e.message === 'string') record.error = { code: e.code, message: e.message }
    const f = item.final
    if (f !== undefined && typeof f.piecesDone === 'number' && typeof f.bytesDone === 'number' && Array.isArray(f.peers)) {
      record.final = { piecesDone: f.piecesDone, bytesDone: f.bytesDone, peers: f.peers.filter(isContribution) }
    }
    out.push(record)
  }
  return out
}

function isContribution (v: unknown): v is PeerContribution {
  const p = v as Partial<PeerContribution> | null
  return typeof p?.addr === 'string' && typeof p.userId === 'string' && typeof p.pieces === 'number' && typeof p.connected === 'boolean'
}
