// The tracker's state behind one interface. Implementations: sqlite.ts (embedded, default) and,
// later, etcd.ts (shared by several trackers). One contract suite (test/store/contract.ts) runs
// against every implementation. Every method takes { signal } so a caller can bound it in time.
// Reads (get*, list*, groupAccess, membershipsOf, getPresence) are answered from the store's memory
// (its replica of the state): they settle without waiting for any I/O, so a caller needs no deadline
// for them. A tracker makes tens of thousands a second; the contract suite checks that they never wait.
// Conditional writes are atomic inside the store: uniqueness, accepting a request, leaving a group
// (ownership transfer, deleting an empty group), registering a share.
// Records and arrays a read returns may be shared with other callers and frozen: read them, never
// change them (copy a list before sorting it). Nor does the store: a change comes back as a new
// record or array, and an unchanged list may come back as the same array, which lets a cache of
// replies (tracker/reply-cache.ts) know it is current in O(1).

import type { FileMeta } from '../protocol/file-meta.ts'

export interface CallOptions {
  signal?: AbortSignal
}

export interface UserRecord {
  userId: string
  /** Encoded scrypt hash (security/passwords.ts); never the password. */
  passwordHash: string
  createdAt: number
}

export interface SessionRecord {
  /** SHA-256 (hex) of the session token: the token itself is never stored. */
  tokenHash: string
  userId: string
  /** The client identity the session is bound to. */
  clientId: string
  createdAt: number
}

export interface Member {
  userId: string
  joinedAt: number
}

export interface GroupRecord {
  groupId: string
  owner: string
  createdAt: number
  /** Every member including the owner, earliest joiner first. */
  members: Member[]
}

/** A group's owner and one user's standing in it: what most handlers check, without the member list. */
export interface GroupAccess {
  groupId: string
  owner: string
  /** The user is a member (the owner is one). */
  member: boolean
  /** The user asked to join and waits for the owner. */
  pending: boolean
}

export interface GroupSummary {
  groupId: string
  owner: string
  memberCount: number
}

export interface JoinRequest {
  userId: string
  requestedAt: number
}

export interface LeaveOutcome {
  /** The member who became owner, when the owner left and others remain. */
  newOwner: string | null
  /** The group was left empty and deleted, with its requests and files. */
  groupDeleted: boolean
}

export interface Sharer {
  userId: string
  clientId: string
  /** False while the sharing client is logged out (logout stops sharing, login restores it). */
  active: boolean
}

export interface StoredFile {
  fileId: string
  meta: FileMeta
  sharers: Sharer[]
}

/** Who is connected now. Not durable: a restarted tracker learns it again as clients reconnect. */
export interface Presence {
  clientId: string
  userId: string
  peerAddr: string
}

export interface Store {
  close (): Promise<void>

  /** EXISTS when the user id is taken. */
  createUser (user: UserRecord, opts?: CallOptions): Promise<void>
  getUser (userId: string, opts?: CallOptions): Promise<UserRecord | undefined>

  createSession (session: SessionRecord, opts?: CallOptions): Promise<void>
  getSession (tokenHash: string, opts?: CallOptions): Promise<SessionRecord | undefined>
  /** Returns whether a session was deleted. */
  deleteSession (tokenHash: string, opts?: CallOptions): Promise<boolean>

  /** EXISTS when the group id is taken; the owner is its first member. */
  createGroup (groupId: string, owner: string, now: number, opts?: CallOptions): Promise<void>
  getGroup (groupId: string, opts?: CallOptions): Promise<GroupRecord | undefined>
  /** The owner and the user's standing, or undefined when there is no such group. O(1): no member list is read. */
  groupAccess (groupId: string, userId: string, opts?: CallOptions): Promise<GroupAccess | undefined>
  listGroups (opts?: CallOptions): Promise<readonly GroupSummary[]>
  /** Group ids the user is a member of, and those it asked to join (in no particular order). */
  membershipsOf (userId: string, opts?: CallOptions): Promise<{ member: string[], pending: string[] }>

  /** NOT_FOUND (no group), ALREADY_MEMBER, EXISTS (already requested). */
  addRequest (groupId: string, userId: string, now: number, opts?: CallOptions): Promise<void>
  listRequests (groupId: string, opts?: CallOptions): Promise<readonly JoinRequest[]>
  /** Atomically turns a pending request into membership. NOT_FOUND when there is no such request. */
  acceptRequest (groupId: string, userId: string, now: number, opts?: CallOptions): Promise<void>
  /** NOT_FOUND when there is no such request. */
  rejectRequest (groupId: string, userId: string, opts?: CallOptions): Promise<void>
  /**
   * Atomically removes a member and its shares in the group; hands ownership to the earliest
   * remaining joiner when the owner leaves; deletes a group left empty. NOT_FOUND / NOT_MEMBER.
   */
  leaveGroup (groupId: string, userId: string, opts?: CallOptions): Promise<LeaveOutcome>

  /**
   * Registers (userId, clientId) as a sharer of the file in the group, adding the file if new, and
   * marks the share active. EXISTS when a different file (other fileId) has that name in the group.
   * Returns whether the file was new to the group.
   */
  addShare (groupId: string, fileId: string, meta: FileMeta, sharer: { userId: string, clientId: string }, now: number,
    opts?: CallOptions): Promise<{ newFile: boolean }>
  /** Removes that client's share; a file left with no sharer disappears. NOT_FOUND when not shared by it. */
  removeShare (groupId: string, fileName: string, sharer: { userId: string, clientId: string },
    opts?: CallOptions): Promise<{ fileRemoved: boolean }>
  /** Marks every share of (userId, clientId) active or not (logout / login). */
  setSharesActive (sharer: { userId: string, clientId: string }, active: boolean, opts?: CallOptions): Promise<void>
  /** Reactivates the listed shares of (userId, clientId) that still exist; returns those that do not. */
  reactivateShares (sharer: { userId: string, clientId: string }, shares: Array<{ groupId: string, fileId: string }>,
    opts?: CallOptions): Promise<{ restored: number, gone: Array<{ groupId: string, fileId: string }> }>
  listFiles (groupId: string, opts?: CallOptions): Promise<readonly StoredFile[]>
  getFile (groupId: string, fileName: string, opts?: CallOptions): Promise<StoredFile | undefined>

  presenceUp (presence: Presence, opts?: CallOptions): Promise<void>
  presenceDown (clientId: string, opts?: CallOptions): Promise<void>
  /** The presences of the given clients that are connected now. */
  getPresence (clientIds: readonly string[], opts?: CallOptions): Promise<Map<string, Presence>>
  /**
   * A number that changes whenever some client's presence changes (here or, with etcd, through
   * another tracker or a lease's expiry), and may change when none did: while it stays the same,
   * getPresence answers the same. O(1) and synchronous: the tracker checks it at every list_files
   * instead of asking for the presence of every sharer of the group.
   */
  presenceVersion (): number
}
