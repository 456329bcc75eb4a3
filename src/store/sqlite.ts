// The embedded Store: one SQLite file in the tracker's data directory (node:sqlite, WAL). Owns the
// queries and the atomicity of conditional writes; the file format is sqlite-schema.ts, durability
// of acknowledgements is group-commit.ts, and the group rules themselves are tracker/groups.ts.
//
// Durability: SQLite runs with synchronous=NORMAL, so a commit is a write() into <db>-wal without
// fsync (fast, and the JS thread never waits on the disk). Every write method resolves only after a
// group commit: one fdatasync of the -wal file, in libuv's threadpool, covering every write committed
// before it started (at most one in flight plus one queued). An acknowledged write thus survives
// kill -9 and power loss. The -wal file stays in place while the connection is open (SQLite removes
// it only on close; journal_size_limit truncates it after checkpoints, same inode), so one handle
// opened at start-up serves every fdatasync. Checkpoints are SQLite's automatic ones: they fsync
// the WAL and the database themselves. Reads are synchronous prepared statements; they may see a
// write whose fsync is still under way (its writer has not been answered yet).
// Atomicity: the store has one connection and node:sqlite is synchronous, so a transaction runs to
// COMMIT without yielding; BEGIN IMMEDIATE still takes the write lock first, against other processes.
// Presence is an in-memory Map: not durable by design (clients announce themselves again).

import { open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { PeershareError } from '../common/errors.ts'
import { decideLeave } from '../tracker/groups.ts'
import type { FileMeta } from '../protocol/file-meta.ts'
import { GroupCommit } from './group-commit.ts'
import type { GroupCommitStats } from './group-commit.ts'
import { openDatabase, sqliteCode, SQLITE_BUSY, SQLITE_FULL, SQLITE_IOERR } from './sqlite-schema.ts'
import type {
  CallOptions, GroupRecord, GroupSummary, JoinRequest, LeaveOutcome, Member, Presence, SessionRecord, Sharer,
  Store, StoredFile, UserRecord,
} from './store.ts'

/** Every statement the store runs; exported so a test can check the hot reads use indexes. */
export const SQL = {
  insertUser: 'INSERT INTO users (user_id, password_hash, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
  getUser: 'SELECT user_id, password_hash, created_at FROM users WHERE user_id = ?',
  insertSession: 'INSERT INTO sessions (token_hash, user_id, client_id, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
  getSession: 'SELECT token_hash, user_id, client_id, created_at FROM sessions WHERE token_hash = ?',
  deleteSession: 'DELETE FROM sessions WHERE token_hash = ?',
  insertGroup: 'INSERT INTO groups (group_id, owner, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
  getGroup: 'SELECT group_id, owner, created_at FROM groups WHERE group_id = ?',
  listMembers: 'SELECT user_id, joined_at FROM members WHERE group_id = ? ORDER BY joined_at, user_id',
  listGroups: `SELECT g.group_id, g.owner, (SELECT count(*) FROM members m WHERE m.group_id = g.group_id) AS member_count
    FROM groups g ORDER BY g.group_id`,
  memberGroups: 'SELECT group_id FROM members WHERE user_id = ? ORDER BY group_id',
  pendingGroups: 'SELECT group_id FROM requests WHERE user_id = ? ORDER BY group_id',
  isMember: 'SELECT 1 AS yes FROM members WHERE group_id = ? AND user_id = ?',
  insertMember: 'INSERT INTO members (group_id, user_id, joined_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
  deleteMember: 'DELETE FROM members WHERE group_id = ? AND user_id = ?',
  setOwner: 'UPDATE groups SET owner = ? WHERE group_id = ?',
  deleteGroup: 'DELETE FROM groups WHERE group_id = ?',
  insertRequest: 'INSERT INTO requests (group_id, user_id, requested_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
  listRequests: 'SELECT user_id, requested_at FROM requests WHERE group_id = ? ORDER BY requested_at, user_id',
  deleteRequest: 'DELETE FROM requests WHERE group_id = ? AND user_id = ?',
  fileByName: `SELECT file_id, name, size, piece_bytes, piece_hashes, file_hash FROM files
    WHERE group_id = ? AND name = ?`,
  listFiles: `SELECT file_id, name, size, piece_bytes, piece_hashes, file_hash FROM files
    WHERE group_id = ? ORDER BY name`,
  insertFile: `INSERT INTO files (group_id, file_id, name, size, piece_bytes, piece_hashes, file_hash, added_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  fileSharers: `SELECT user_id, client_id, active FROM shares WHERE group_id = ? AND file_id = ?
    ORDER BY user_id, client_id`,
  groupSharers: `SELECT file_id, user_id, client_id, active FROM shares WHERE group_id = ?
    ORDER BY file_id, user_id, client_id`,
  upsertShare: `INSERT INTO shares (group_id, file_id, user_id, client_id, active) VALUES (?, ?, ?, ?, 1)
    ON CONFLICT DO UPDATE SET active = 1`,
  deleteShare: 'DELETE FROM shares WHERE group_id = ? AND file_id = ? AND user_id = ? AND client_id = ?',
  deleteUserShares: 'DELETE FROM shares WHERE group_id = ? AND user_id = ?',
  countSharers: 'SELECT count(*) AS n FROM shares WHERE group_id = ? AND file_id = ?',
  deleteFile: 'DELETE FROM files WHERE group_id = ? AND file_id = ?',
  deleteUnsharedFiles: `DELETE FROM files WHERE group_id = ?1 AND NOT EXISTS
    (SELECT 1 FROM shares s WHERE s.group_id = ?1 AND s.file_id = files.file_id)`,
  setSharesActive: 'UPDATE shares SET active = ? WHERE user_id = ? AND client_id = ?',
  reactivateShare: `UPDATE shares SET active = 1
    WHERE group_id = ? AND file_id = ? AND user_id = ? AND client_id = ?`,
} as const

type Statements = { [K in keyof typeof SQL]: StatementSync }

interface FileRow { file_id: string, name: string, size: number, piece_bytes: number, piece_hashes: Uint8Array, file_hash: Uint8Array }
interface SharerRow { file_id?: string, user_id: string, client_id: string, active: number }

export async function openSqliteStore (path: string): Promise<SqliteStore> {
  const db = openDatabase(path)
  let wal: FileHandle | undefined
  try {
    wal = await open(`${path}-wal`, 'r+')
    await syncDirectory(dirname(path))
    return new SqliteStore(db, wal)
  } catch (err) {
    await wal?.close()
    db.close()
    throw new PeershareError('STORE_UNAVAILABLE', `cannot open the write-ahead log of ${path}: ${String(err)}`, { cause: err })
  }
}

/** The database and its -wal file must still be named in the directory after a power loss. */
async function syncDirectory (dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } catch (err) {
    // some platforms (Windows) cannot fsync a directory; their file systems journal names anyway
    if ((err as NodeJS.ErrnoException).code !== 'EISDIR' && (err as NodeJS.ErrnoException).code !== 'EPERM') throw err
  } finally {
    await fh.close()
  }
}

export class SqliteStore implements Store {
  readonly #db: DatabaseSync
  readonly #wal: FileHandle
  readonly #commit: GroupCommit
  readonly #q: Statements
  readonly #begin: StatementSync
  readonly #end: StatementSync
  readonly #rollback: StatementSync
  readonly #presence = new Map<string, Presence>()
  #closing: Promise<void> | undefined

  /** Use openSqliteStore. */
  constructor (db: DatabaseSync, wal: FileHandle) {
    this.#db = db
    this.#wal = wal
    this.#commit = new GroupCommit(wal)
    this.#q = Object.fromEntries(Object.entries(SQL).map(([k, sql]) => [k, db.prepare(sql)])) as Statements
    this.#begin = db.prepare('BEGIN IMMEDIATE')
    this.#end = db.prepare('COMMIT')
    this.#rollback = db.prepare('ROLLBACK')
  }

  /** How many fsyncs served how many acknowledged writes (for the benchmark and tests). */
  get durabilityStats (): GroupCommitStats {
    return this.#commit.stats
  }

  close (): Promise<void> {
    this.#closing ??= (async () => {
      await this.#commit.drain() // writes already committed still get their acknowledgement
      await this.#wal.close()
      this.#presence.clear()
      this.#db.close() // checkpoints, fsyncs and removes the -wal file
    })()
    return this.#closing
  }

  async createUser (user: UserRecord, opts?: CallOptions): Promise<void> {
    await this.#write(opts, () => {
      if (this.#q.insertUser.run(user.userId, user.passwordHash, user.createdAt).changes === 0) {
        throw new PeershareError('EXISTS', `user ${user.userId} already exists: choose another user id`)
      }
    })
  }

  async getUser (userId: string, opts?: CallOptions): Promise<UserRecord | undefined> {
    this.#enter(opts)
    const row = this.#q.getUser.get(userId) as { user_id: string, password_hash: string, created_at: number } | undefined
    return row === undefined ? undefined : { userId: row.user_id, passwordHash: row.password_hash, createdAt: row.created_at }
  }

  async createSession (s: SessionRecord, opts?: CallOptions): Promise<void> {
    await this.#write(opts, () => {
      if (this.#q.insertSession.run(s.tokenHash, s.userId, s.clientId, s.createdAt).changes === 0) {
        throw new PeershareError('EXISTS', 'that session already exists')
      }
    })
  }

  async getSession (tokenHash: string, opts?: CallOptions): Promise<SessionRecord | undefined> {
    this.#enter(opts)
    const row = this.#q.getSession.get(tokenHash) as { token_hash: string, user_id: string, client_id: string, created_at: number } | undefined
    return row === undefined ? undefined : { tokenHash: row.token_hash, userId: row.user_id, clientId: row.client_id, createdAt: row.created_at }
  }

  async deleteSession (tokenHash: string, opts?: CallOptions): Promise<boolean> {
    return await this.#write(opts, () => this.#q.deleteSession.run(tokenHash).changes > 0)
  }

  async createGroup (groupId: string, owner: string, now: number, opts?: CallOptions): Promise<void> {
    await this.#write(opts, () => {
      if (this.#q.insertGroup.run(groupId, owner, now).changes === 0) {
        throw new PeershareError('EXISTS', `group ${groupId} already exists: choose another name, or join_group ${groupId}`)
      }
      this.#q.insertMember.run(groupId, owner, now)
    })
  }

  async getGroup (groupId: string, opts?: CallOptions): Promise<GroupRecord | undefined> {
    this.#enter(opts)
    return this.#readGroup(groupId)
  }

  async listGroups (opts?: CallOptions): Promise<GroupSummary[]> {
    this.#enter(opts)
    const rows = this.#q.listGroups.all() as Array<{ group_id: string, owner: string, member_count: number }>
    return rows.map((r) => ({ groupId: r.group_id, owner: r.owner, memberCount: r.member_count }))
  }

  async membershipsOf (userId: string, opts?: CallOptions): Promise<{ member: string[], pending: string[] }> {
    this.#enter(opts)
    const ids = (stmt: StatementSync): string[] => (stmt.all(userId) as Array<{ group_id: string }>).map((r) => r.group_id)
    return { member: ids(this.#q.memberGroups), pending: ids(this.#q.pendingGroups) }
  }

  async addRequest (groupId: string, userId: string, now: number, opts?: CallOptions): Promise<void> {
    await this.#write(opts, () => {
      this.#requireGroup(groupId)
      if (this.#isMember(groupId, userId)) {
        throw new PeershareError('ALREADY_MEMBER', `you are already a member of ${groupId}`)
      }
      if (this.#q.insertRequest.run(groupId, userId, now).changes === 0) {
        throw new PeershareError('EXISTS', `you already asked to join ${groupId}: wait for its owner to accept`)
      }
    })
  }

  async listRequests (groupId: string, opts?: CallOptions): Promise<JoinRequest[]> {
    this.#enter(opts)
    const rows = this.#q.listRequests.all(groupId) as Array<{ user_id: string, requested_at: number }>
    return rows.map((r) => ({ userId: r.user_id, requestedAt: r.requested_at }))
  }

  async acceptRequest (groupId: string, userId: string, now: number, opts?: CallOptions): Promise<void> {
    await this.#write(opts, () => {
      this.#requireGroup(groupId)
      if (this.#q.deleteRequest.run(groupId, userId).changes === 0) {
        throw new PeershareError('NOT_FOUND', `${userId} has not asked to join ${groupId}`)
      }
      this.#q.insertMember.run(groupId, userId, now)
    })
  }

  async rejectRequest (groupId: string, userId: string, opts?: CallOptions): Promise<void> {
    await this.#write(opts, () => {
      this.#requireGroup(groupId)
      if (this.#q.deleteRequest.run(groupId, userId).changes === 0) {
        throw new PeershareError('NOT_FOUND', `${userId} has not asked to join ${groupId}`)
      }
    })
  }

  async leaveGroup (groupId: string, userId: string, opts?: CallOptions): Promise<LeaveOutcome> {
    return await this.#write(opts, () => {
      const group = this.#requireGroup(groupId)
      const outcome = decideLeave(group, userId)
      if (outcome.groupDeleted) {
        this.#q.deleteGroup.run(groupId) // cascades to members, requests, files and shares
        return outcome
      }
      this.#q.deleteMember.run(groupId, userId)
      this.#q.deleteUserShares.run(groupId, userId)
      this.#q.deleteUnsharedFiles.run(groupId)
      if (outcome.newOwner !== null) this.#q.setOwner.run(outcome.newOwner, groupId)
      return outcome
    })
  }

  async addShare (groupId: string, fileId: string, meta: FileMeta, sharer: { userId: string, clientId: string },
    now: number, opts?: CallOptions): Promise<{ newFile: boolean }> {
    return await this.#write(opts, () => {
      this.#requireGroup(groupId)
      this.#requireMember(groupId, sharer.userId)
      const existing = this.#q.fileByName.get(groupId, meta.name) as FileRow | undefined
      if (existing !== undefined && existing.file_id !== fileId) {
        throw new PeershareError('EXISTS', `a different file named ${meta.name} is already shared in ${groupId}: rename yours`)
      }
      if (existing === undefined) {
        this.#q.insertFile.run(groupId, fileId, meta.name, meta.size, meta.pieceBytes, meta.pieceHashes, meta.fileHash, now)
      }
      this.#q.upsertShare.run(groupId, fileId, sharer.userId, sharer.clientId)
      return { newFile: existing === undefined }
    })
  }

  async removeShare (groupId: string, fileName: string, sharer: { userId: string, clientId: string },
    opts?: CallOptions): Promise<{ fileRemoved: boolean }> {
    return await this.#write(opts, () => {
      const file = this.#q.fileByName.get(groupId, fileName) as FileRow | undefined
      if (file === undefined || this.#q.deleteShare.run(groupId, file.file_id, sharer.userId, sharer.clientId).changes === 0) {
        throw new PeershareError('NOT_FOUND', `you do not share ${fileName} in ${groupId}`)
      }
      const left = this.#q.countSharers.get(groupId, file.file_id) as { n: number }
      if (left.n > 0) return { fileRemoved: false }
      this.#q.deleteFile.run(groupId, file.file_id)
      return { fileRemoved: true }
    })
  }

  async setSharesActive (sharer: { userId: string, clientId: string }, active: boolean, opts?: CallOptions): Promise<void> {
    await this.#write(opts, () => { this.#q.setSharesActive.run(active ? 1 : 0, sharer.userId, sharer.clientId) })
  }

  async reactivateShares (sharer: { userId: string, clientId: string }, shares: Array<{ groupId: string, fileId: string }>,
    opts?: CallOptions): Promise<{ restored: number, gone: Array<{ groupId: string, fileId: string }> }> {
    return await this.#write(opts, () => {
      const gone: Array<{ groupId: string, fileId: string }> = []
      for (const s of shares) {
        const changed = this.#q.reactivateShare.run(s.groupId, s.fileId, sharer.userId, sharer.clientId).changes
        if (changed === 0) gone.push({ groupId: s.groupId, fileId: s.fileId })
      }
      return { restored: shares.length - gone.length, gone }
    })
  }

  async listFiles (groupId: string, opts?: CallOptions): Promise<StoredFile[]> {
    this.#enter(opts)
    // two indexed range reads instead of a join: a join would copy each file's hashes per sharer
    const files = this.#q.listFiles.all(groupId) as unknown as FileRow[]
    const sharers = new Map<string, Sharer[]>()
    for (const r of this.#q.groupSharers.all(groupId) as unknown as SharerRow[]) {
      const list = sharers.get(r.file_id ?? '')
      if (list === undefined) sharers.set(r.file_id ?? '', [toSharer(r)])
      else list.push(toSharer(r))
    }
    return files.map((f) => ({ fileId: f.file_id, meta: toMeta(f), sharers: sharers.get(f.file_id) ?? [] }))
  }

  async getFile (groupId: string, fileName: string, opts?: CallOptions): Promise<StoredFile | undefined> {
    this.#enter(opts)
    const f = this.#q.fileByName.get(groupId, fileName) as FileRow | undefined
    if (f === undefined) return undefined
    const rows = this.#q.fileSharers.all(groupId, f.file_id) as unknown as SharerRow[]
    return { fileId: f.file_id, meta: toMeta(f), sharers: rows.map(toSharer) }
  }

  async presenceUp (presence: Presence, opts?: CallOptions): Promise<void> {
    this.#enter(opts)
    this.#presence.set(presence.clientId, { ...presence })
  }

  async presenceDown (clientId: string, opts?: CallOptions): Promise<void> {
    this.#enter(opts)
    this.#presence.delete(clientId)
  }

  async getPresence (clientIds: readonly string[], opts?: CallOptions): Promise<Map<string, Presence>> {
    this.#enter(opts)
    const out = new Map<string, Presence>()
    for (const id of clientIds) {
      const p = this.#presence.get(id)
      if (p !== undefined) out.set(id, { ...p })
    }
    return out
  }

  #enter (opts: CallOptions | undefined): void {
    opts?.signal?.throwIfAborted()
    if (this.#closing !== undefined) throw new PeershareError('STORE_UNAVAILABLE', 'the tracker store is closed')
  }

  /** Runs `fn` in one IMMEDIATE transaction, then waits until the commit is on stable storage. */
  async #write<T> (opts: CallOptions | undefined, fn: () => T): Promise<T> {
    this.#enter(opts)
    let result: T
    try {
      this.#begin.run()
      result = fn()
      this.#end.run()
    } catch (err) {
      if (this.#db.isTransaction) this.#rollback.run()
      throw storeError(err)
    }
    await this.#commit.durable(opts?.signal)
    return result
  }

  #readGroup (groupId: string): GroupRecord | undefined {
    const g = this.#q.getGroup.get(groupId) as { group_id: string, owner: string, created_at: number } | undefined
    if (g === undefined) return undefined
    const members = (this.#q.listMembers.all(groupId) as Array<{ user_id: string, joined_at: number }>)
      .map((m): Member => ({ userId: m.user_id, joinedAt: m.joined_at }))
    return { groupId: g.group_id, owner: g.owner, createdAt: g.created_at, members }
  }

  #requireGroup (groupId: string): GroupRecord {
    const group = this.#readGroup(groupId)
    if (group === undefined) throw new PeershareError('NOT_FOUND', `group ${groupId} does not exist`)
    return group
  }

  #isMember (groupId: string, userId: string): boolean {
    return this.#q.isMember.get(groupId, userId) !== undefined
  }

  #requireMember (groupId: string, userId: string): void {
    if (!this.#isMember(groupId, userId)) {
      throw new PeershareError('NOT_MEMBER', `you are not a member of ${groupId}: join_group ${groupId} first`)
    }
  }
}

function toMeta (f: FileRow): FileMeta {
  return { name: f.name, size: f.size, pieceBytes: f.piece_bytes, pieceHashes: toBuffer(f.piece_hashes), fileHash: toBuffer(f.file_hash) }
}

function toSharer (r: SharerRow): Sharer {
  return { userId: r.user_id, clientId: r.client_id, active: r.active !== 0 }
}

function toBuffer (u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength) // no copy: node:sqlite hands us a fresh array
}

/** Our own errors pass through; disk and lock trouble become STORE_UNAVAILABLE; the rest stays as is. */
function storeError (err: unknown): unknown {
  if (err instanceof PeershareError) return err
  switch (sqliteCode(err)) {
    case SQLITE_BUSY: return new PeershareError('STORE_UNAVAILABLE', 'the tracker database is locked by another process', { cause: err })
    case SQLITE_FULL: return new PeershareError('STORE_UNAVAILABLE', 'the tracker\'s disk is full', { cause: err })
    case SQLITE_IOERR: return new PeershareError('STORE_UNAVAILABLE', 'the tracker could not read or write its database', { cause: err })
    default: return err
  }
}
