// Local share records: which file on this disk is shared into which group, by which user, with the
// metadata it was announced with (so it can be re-announced without hashing again). Records survive
// logout and restarts; on login they are checked against the disk (size and mtime) before `reshare`.
// Talking to the tracker is core.ts's job.

import { stat } from 'node:fs/promises'
import { decodeFileMeta, encodeFileMeta } from '../protocol/file-meta.ts'
import type { FileMeta, FileMetaWire } from '../protocol/file-meta.ts'
import { isFileId } from '../protocol/control.ts'
import { readJson, writeJsonAtomic } from './data-dir.ts'

export interface ShareRecord {
  userId: string
  groupId: string
  fileId: string
  /** Absolute path of the shared file on this machine. */
  path: string
  name: string
  size: number
  mtimeMs: number
  meta: FileMeta
}

export interface DroppedShare {
  groupId: string
  name: string
  path: string
  reason: 'missing' | 'changed' | 'gone'
}

interface StoredRecord extends Omit<ShareRecord, 'meta'> {
  meta: FileMetaWire
}

const FILE_VERSION = 1

export class ShareBook {
  readonly #file: string
  #records: ShareRecord[]

  private constructor (file: string, records: ShareRecord[]) {
    this.#file = file
    this.#records = records
  }

  static async open (file: string): Promise<ShareBook> {
    const records = await readJson(file, parseShares)
    return new ShareBook(file, records ?? [])
  }

  /** The records of one user (a client may be used by several users in turn). */
  of (userId: string): ShareRecord[] {
    return this.#records.filter((r) => r.userId === userId)
  }

  find (userId: string, groupId: string, name: string): ShareRecord | undefined {
    return this.#records.find((r) => r.userId === userId && r.groupId === groupId && r.name === name)
  }

  /** Adds or replaces the record of (user, group, name). */
  async put (record: ShareRecord): Promise<void> {
    const rest = this.#records.filter((r) => !same(r, record))
    await this.#save([...rest, record])
  }

  async remove (match: (r: ShareRecord) => boolean): Promise<ShareRecord[]> {
    const removed = this.#records.filter(match)
    if (removed.length > 0) await this.#save(this.#records.filter((r) => !match(r)))
    return removed
  }

  /**
   * Checks the user's shared files against the disk. A file gone or changed (size or mtime) no
   * longer matches its announced hashes: its record is dropped and reported.
   */
  async verify (userId: string): Promise<{ valid: ShareRecord[], dropped: DroppedShare[] }> {
    const valid: ShareRecord[] = []
    const dropped: DroppedShare[] = []
    for (const r of this.of(userId)) {
      let reason: DroppedShare['reason'] | undefined
      try {
        const s = await stat(r.path)
        if (!s.isFile() || s.size !== r.size || s.mtimeMs !== r.mtimeMs) reason = 'changed'
      } catch {
        reason = 'missing' // any stat failure means we cannot serve it
      }
      if (reason === undefined) valid.push(r)
      else dropped.push({ groupId: r.groupId, name: r.name, path: r.path, reason })
    }
    if (dropped.length > 0) {
      const bad = new Set(dropped.map((d) => `${d.groupId}\0${d.name}`))
      await this.remove((r) => r.userId === userId && bad.has(`${r.groupId}\0${r.name}`))
    }
    return { valid, dropped }
  }

  async #save (records: ShareRecord[]): Promise<void> {
    const stored: StoredRecord[] = records.map((r) => ({ ...r, meta: encodeFileMeta(r.meta) }))
    await writeJsonAtomic(this.#file, { version: FILE_VERSION, shares: stored })
    this.#records = records
  }
}

function same (a: ShareRecord, b: ShareRecord): boolean {
  return a.userId === b.userId && a.groupId === b.groupId && a.name === b.name
}

function parseShares (v: unknown): ShareRecord[] | undefined {
  const file = v as { version?: unknown, shares?: unknown } | null
  if (file?.version !== FILE_VERSION || !Array.isArray(file.shares)) return undefined
  const out: ShareRecord[] = []
  for (const item of file.shares as Array<Partial<StoredRecord>>) {
    if (typeof item?.userId !== 'string' || typeof item.groupId !== 'string' || !isFileId(item.fileId) ||
        typeof item.path !== 'string' || typeof item.mtimeMs !== 'number') return undefined
    const meta = decodeFileMeta(item.meta) // throws on damage: the caller sets the file aside
    out.push({ userId: item.userId, groupId: item.groupId, fileId: item.fileId, path: item.path, name: meta.name, size: meta.size, mtimeMs: item.mtimeMs, meta })
  }
  return out
}
