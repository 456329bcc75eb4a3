// The tracker's durable state as an in-memory replica: users, sessions, groups (owner, members,
// join requests) and each group's files with their sharers. A store answers every read from here
// and applies each committed change with the row-level methods below (sqlite.ts right after COMMIT;
// etcd.ts, later, from its watch). It mirrors what was written and checks no rules: the store does
// that before writing. Pure: no I/O, no clock.
//
// Reads hand out shared views (a group's record, its sorted file list, the group list) built on
// the first read after a change and frozen, so a hot read allocates nothing big and no caller can
// alter the replica through them. Membership, requests and shares are indexed both ways (group →
// users, user → groups, client → shares), so every lookup is O(1) or O(what it returns).

import type { FileMeta } from '../protocol/file-meta.ts'
import type { GroupAccess, GroupRecord, GroupSummary, JoinRequest, Member, SessionRecord, Sharer, StoredFile, UserRecord } from './store.ts'

interface FileState {
  readonly groupId: string
  readonly fileId: string
  readonly meta: FileMeta
  /** sharerKey → frozen Sharer (replaced, never mutated). */
  readonly sharers: Map<string, Sharer>
  view: StoredFile | undefined
}

interface GroupState {
  readonly groupId: string
  owner: string
  readonly createdAt: number
  /** userId → joinedAt */
  readonly members: Map<string, number>
  /** userId → requestedAt */
  readonly requests: Map<string, number>
  readonly filesByName: Map<string, FileState>
  readonly filesById: Map<string, FileState>
  record: GroupRecord | undefined
  summary: GroupSummary | undefined
  requestList: readonly JoinRequest[] | undefined
  fileList: readonly StoredFile[] | undefined
}

const EMPTY: readonly never[] = Object.freeze([])

// ids never contain NUL (names.ts, hex client ids), so it separates the two parts unambiguously
function sharerKey (userId: string, clientId: string): string {
  return `${userId}\0${clientId}`
}

function byText (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

export class MemoryModel {
  readonly #users = new Map<string, UserRecord>()
  readonly #sessions = new Map<string, SessionRecord>()
  readonly #groups = new Map<string, GroupState>()
  /** userId → ids of the groups it is a member of */
  readonly #memberOf = new Map<string, Set<string>>()
  /** userId → ids of the groups it asked to join */
  readonly #pendingIn = new Map<string, Set<string>>()
  /** sharerKey → the files that client shares as that user, in every group */
  readonly #sharesOf = new Map<string, Set<FileState>>()
  #groupList: readonly GroupSummary[] | undefined

  // ---------------------------------------------------------------------------------------------
  // Reads

  /** How much the replica holds (for tests and for logs at start-up). */
  get counts (): { users: number, sessions: number, groups: number, files: number } {
    let files = 0
    for (const g of this.#groups.values()) files += g.filesById.size
    return { users: this.#users.size, sessions: this.#sessions.size, groups: this.#groups.size, files }
  }

  getUser (userId: string): UserRecord | undefined {
    return this.#users.get(userId)
  }

  getSession (tokenHash: string): SessionRecord | undefined {
    return this.#sessions.get(tokenHash)
  }

  hasGroup (groupId: string): boolean {
    return this.#groups.has(groupId)
  }

  /** Members earliest joiner first (ties: smaller user id), like the SQL it replaces. */
  getGroup (groupId: string): GroupRecord | undefined {
    const g = this.#groups.get(groupId)
    if (g === undefined) return undefined
    if (g.record === undefined) {
      const members = [...g.members].map(([userId, joinedAt]): Member => Object.freeze({ userId, joinedAt }))
      members.sort((a, b) => a.joinedAt - b.joinedAt || byText(a.userId, b.userId))
      g.record = Object.freeze({ groupId: g.groupId, owner: g.owner, createdAt: g.createdAt, members: Object.freeze(members) as Member[] })
    }
    return g.record
  }

  groupAccess (groupId: string, userId: string): GroupAccess | undefined {
    const g = this.#groups.get(groupId)
    if (g === undefined) return undefined
    return { groupId, owner: g.owner, member: g.members.has(userId), pending: g.requests.has(userId) }
  }

  isMember (groupId: string, userId: string): boolean {
    return this.#groups.get(groupId)?.members.has(userId) ?? false
  }

  hasRequest (groupId: string, userId: string): boolean {
    return this.#groups.get(groupId)?.requests.has(userId) ?? false
  }

  /** Every group, by id. */
  listGroups (): readonly GroupSummary[] {
    if (this.#groupList === undefined) {
      const list: GroupSummary[] = []
      for (const g of this.#groups.values()) {
        g.summary ??= Object.freeze({ groupId: g.groupId, owner: g.owner, memberCount: g.members.size })
        list.push(g.summary)
      }
      list.sort((a, b) => byText(a.groupId, b.groupId))
      this.#groupList = Object.freeze(list)
    }
    return this.#groupList
  }

  /** Fresh arrays, in no particular order. */
  membershipsOf (userId: string): { member: string[], pending: string[] } {
    return { member: [...this.#memberOf.get(userId) ?? EMPTY], pending: [...this.#pendingIn.get(userId) ?? EMPTY] }
  }

  /** Oldest request first (ties: smaller user id). */
  listRequests (groupId: string): readonly JoinRequest[] {
    const g = this.#groups.get(groupId)
    if (g === undefined) return EMPTY
    if (g.requestList === undefined) {
      const list = [...g.requests].map(([userId, requestedAt]): JoinRequest => Object.freeze({ userId, requestedAt }))
      list.sort((a, b) => a.requestedAt - b.requestedAt || byText(a.userId, b.userId))
      g.requestList = Object.freeze(list)
    }
    return g.requestList
  }

  /** The group's files by name (UTF-16 order); empty for an unknown group. */
  listFiles (groupId: string): readonly StoredFile[] {
    const g = this.#groups.get(groupId)
    if (g === undefined) return EMPTY
    if (g.fileList === undefined) {
      const list = [...g.filesByName.values()].map(fileView)
      list.sort((a, b) => byText(a.meta.name, b.meta.name))
      g.fileList = Object.freeze(list)
    }
    return g.fileList
  }

  getFile (groupId: string, name: string): StoredFile | undefined {
    const f = this.#groups.get(groupId)?.filesByName.get(name)
    return f === undefined ? undefined : fileView(f)
  }

  getFileById (groupId: string, fileId: string): StoredFile | undefined {
    const f = this.#groups.get(groupId)?.filesById.get(fileId)
    return f === undefined ? undefined : fileView(f)
  }

  isSharing (groupId: string, fileId: string, sharer: { userId: string, clientId: string }): boolean {
    return this.#groups.get(groupId)?.filesById.get(fileId)?.sharers.has(sharerKey(sharer.userId, sharer.clientId)) ?? false
  }

  // ---------------------------------------------------------------------------------------------
  // Changes, one per row (or per key) written. Deleting what is not there does nothing; adding a
  // child to a group or file that is not there is a bug in the caller and throws.

  putUser (user: UserRecord): void {
    this.#users.set(user.userId, Object.freeze({ ...user }))
  }

  putSession (session: SessionRecord): void {
    this.#sessions.set(session.tokenHash, Object.freeze({ ...session }))
  }

  deleteSession (tokenHash: string): boolean {
    return this.#sessions.delete(tokenHash)
  }

  /** Adds an empty group (the owner joins with putMember, as in the tables). */
  putGroup (groupId: string, owner: string, createdAt: number): void {
    const g = this.#groups.get(groupId)
    if (g !== undefined) {
      this.setOwner(groupId, owner)
      return
    }
    this.#groups.set(groupId, {
      groupId,
      owner,
      createdAt,
      members: new Map(),
      requests: new Map(),
      filesByName: new Map(),
      filesById: new Map(),
      record: undefined,
      summary: undefined,
      requestList: undefined,
      fileList: undefined,
    })
    this.#groupList = undefined
  }

  setOwner (groupId: string, owner: string): void {
    const g = this.#group(groupId)
    if (g.owner === owner) return
    g.owner = owner
    this.#membersChanged(g)
  }

  /** Removes the group with its members, requests, files and shares (the tables cascade the same way). */
  deleteGroup (groupId: string): void {
    const g = this.#groups.get(groupId)
    if (g === undefined) return
    for (const f of g.filesById.values()) this.#dropFile(g, f)
    for (const userId of g.members.keys()) unindex(this.#memberOf, userId, groupId)
    for (const userId of g.requests.keys()) unindex(this.#pendingIn, userId, groupId)
    this.#groups.delete(groupId)
    this.#groupList = undefined
  }

  putMember (groupId: string, userId: string, joinedAt: number): void {
    const g = this.#group(groupId)
    g.members.set(userId, joinedAt)
    index(this.#memberOf, userId, groupId)
    this.#membersChanged(g)
  }

  /** Removes the membership only: the store removes the member's shares with deleteUserShares. */
  deleteMember (groupId: string, userId: string): void {
    const g = this.#groups.get(groupId)
    if (g === undefined || !g.members.delete(userId)) return
    unindex(this.#memberOf, userId, groupId)
    this.#membersChanged(g)
  }

  putRequest (groupId: string, userId: string, requestedAt: number): void {
    const g = this.#group(groupId)
    g.requests.set(userId, requestedAt)
    index(this.#pendingIn, userId, groupId)
    g.requestList = undefined
  }

  deleteRequest (groupId: string, userId: string): boolean {
    const g = this.#groups.get(groupId)
    if (g === undefined || !g.requests.delete(userId)) return false
    unindex(this.#pendingIn, userId, groupId)
    g.requestList = undefined
    return true
  }

  /** Adds the file with no sharer yet; nothing changes when the group has it already. */
  putFile (groupId: string, fileId: string, meta: FileMeta): void {
    const g = this.#group(groupId)
    if (g.filesById.has(fileId)) return
    const f: FileState = { groupId, fileId, meta: ownMeta(meta), sharers: new Map(), view: undefined }
    g.filesById.set(fileId, f)
    g.filesByName.set(meta.name, f)
    g.fileList = undefined
  }

  deleteFile (groupId: string, fileId: string): void {
    const g = this.#groups.get(groupId)
    const f = g?.filesById.get(fileId)
    if (g === undefined || f === undefined) return
    this.#dropFile(g, f)
    g.filesById.delete(fileId)
    g.filesByName.delete(f.meta.name)
    g.fileList = undefined
  }

  /** Adds or updates one share. */
  putShare (groupId: string, fileId: string, sharer: { userId: string, clientId: string }, active: boolean): void {
    const g = this.#group(groupId)
    const f = g.filesById.get(fileId)
    if (f === undefined) throw new Error(`model: share of unknown file ${fileId} in ${groupId}`)
    const key = sharerKey(sharer.userId, sharer.clientId)
    if (f.sharers.get(key)?.active === active) return
    f.sharers.set(key, Object.freeze({ userId: sharer.userId, clientId: sharer.clientId, active }))
    index(this.#sharesOf, key, f)
    this.#fileChanged(g, f)
  }

  /** Removes one share; the file stays (the store deletes a file left without sharers). Returns the sharers left. */
  deleteShare (groupId: string, fileId: string, sharer: { userId: string, clientId: string }): number {
    const g = this.#groups.get(groupId)
    const f = g?.filesById.get(fileId)
    if (g === undefined || f === undefined) return 0
    const key = sharerKey(sharer.userId, sharer.clientId)
    if (f.sharers.delete(key)) {
      unindex(this.#sharesOf, key, f)
      this.#fileChanged(g, f)
    }
    return f.sharers.size
  }

  /** Removes every share of the user (any client) in the group, then the files no one shares any more. */
  deleteUserShares (groupId: string, userId: string): void {
    const g = this.#groups.get(groupId)
    if (g === undefined) return
    for (const f of [...g.filesById.values()]) {
      for (const [key, s] of f.sharers) {
        if (s.userId !== userId) continue
        f.sharers.delete(key)
        unindex(this.#sharesOf, key, f)
        this.#fileChanged(g, f)
      }
      if (f.sharers.size === 0) this.deleteFile(groupId, f.fileId)
    }
  }

  /** Marks every share of (userId, clientId), in every group, active or not. */
  setSharesActive (sharer: { userId: string, clientId: string }, active: boolean): void {
    const key = sharerKey(sharer.userId, sharer.clientId)
    for (const f of this.#sharesOf.get(key) ?? EMPTY) {
      if (f.sharers.get(key)?.active === active) continue
      f.sharers.set(key, Object.freeze({ userId: sharer.userId, clientId: sharer.clientId, active }))
      this.#fileChanged(this.#group(f.groupId), f)
    }
  }

  // ---------------------------------------------------------------------------------------------

  #group (groupId: string): GroupState {
    const g = this.#groups.get(groupId)
    if (g === undefined) throw new Error(`model: no group ${groupId}`)
    return g
  }

  /** Unindexes the file's shares (the caller unlinks the file itself). */
  #dropFile (g: GroupState, f: FileState): void {
    for (const key of f.sharers.keys()) unindex(this.#sharesOf, key, f)
    f.sharers.clear()
    this.#fileChanged(g, f)
  }

  #membersChanged (g: GroupState): void {
    g.record = undefined
    g.summary = undefined
    this.#groupList = undefined
  }

  #fileChanged (g: GroupState, f: FileState): void {
    f.view = undefined
    g.fileList = undefined
  }
}

function fileView (f: FileState): StoredFile {
  if (f.view === undefined) {
    const sharers = [...f.sharers.values()]
    sharers.sort((a, b) => byText(a.userId, b.userId) || byText(a.clientId, b.clientId))
    f.view = Object.freeze({ fileId: f.fileId, meta: f.meta, sharers: Object.freeze(sharers) as Sharer[] })
  }
  return f.view
}

/**
 * A frozen copy whose hashes live in their own memory: a small Buffer decoded from a request is a
 * slice of Node's shared 8 KiB pool, which would keep the whole slab alive as long as the file.
 */
function ownMeta (meta: FileMeta): FileMeta {
  const own = (b: Buffer): Buffer => {
    const copy = Buffer.allocUnsafeSlow(b.length)
    b.copy(copy)
    return copy
  }
  return Object.freeze({ name: meta.name, size: meta.size, pieceBytes: meta.pieceBytes, pieceHashes: own(meta.pieceHashes), fileHash: own(meta.fileHash) })
}

function index<K, V> (map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key)
  if (set === undefined) map.set(key, new Set([value]))
  else set.add(value)
}

function unindex<K, V> (map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key)
  if (set === undefined) return
  set.delete(value)
  if (set.size === 0) map.delete(key)
}
