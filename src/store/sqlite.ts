// The embedded Store: one SQLite file in the tracker's data directory (node:sqlite, WAL). Owns the
// writes and the atomicity of conditional writes; the file format is sqlite-schema.ts, durability
// of acknowledgements is group-commit.ts, the group rules are tracker/groups.ts, and reads are
// memory-model.ts.
//
// Reads: the whole state is loaded into a MemoryModel at open (sqlite-load.ts) and every read is
// answered from it; SQLite is only written. Profiled under the tracker bench's load, the reads
// were ~60% of the tracker's CPU when they ran SQL (a group's ~100 member rows per membership check).
// The model assumes this connection is the database's only writer (one tracker per data directory).
//
// Writes: the rules are checked against the model, the rows are written in one IMMEDIATE
// transaction, and the model applies the same change right after COMMIT succeeds — before the
// fsync below. So the model is always exactly the committed database (later writes check their
// conditions against it), and a reader may see a write whose fsync is still under way (its writer
// has not been answered yet), as SQLite reads did. Waiting for the fsync instead would let the
// model lag the database, and conditional writes would check stale state. A crash before the fsync
// loses that write, which no one acknowledged; a failed fsync makes every later write fail
// (group-commit.ts) while reads go on serving the last committed state.
//
// Durability: SQLite runs with synchronous=NORMAL, so a commit is a write() into <db>-wal without
// fsync (fast, and the JS thread never waits on the disk). Every write method resolves only after a
// group commit: one fdatasync of the -wal file, in libuv's threadpool, covering every write committed
// before it started (at most one in flight plus one queued). An acknowledged write thus survives
// kill -9 and power loss. The -wal file stays in place while the connection is open (SQLite removes
// it only on close; journal_size_limit truncates it after checkpoints, same inode), so one handle
// opened at start-up serves every fdatasync. Checkpoints run in a worker thread with its own
// connection (checkpointer.ts), not inside a COMMIT on the JS thread; they fsync the WAL and the
// database themselves.
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
import { Checkpointer } from './checkpointer.ts'
import type { CheckpointerOptions, CheckpointStats } from './checkpointer.ts'
import { GroupCommit } from './group-commit.ts'
import type { GroupCommitStats } from './group-commit.ts'
import type { MemoryModel } from './memory-model.ts'
import { loadModel } from './sqlite-load.ts'
import { openDatabase, sqliteCode, SQLITE_BUSY, SQLITE_FULL, SQLITE_IOERR } from './sqlite-schema.ts'
import type {
  CallOptions, GroupAccess, GroupRecord, GroupSummary, JoinRequest, LeaveOutcome, Presence, SessionRecord, Store,
  StoredFile, UserRecord,
} from './store.ts'
import { ReplicaReads } from './replica-reads.ts'

/** Every statement the store runs after open; exported so a test can check they use indexes. */
export const SQL = {
  insertUser: 'INSERT INTO users (user_id, password_hash, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
  insertSession: 'INSERT INTO sessions (token_hash, user_id, client_id, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
  deleteSession: 'DELETE FROM sessions WHERE token_hash = ?',
  insertGroup: 'INSERT INTO groups (group_id, owner, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
  insertMember: 'INSERT INTO members (group_id, user_id, joined_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
  deleteMember: 'DELETE FROM members WHERE group_id = ? AND user_id = ?',
  setOwner: 'UPDATE groups SET owner = ? WHERE group_id = ?',
  deleteGroup: 'DELETE FROM groups WHERE group_id = ?',
  insertRequest: 'INSERT INTO requests (group_id, user_id, requested_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
  deleteRequest: 'DELETE FROM requests WHERE group_id = ? AND user_id = ?',
  insertFile: `INSERT INTO files (group_id, file_id, name, size, piece_bytes, piece_hashes, file_hash, added_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  upsertShare: `INSERT INTO shares (group_id, file_id, user_id, client_id, active) VALUES (?, ?, ?, ?, 1)
    ON CONFLICT DO UPDATE SET active = 1`,
  deleteShare: 'DELETE FROM shares WHERE group_id = ? AND file_id = ? AND user_id = ? AND client_id = ?',
  deleteUserShares: 'DELETE FROM shares WHERE group_id = ? AND user_id = ?',
  deleteFile: 'DELETE FROM files WHERE group_id = ? AND file_id = ?',
  deleteUnsharedFiles: `DELETE FROM files WHERE group_id = ?1 AND NOT EXISTS
    (SELECT 1 FROM shares s WHERE s.group_id = ?1 AND s.file_id = files.file_id)`,
  setSharesActive: 'UPDATE shares SET active = ? WHERE user_id = ? AND client_id = ?',
  reactivateShare: `UPDATE shares SET active = 1
    WHERE group_id = ? AND file_id = ? AND user_id = ? AND client_id = ?`,
} as const

type Statements = { [K in keyof typeof SQL]: StatementSync }
type SharerId = { userId: string, clientId: string }

export async function openSqliteStore (path: string, opts: { checkpoints?: CheckpointerOptions } = {}): Promise<SqliteStore> {
  const db = openDatabase(path)
  let wal: FileHandle | undefined
  try {
    wal = await open(`${path}-wal`, 'r+')
    await syncDirectory(dirname(path))
  } catch (err) {
    await wal?.close()
    db.close()
    throw new PeershareError('STORE_UNAVAILABLE', `cannot open the write-ahead log of ${path}: ${String(err)}`, { cause: err })
  }
  let model: MemoryModel
  try {
    model = loadModel(db)
  } catch (err) {
    await wal.close()
    db.close()
    throw new PeershareError('STORE_UNAVAILABLE', `cannot read the tracker database ${path}: ${String(err)}`, { cause: err })
  }
  return new SqliteStore(db, wal, model, new Checkpointer(db, path, opts.checkpoints))
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

export class SqliteStore extends ReplicaReads implements Store {
  readonly #db: DatabaseSync
  readonly #wal: FileHandle
  readonly #commit: GroupCommit
  readonly #q: Statements
  readonly #begin: StatementSync
  readonly #end: StatementSync
  readonly #rollback: StatementSync
  readonly #model: MemoryModel
  readonly #checkpointer: Checkpointer | undefined
  /** Model changes of the transaction under way: applied after its COMMIT, dropped on ROLLBACK. */
  readonly #staged: Array<() => void> = []
  readonly #presence = new Map<string, Presence>()
  #presenceVersion = 0
  #closing: Promise<void> | undefined

  /** Use openSqliteStore. */
  constructor (db: DatabaseSync, wal: FileHandle, model: MemoryModel, checkpointer?: Checkpointer) {
    super()
    this.#db = db
    this.#wal = wal
    this.#model = model
    this.#checkpointer = checkpointer
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

  /** Checkpoints the worker ran (undefined: SQLite's automatic ones). */
  get checkpointStats (): CheckpointStats | undefined {
    return this.#checkpointer?.stats
  }

  close (): Promise<void> {
    this.#closing ??= (async () => {
      await this.#commit.drain() // writes already committed still get their acknowledgement
      await this.#checkpointer?.stop() // its connection first: the store's, closing last, removes the WAL
      await this.#wal.close()
      this.#presence.clear()
      this.#db.close() // checkpoints, fsyncs and removes the -wal file
    })()
    return this.#closing
  }

  async createUser (user: UserRecord, opts?: CallOptions): Promise<void> {
    await this.#write(opts, () => {
      if (this.#model.getUser(user.userId) !== undefined || this.#q.insertUser.run(user.userId, user.passwordHash, user.createdAt).changes === 0) {
        throw new PeershareError('EXISTS', `user ${user.userId} already exists: choose another user id`)
      }
      this.#stage(() => this.#model.putUser(user))
    })
  }


  async createSession (s: SessionRecord, opts?: CallOptions): Promise<void> {
    await this.#write(opts, () => {
      if (this.#model.getSession(s.tokenHash) !== undefined || this.#q.insertSession.run(s.tokenHash, s.userId, s.clientId, s.createdAt).changes === 0) {
        throw new PeershareError('EXISTS', 'that session already exists')
      }
      this.#stage(() => this.#model.putSession(s))
    })
  }


  async deleteSession (tokenHash: string, opts?: CallOptions): Promise<boolean> {
    return await this.#write(opts, () => {
      if (this.#q.deleteSession.run(tokenHash).changes === 0) return false
      this.#stage(() => this.#model.deleteSession(tokenHash))
      return true
    })
  }

  async createGroup (groupId: string, owner: string, now: number, opts?: CallOptions): Promise<void> {
    await this.#write(opts, () => {
      if (this.#model.hasGroup(groupId) || this.#q.insertGroup.run(groupId, owner, now).changes === 0) {
        throw new PeershareError('EXISTS', `group ${groupId} already exists: choose another name, or join_group ${groupId}`)
      }
      this.#q.insertMember.run(groupId, owner, now)
      this.#stage(() => {
        this.#model.putGroup(groupId, owner, now)
        this.#model.putMember(groupId, owner, now)
      })
    })
  }





  async addRequest (groupId: string, userId: string, now: number, opts?: CallOptions): Promise<void> {
    await this.#write(opts, () => {
      this.#requireGroup(groupId)
      if (this.#model.isMember(groupId, userId)) {
        throw new PeershareError('ALREADY_MEMBER', `you are already a member of ${groupId}`)
      }
      if (this.#model.hasRequest(groupId, userId) || this.#q.insertRequest.run(groupId, userId, now).changes === 0) {
        throw new PeershareError('EXISTS', `you already asked to join ${groupId}: wait for its owner to accept`)
      }
      this.#stage(() => this.#model.putRequest(groupId, userId, now))
    })
  }


  async acceptRequest (groupId: string, userId: string, now: number, opts?: CallOptions): Promise<void> {
    await this.#write(opts, () => {
      this.#deleteRequestRow(groupId, userId)
      this.#q.insertMember.run(groupId, userId, now)
      this.#stage(() => {
        this.#model.deleteRequest(groupId, userId)
        this.#model.putMember(groupId, userId, now)
      })
    })
  }

  async rejectRequest (groupId: string, userId: string, opts?: CallOptions): Promise<void> {
    await this.#write(opts, () => {
      this.#deleteRequestRow(groupId, userId)
      this.#stage(() => this.#model.deleteRequest(groupId, userId))
    })
  }

  async leaveGroup (groupId: string, userId: string, opts?: CallOptions): Promise<LeaveOutcome> {
    return await this.#write(opts, () => {
      const group = this.#model.getGroup(groupId)
      if (group === undefined) throw new PeershareError('NOT_FOUND', `group ${groupId} does not exist`)
      const outcome = decideLeave(group, userId)
      if (outcome.groupDeleted) {
        this.#q.deleteGroup.run(groupId) // cascades to members, requests, files and shares
        this.#stage(() => this.#model.deleteGroup(groupId))
        return outcome
      }
      this.#q.deleteMember.run(groupId, userId)
      this.#q.deleteUserShares.run(groupId, userId)
      this.#q.deleteUnsharedFiles.run(groupId)
      if (outcome.newOwner !== null) this.#q.setOwner.run(outcome.newOwner, groupId)
      this.#stage(() => {
        this.#model.deleteMember(groupId, userId)
        this.#model.deleteUserShares(groupId, userId)
        if (outcome.newOwner !== null) this.#model.setOwner(groupId, outcome.newOwner)
      })
      return outcome
    })
  }

  async addShare (groupId: string, fileId: string, meta: FileMeta, sharer: SharerId, now: number,
    opts?: CallOptions): Promise<{ newFile: boolean }> {
    return await this.#write(opts, () => {
      this.#requireGroup(groupId)
      if (!this.#model.isMember(groupId, sharer.userId)) {
        throw new PeershareError('NOT_MEMBER', `you are not a member of ${groupId}: join_group ${groupId} first`)
      }
      const existing = this.#model.getFile(groupId, meta.name)
      if (existing !== undefined && existing.fileId !== fileId) {
        throw new PeershareError('EXISTS', `a different file named ${meta.name} is already shared in ${groupId}: rename yours`)
      }
      if (existing === undefined) {
        this.#q.insertFile.run(groupId, fileId, meta.name, meta.size, meta.pieceBytes, meta.pieceHashes, meta.fileHash, now)
      }
      this.#q.upsertShare.run(groupId, fileId, sharer.userId, sharer.clientId)
      this.#stage(() => {
        if (existing === undefined) this.#model.putFile(groupId, fileId, meta)
        this.#model.putShare(groupId, fileId, sharer, true)
      })
      return { newFile: existing === undefined }
    })
  }

  async removeShare (groupId: string, fileName: string, sharer: SharerId, opts?: CallOptions): Promise<{ fileRemoved: boolean }> {
    return await this.#write(opts, () => {
      const file = this.#model.getFile(groupId, fileName)
      if (file === undefined || !this.#model.isSharing(groupId, file.fileId, sharer) ||
        this.#q.deleteShare.run(groupId, file.fileId, sharer.userId, sharer.clientId).changes === 0) {
        throw new PeershareError('NOT_FOUND', `you do not share ${fileName} in ${groupId}`)
      }
      const fileRemoved = file.sharers.length === 1 // that one sharer was this one
      if (fileRemoved) this.#q.deleteFile.run(groupId, file.fileId)
      this.#stage(() => {
        this.#model.deleteShare(groupId, file.fileId, sharer)
        if (fileRemoved) this.#model.deleteFile(groupId, file.fileId)
      })
      return { fileRemoved }
    })
  }

  async setSharesActive (sharer: SharerId, active: boolean, opts?: CallOptions): Promise<void> {
    await this.#write(opts, () => {
      this.#q.setSharesActive.run(active ? 1 : 0, sharer.userId, sharer.clientId)
      this.#stage(() => this.#model.setSharesActive(sharer, active))
    })
  }

  async reactivateShares (sharer: SharerId, shares: Array<{ groupId: string, fileId: string }>,
    opts?: CallOptions): Promise<{ restored: number, gone: Array<{ groupId: string, fileId: string }> }> {
    return await this.#write(opts, () => {
      const gone: Array<{ groupId: string, fileId: string }> = []
      const restored: Array<{ groupId: string, fileId: string }> = []
      for (const s of shares) {
        if (!this.#model.isSharing(s.groupId, s.fileId, sharer)) {
          gone.push({ groupId: s.groupId, fileId: s.fileId })
          continue
        }
        this.#q.reactivateShare.run(s.groupId, s.fileId, sharer.userId, sharer.clientId)
        restored.push(s)
      }
      this.#stage(() => {
        for (const s of restored) this.#model.putShare(s.groupId, s.fileId, sharer, true)
      })
      return { restored: restored.length, gone }
    })
  }



  async presenceUp (presence: Presence, opts?: CallOptions): Promise<void> {
    this.enter(opts)
    this.#presence.set(presence.clientId, Object.freeze({ ...presence }))
    this.#presenceVersion++
  }

  async presenceDown (clientId: string, opts?: CallOptions): Promise<void> {
    this.enter(opts)
    if (this.#presence.delete(clientId)) this.#presenceVersion++
  }

  presenceVersion (): number {
    return this.#presenceVersion
  }

  async getPresence (clientIds: readonly string[], opts?: CallOptions): Promise<Map<string, Presence>> {
    this.enter(opts)
    const out = new Map<string, Presence>()
    for (const id of clientIds) {
      const p = this.#presence.get(id)
      if (p !== undefined) out.set(id, p)
    }
    return out
  }

  protected replica (): MemoryModel {
    return this.#model
  }

  /** Every call also acknowledges writes whose fsync has completed (group-commit.ts). */
  protected override enter (opts: CallOptions | undefined): void {
    this.#commit.poll()
    super.enter(opts)
  }

  protected isClosing (): boolean {
    return this.#closing !== undefined
  }

  #stage (change: () => void): void {
    this.#staged.push(change)
  }

  /**
   * Runs `fn` in one IMMEDIATE transaction, applies its staged model changes once COMMIT has
   * succeeded, then waits until the commit is on stable storage.
   */
  async #write<T> (opts: CallOptions | undefined, fn: () => T): Promise<T> {
    this.enter(opts)
    for (let held = this.#checkpointer?.writesHeld(); held !== undefined; held = this.#checkpointer?.writesHeld()) {
      await held // a checkpoint catching up (checkpointer.ts)
      this.enter(opts) // the caller may have given up, or the store closed, meanwhile
    }
    let result: T
    try {
      this.#begin.run()
      result = fn()
      this.#end.run()
    } catch (err) {
      this.#staged.length = 0
      if (this.#db.isTransaction) this.#rollback.run()
      throw storeError(err)
    }
    // the rows are committed: the model must show them now, whatever happens next
    for (const change of this.#staged) change()
    this.#staged.length = 0
    await this.#commit.durable(opts?.signal)
    return result
  }

  #requireGroup (groupId: string): void {
    if (!this.#model.hasGroup(groupId)) throw new PeershareError('NOT_FOUND', `group ${groupId} does not exist`)
  }

  /** Deletes the pending request's row; NOT_FOUND when there is no such group or request. */
  #deleteRequestRow (groupId: string, userId: string): void {
    this.#requireGroup(groupId)
    if (!this.#model.hasRequest(groupId, userId) || this.#q.deleteRequest.run(groupId, userId).changes === 0) {
      throw new PeershareError('NOT_FOUND', `${userId} has not asked to join ${groupId}`)
    }
  }
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
