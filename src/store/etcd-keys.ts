// The etcd store's key layout and value encodings. Pure: no I/O. Every key lives under one prefix
// (default /peershare/v1), so several deployments can share a cluster and a test can use a fresh one:
//
//   users/<userId>                         {passwordHash, createdAt, n}
//   sessions/<tokenHash>                   {userId, clientId, createdAt, n}
//   groups/<groupId>                       {owner, createdAt, n}   the group's "head"
//   groups/<groupId>/members/<userId>      {joinedAt}
//   groups/<groupId>/requests/<userId>     {requestedAt, n}
//   files/<groupId>/<fileId>               {name, size, pieceBytes, pieceHashes (base64), fileHash (hex)}
//   shares/<groupId>/<fileId>/<userId>/<clientId>   {active}
//   presence/<clientId>                    {userId, peerAddr}, attached to its tracker's lease
//   sync                                   written only to mark a point in the watch stream
//
// Every write to a group's members, files or shares rewrites its head, so "the head's mod revision
// is unchanged" proves the replica's view of the whole group is current (etcd.ts). `n` is the nonce
// of the request that wrote the value: after an ambiguous failure (timeout, lost connection) the
// store recognises its own write. Components are URI-encoded, so no id can forge a '/'.
// Values read back are validated: a malformed one is skipped and logged, never trusted.

import type { FileMeta } from '../protocol/file-meta.ts'
import { SHA1_BYTES } from '../protocol/file-meta.ts'

export const DEFAULT_PREFIX = '/peershare/v1'

export type ParsedKey =
  | { kind: 'user', userId: string }
  | { kind: 'session', tokenHash: string }
  | { kind: 'group', groupId: string }
  | { kind: 'member', groupId: string, userId: string }
  | { kind: 'request', groupId: string, userId: string }
  | { kind: 'file', groupId: string, fileId: string }
  | { kind: 'share', groupId: string, fileId: string, userId: string, clientId: string }
  | { kind: 'presence', clientId: string }
  | { kind: 'sync' }

const enc = encodeURIComponent

export class Keys {
  /** The prefix with a trailing '/': every key of the store starts with it. */
  readonly root: string

  constructor (prefix: string = DEFAULT_PREFIX) {
    if (prefix.length === 0 || prefix.includes('\0')) throw new Error(`bad etcd key prefix '${prefix}'`)
    this.root = prefix.endsWith('/') ? prefix : `${prefix}/`
  }

  user (userId: string): string { return `${this.root}users/${enc(userId)}` }
  session (tokenHash: string): string { return `${this.root}sessions/${enc(tokenHash)}` }
  group (groupId: string): string { return `${this.root}groups/${enc(groupId)}` }
  /** Members and requests of the group (not its head). */
  groupChildren (groupId: string): string { return `${this.root}groups/${enc(groupId)}/` }
  member (groupId: string, userId: string): string { return `${this.groupChildren(groupId)}members/${enc(userId)}` }
  request (groupId: string, userId: string): string { return `${this.groupChildren(groupId)}requests/${enc(userId)}` }
  groupFiles (groupId: string): string { return `${this.root}files/${enc(groupId)}/` }
  file (groupId: string, fileId: string): string { return `${this.groupFiles(groupId)}${enc(fileId)}` }
  groupShares (groupId: string): string { return `${this.root}shares/${enc(groupId)}/` }
  /** Every client of one user sharing one file. */
  userFileShares (groupId: string, fileId: string, userId: string): string {
    return `${this.groupShares(groupId)}${enc(fileId)}/${enc(userId)}/`
  }

  share (groupId: string, fileId: string, userId: string, clientId: string): string {
    return `${this.userFileShares(groupId, fileId, userId)}${enc(clientId)}`
  }

  presence (clientId: string): string { return `${this.root}presence/${enc(clientId)}` }
  get sync (): string { return `${this.root}sync` }

  /** What a key under the root names, or undefined for a key this version does not know. */
  parse (key: string): ParsedKey | undefined {
    if (!key.startsWith(this.root)) return undefined
    let parts: string[]
    try {
      parts = key.slice(this.root.length).split('/').map((p) => decodeURIComponent(p))
    } catch {
      return undefined // a malformed %-escape: not a key we wrote
    }
    const [kind, a, b, c, d] = parts
    if (parts.some((p) => p.length === 0)) return undefined
    switch (parts.length) {
      case 1: return kind === 'sync' ? { kind: 'sync' } : undefined
      case 2:
        if (kind === 'users') return { kind: 'user', userId: a as string }
        if (kind === 'sessions') return { kind: 'session', tokenHash: a as string }
        if (kind === 'groups') return { kind: 'group', groupId: a as string }
        if (kind === 'presence') return { kind: 'presence', clientId: a as string }
        return undefined
      case 3: return kind === 'files' ? { kind: 'file', groupId: a as string, fileId: b as string } : undefined
      case 4:
        if (kind !== 'groups') return undefined
        if (b === 'members') return { kind: 'member', groupId: a as string, userId: c as string }
        if (b === 'requests') return { kind: 'request', groupId: a as string, userId: c as string }
        return undefined
      case 5:
        return kind === 'shares' ? { kind: 'share', groupId: a as string, fileId: b as string, userId: c as string, clientId: d as string } : undefined
      default: return undefined
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Values. Encoders take what the store writes; decoders return undefined for anything malformed.

export interface UserValue { passwordHash: string, createdAt: number, n: string }
export interface SessionValue { userId: string, clientId: string, createdAt: number, n: string }
export interface HeadValue { owner: string, createdAt: number, n: string }
export interface MemberValue { joinedAt: number }
export interface RequestValue { requestedAt: number, n: string }
export interface ShareValue { active: boolean }
export interface PresenceValue { userId: string, peerAddr: string }

export function encodeValue (value: UserValue | SessionValue | HeadValue | MemberValue | RequestValue | ShareValue | PresenceValue): string {
  return JSON.stringify(value)
}

export function encodeFile (meta: FileMeta): string {
  return JSON.stringify({
    name: meta.name,
    size: meta.size,
    pieceBytes: meta.pieceBytes,
    pieceHashes: meta.pieceHashes.toString('base64'),
    fileHash: meta.fileHash.toString('hex'),
  })
}

type Shape = Record<string, 'string' | 'number' | 'boolean'>

/** The parsed object when `text` is JSON with exactly these field types (extra fields ignored). */
function decode<T> (text: string, shape: Shape): T | undefined {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof v !== 'object' || v === null) return undefined
  for (const [field, type] of Object.entries(shape)) {
    const x = (v as Record<string, unknown>)[field]
    if (typeof x !== type || (type === 'number' && !Number.isSafeInteger(x))) return undefined
  }
  return v as T
}

export const decodeUser = (t: string): UserValue | undefined => decode(t, { passwordHash: 'string', createdAt: 'number', n: 'string' })
export const decodeSession = (t: string): SessionValue | undefined =>
  decode(t, { userId: 'string', clientId: 'string', createdAt: 'number', n: 'string' })
export const decodeHead = (t: string): HeadValue | undefined => decode(t, { owner: 'string', createdAt: 'number', n: 'string' })
export const decodeMember = (t: string): MemberValue | undefined => decode(t, { joinedAt: 'number' })
export const decodeRequest = (t: string): RequestValue | undefined => decode(t, { requestedAt: 'number', n: 'string' })
export const decodeShare = (t: string): ShareValue | undefined => decode(t, { active: 'boolean' })
export const decodePresence = (t: string): PresenceValue | undefined => decode(t, { userId: 'string', peerAddr: 'string' })

export function decodeFile (text: string): FileMeta | undefined {
  const v = decode<{ name: string, size: number, pieceBytes: number, pieceHashes: string, fileHash: string }>(text,
    { name: 'string', size: 'number', pieceBytes: 'number', pieceHashes: 'string', fileHash: 'string' })
  if (v === undefined || v.size < 0 || v.pieceBytes <= 0) return undefined
  const pieceHashes = Buffer.from(v.pieceHashes, 'base64')
  const fileHash = Buffer.from(v.fileHash, 'hex')
  const pieces = v.size === 0 ? 0 : Math.ceil(v.size / v.pieceBytes)
  if (pieceHashes.length !== pieces * SHA1_BYTES || fileHash.length !== SHA1_BYTES) return undefined
  return { name: v.name, size: v.size, pieceBytes: v.pieceBytes, pieceHashes, fileHash }
}
