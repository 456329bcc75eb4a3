// Encoded replies for the two hot reads: list_files (half of a tracker's requests) and list_groups
// (a third). JSON encoding of their results was the biggest cost of a tracker request after the
// socket write, so their JSON is kept, and server.ts splices it into the reply frame as bytes.
//
// Nothing here is told about changes: each cached reply remembers what it was built from and is
// reused only while the store hands out the same things. This works with any Store because a
// StoredFile or GroupSummary it hands out is never changed (a change comes back as a new record,
// store.ts), so comparing records by identity is exact and cheap; presence, which has no records,
// is compared by value (the user each sharing client is logged in as, all a listing depends on),
// and only once the store's presence version has moved since the reply was last checked.
//
//   list_files:  per group: the file records + the sharing clients' users → the whole result JSON.
//   list_groups: the group list changes with every create/leave, and roles differ per user, so a
//                per-user reply would rarely be reused; instead each group's part up to its role is
//                kept (per record), the sorted list is kept (per list), and a request joins them
//                with its own roles.

import type { FileListing, GroupListing } from '../protocol/control.ts'
import { FRAME_HEADER_BYTES } from '../protocol/frame.ts'
import type { GroupSummary, Presence, StoredFile } from '../store/store.ts'
import { fileFacts } from './listings.ts'

/**
 * A result already encoded as JSON (UTF-8): server.ts sends it as the reply's `result` without
 * re-encoding. Its bytes are `parts` in order: slices of buffers the cache shares between replies
 * (a list_groups reply is the shared list with a few roles in between), so thousands of replies
 * waiting in socket buffers hold one copy of the list, not one each.
 */
export class EncodedResult {
  readonly parts: readonly Buffer[]
  readonly length: number
  constructor (parts: Buffer | readonly Buffer[]) {
    this.parts = Buffer.isBuffer(parts) ? [parts] : parts
    let length = 0
    for (const p of this.parts) length += p.length
    this.length = length
  }

  /** The whole JSON as one buffer (a copy unless it is a single part). */
  get json (): Buffer {
    return this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.length)
  }
}

// Groups whose list_files reply is kept at once. Past it the cache starts over (a deleted group's
// entry is dropped that way too): rebuilding costs one encoding per group, the bound is what matters.
export const MAX_CACHED_GROUPS = 4096

interface FilesEntry {
  /** The records the reply was built from, in the store's order. */
  files: readonly StoredFile[]
  /** Clients with an active share in the group, and the user each was logged in as (undefined: offline). */
  clientIds: string[]
  users: Array<string | undefined>
  /** The store's presenceVersion when `users` was last found current. */
  presenceVersion: number
  json: Buffer
}

interface GroupsEntry {
  /** The list the reply was built from, in the store's order. */
  list: readonly GroupSummary[]
  /** The reply as a user with no role in any group sees it (every role "none"). */
  json: Buffer
  /** groupId → its place in the sorted list. */
  index: Map<string, number>
  /** Per sorted group: where its `"none"` starts in json. */
  roleAt: Int32Array
  /** owner → the places of the groups it owns. */
  owned: Map<string, number[]>
}

const NONE_JSON = '"none"'
const NONE = Buffer.from(NONE_JSON)
const ROLE_JSON: Record<Exclude<GroupListing['role'], 'none'>, Buffer> = {
  owner: Buffer.from('"owner"'),
  member: Buffer.from('"member"'),
  pending: Buffer.from('"pending"'),
}

// Replies up to this size are copied into one frame buffer (one socket write, no per-part cost);
// bigger ones go out as the frame head, the shared parts themselves, and the closing brace.
export const COPY_REPLY_BELOW = 16 * 1024

/**
 * The frame of `{"id":id,"ok":true,"result":<json>}` as buffers to write in order: the bytes
 * JSON.stringify would give, with the result copied in (small) or referenced (big) rather than
 * encoded again.
 */
export function encodeResultFrame (id: number, result: EncodedResult): Buffer[] {
  const head = `{"id":${id},"ok":true,"result":`
  const length = head.length + result.length + 1
  if (length >= COPY_REPLY_BELOW) {
    const start = Buffer.allocUnsafe(FRAME_HEADER_BYTES + head.length)
    start.writeUInt32BE(length, 0)
    start.write(head, FRAME_HEADER_BYTES, 'latin1') // ASCII only: digits and punctuation
    return [start, ...result.parts, CLOSE_ROW]
  }
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length)
  out.writeUInt32BE(length, 0)
  out.write(head, FRAME_HEADER_BYTES, 'latin1')
  let at = FRAME_HEADER_BYTES + head.length
  for (const p of result.parts) at += p.copy(out, at)
  out[at] = 0x7d // }
  return [out]
}

const groupPart = new WeakMap<GroupSummary, string>()

function partOf (g: GroupSummary): string {
  let p = groupPart.get(g)
  if (p === undefined) {
    p = `{"groupId":${JSON.stringify(g.groupId)},"owner":${JSON.stringify(g.owner)},"members":${JSON.stringify(g.memberCount)},"role":`
    groupPart.set(g, p)
  }
  return p
}

const filePart = new WeakMap<StoredFile, string>()

/** `{"name":…,"fileId":…,"size":…,"sharers":[…],"sharersOnline":` of a file record. */
function filePartOf (f: StoredFile): string {
  let p = filePart.get(f)
  if (p === undefined) {
    const x = fileFacts(f)
    p = `{"name":${JSON.stringify(x.name)},"fileId":${JSON.stringify(x.fileId)},"size":${JSON.stringify(x.size)},` +
      `"sharers":${JSON.stringify(x.sharers)},"sharersOnline":`
    filePart.set(f, p)
  }
  return p
}

function sameRecords<T> (a: readonly T[], b: readonly T[]): boolean {
  if (a === b) return true // an unchanged list is often the very same array (store.ts)
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function byName (a: StoredFile, b: StoredFile): number {
  return a.meta.name < b.meta.name ? -1 : a.meta.name > b.meta.name ? 1 : 0
}

export class ReplyCache {
  readonly #files = new Map<string, FilesEntry>()
  #groups: GroupsEntry | undefined

  /** Entries held (tests). */
  get size (): number {
    return this.#files.size
  }

  /**
   * The list_files result for `files` (the group's records from the store), as JSON. Who is online
   * changes without any record changing: once the store's `presenceVersion` (read before
   * `presenceOf` is asked) has moved, `presenceOf` is asked about the clients with an active share.
   */
  async listFiles (groupId: string, files: readonly StoredFile[], presenceVersion: number,
    presenceOf: (clientIds: string[]) => Promise<Map<string, Presence>>): Promise<EncodedResult> {
    const cached = this.#files.get(groupId)
    if (cached !== undefined && sameRecords(cached.files, files)) {
      if (cached.presenceVersion === presenceVersion || cached.clientIds.length === 0) return new EncodedResult(cached.json)
      const presence = await presenceOf(cached.clientIds)
      if (cached.clientIds.every((id, i) => presence.get(id)?.userId === cached.users[i])) {
        cached.presenceVersion = presenceVersion
        return new EncodedResult(cached.json)
      }
    }
    const clientIds = new Set<string>()
    for (const f of files) for (const s of fileFacts(f).active) clientIds.add(s.clientId)
    const ids = [...clientIds]
    const presence = ids.length === 0 ? new Map<string, Presence>() : await presenceOf(ids)
    const sorted = files.slice().sort(byName)
    let out = `{"groupId":${JSON.stringify(groupId)},"files":[`
    for (let i = 0; i < sorted.length; i++) {
      const f = sorted[i]!
      out += (i === 0 ? '' : ',') + filePartOf(f) + String(onlineCount(f, presence)) + '}'
    }
    const json = Buffer.from(out + ']}', 'utf8')
    if (this.#files.size >= MAX_CACHED_GROUPS && !this.#files.has(groupId)) this.#files.clear()
    this.#files.set(groupId, { files, clientIds: ids, users: ids.map((id) => presence.get(id)?.userId), presenceVersion, json })
    return new EncodedResult(json)
  }

  /**
   * The list_groups result for `groups` (the store's list) as `userId` sees it, as JSON: the
   * everyone-"none" reply of this list with the user's own roles (a few groups) put in.
   */
  listGroups (groups: readonly GroupSummary[], userId: string, mine: { member: readonly string[], pending: readonly string[] }): EncodedResult {
    let entry = this.#groups
    if (entry === undefined || !sameRecords(entry.list, groups)) {
      entry = groupsEntry(groups)
      this.#groups = entry
    }
    // role by place in the list; the order of the checks is the role's precedence
    const roles = new Map<number, Exclude<GroupListing['role'], 'none'>>()
    for (const id of mine.pending) { const i = entry.index.get(id); if (i !== undefined) roles.set(i, 'pending') }
    for (const id of mine.member) { const i = entry.index.get(id); if (i !== undefined) roles.set(i, 'member') }
    for (const i of entry.owned.get(userId) ?? []) roles.set(i, 'owner')
    if (roles.size === 0) return new EncodedResult(entry.json)
    // the reply is the shared bytes cut at the user's roles: slices, nothing copied
    const places = [...roles.keys()].sort((x, y) => x - y)
    const parts: Buffer[] = []
    let from = 0
    for (const i of places) {
      const at = entry.roleAt[i]!
      if (at > from) parts.push(entry.json.subarray(from, at))
      parts.push(ROLE_JSON[roles.get(i)!])
      from = at + NONE.length
    }
    parts.push(entry.json.subarray(from))
    return new EncodedResult(parts)
  }
}

function byGroupId (a: GroupSummary, b: GroupSummary): number {
  return a.groupId < b.groupId ? -1 : a.groupId > b.groupId ? 1 : 0
}

function inIdOrder (groups: readonly GroupSummary[]): boolean {
  for (let i = 1; i < groups.length; i++) if (byGroupId(groups[i - 1]!, groups[i]!) > 0) return false
  return true
}

/**
 * Built again after every group change (a create or a leave changes the list): one string, one
 * encoding. The replica's list is usually in id order already, so it is checked before it is sorted.
 */
function groupsEntry (groups: readonly GroupSummary[]): GroupsEntry {
  const sorted = inIdOrder(groups) ? groups : groups.slice().sort(byGroupId)
  const index = new Map<string, number>()
  const owned = new Map<string, number[]>()
  const roleAt = new Int32Array(sorted.length)
  let out = '{"groups":['
  for (let i = 0; i < sorted.length; i++) {
    const g = sorted[i]!
    index.set(g.groupId, i)
    const list = owned.get(g.owner)
    if (list === undefined) owned.set(g.owner, [i])
    else list.push(i)
    out += (i === 0 ? '' : ',') + partOf(g)
    roleAt[i] = out.length
    out += NONE_JSON + '}'
  }
  out += ']}'
  const json = Buffer.from(out, 'utf8')
  // roleAt counted UTF-16 units, which are bytes while the text is ASCII (ids always are: names.ts)
  if (json.length !== out.length) toByteOffsets(out, roleAt)
  return { list: groups, json, index, roleAt, owned }
}

/** Turns ascending offsets into `text` into offsets into its UTF-8 bytes, in one pass. */
function toByteOffsets (text: string, offsets: Int32Array): void {
  let chars = 0
  let bytes = 0
  for (let i = 0; i < offsets.length; i++) {
    bytes += Buffer.byteLength(text.slice(chars, offsets[i]), 'utf8')
    chars = offsets[i]!
    offsets[i] = bytes
  }
}

const CLOSE_ROW = Buffer.from('}')

/** Users with an active share whose client is connected now as that same user (a user counts once). */
function onlineCount (f: StoredFile, presence: Map<string, Presence>): FileListing['sharersOnline'] {
  const active = fileFacts(f).active
  let online = 0
  let counted: Set<string> | undefined
  for (const s of active) {
    if (presence.get(s.clientId)?.userId !== s.userId) continue
    if (active.length === 1) online = 1
    else (counted ??= new Set()).add(s.userId)
  }
  return counted?.size ?? online
}
