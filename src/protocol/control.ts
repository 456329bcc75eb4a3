// The control protocol (client ↔ tracker): JSON bodies inside length-prefixed frames.
//   request  { id, op, args }            client → tracker, answered exactly once
//   response { id, ok: true, result }    or { id, ok: false, error: { code, message } }
//   event    { event, data }             tracker → client, unsolicited
// This module owns the message shapes and validates every request's arguments into typed values
// before any handler sees them. Pure: no I/O.

import { PeershareError, isErrorCode } from '../common/errors.ts'
import type { ErrorCode } from '../common/errors.ts'
import { decodeFileMeta } from './file-meta.ts'
import type { FileMeta, FileMetaWire } from './file-meta.ts'
import { validateFileName, validateGroupId, validatePassword, validateUserId } from './names.ts'

export const PROTOCOL_VERSION = 1
/** Before login: small frames only, so an unauthenticated socket cannot make us buffer much. */
export const MAX_UNAUTH_FRAME_BYTES = 64 * 1024
/** After login: room for the piece hashes of the largest file (MAX_FILE_BYTES, base64). */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024
export const MAX_REQUEST_ID = 2 ** 31 - 1
export const MAX_RESHARE_ITEMS = 10_000

// ---------------------------------------------------------------------------------------------
// Operations and their typed arguments

export interface OpArgs {
  hello: { version: number, clientId: string, peerAddr: string }
  ping: Record<string, never>
  create_user: { userId: string, password: string }
  login: { userId: string, password: string }
  resume: { token: string }
  logout: Record<string, never>
  create_group: { groupId: string }
  join_group: { groupId: string }
  leave_group: { groupId: string }
  list_requests: { groupId: string }
  accept_request: { groupId: string, userId: string }
  reject_request: { groupId: string, userId: string }
  list_groups: Record<string, never>
  list_files: { groupId: string }
  upload_file: { groupId: string, meta: FileMeta }
  stop_share: { groupId: string, fileName: string }
  reshare: { shares: Array<{ groupId: string, fileId: string }> }
  get_file: { groupId: string, fileName: string }
  /** Marks the caller's client as a partial holder (a running download) while its presence lives. */
  hold: { groupId: string, fileId: string }
}
export type Op = keyof OpArgs

export interface GroupListing {
  groupId: string
  owner: string
  members: number
  /** The caller's relation to the group. */
  role: 'owner' | 'member' | 'pending' | 'none'
}

export interface FileListing {
  name: string
  fileId: string
  size: number
  /** Distinct users sharing the file, sorted. */
  sharers: string[]
  /** How many of those users have a sharing client connected now. */
  sharersOnline: number
}

export interface Holder {
  userId: string
  peerAddr: string
  /** true: an online full sharer; false: a client still downloading it (serves its verified pieces). */
  complete: boolean
  /** "SHA256:<hex>" of the holder's certificate (over TLS): the downloader accepts no other. */
  fingerprint?: string
}

export interface OpResults {
  /** ticketKey (over TLS): the tracker's Ed25519 ticket public key, 64 hex; peers accept tickets it signed. */
  hello: { version: number, trackerNo: number, ticketKey?: string }
  ping: Record<string, never>
  create_user: { userId: string }
  login: { userId: string, token: string }
  resume: { userId: string }
  logout: { userId: string }
  create_group: { groupId: string }
  join_group: { groupId: string, status: 'requested' }
  leave_group: { groupId: string, newOwner: string | null, groupDeleted: boolean }
  list_requests: { groupId: string, requests: Array<{ userId: string, requestedAt: number }> }
  accept_request: { groupId: string, userId: string }
  reject_request: { groupId: string, userId: string }
  list_groups: { groups: GroupListing[] }
  list_files: { groupId: string, files: FileListing[] }
  upload_file: { groupId: string, name: string, fileId: string, size: number, pieces: number, alreadyShared: boolean }
  stop_share: { groupId: string, name: string, fileRemoved: boolean }
  reshare: { restored: number, gone: Array<{ groupId: string, fileId: string }> }
  /**
   * ticket (over TLS): base64 of a security/tickets.ts ticket naming the caller's certificate, valid
   * with every holder until ticketExpiresAt (ms since the epoch); a download asks again before then.
   */
  get_file: { groupId: string, fileId: string, meta: FileMetaWire, holders: Holder[], ticket?: string, ticketExpiresAt?: number }
  hold: { groupId: string, fileId: string }
}

/** Operations allowed before login (after hello). */
export const UNAUTHENTICATED_OPS: ReadonlySet<Op> = new Set(['hello', 'ping', 'create_user', 'login', 'resume'])

export interface ControlRequest<O extends Op = Op> {
  id: number
  op: O
  args: OpArgs[O]
}

export type ControlResponse =
  | { id: number, ok: true, result: unknown }
  | { id: number, ok: false, error: { code: ErrorCode, message: string } }

export interface ControlEvent {
  event: string
  data: unknown
}

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Requests may carry a FileMeta (upload_file), whose Buffers the encoder turns into base64/hex.
 * Responses and events must already hold wire shapes (get_file sends encodeFileMeta(meta)): they
 * are encoded without a replacer, which cost a fifth of the tracker's CPU (one call per key).
 */
export function encodeMessage (msg: ControlRequest | ControlResponse | ControlEvent): Buffer {
  return Buffer.from('op' in msg ? JSON.stringify(msg, wireReplacer) : JSON.stringify(msg), 'utf8')
}

// FileMeta holds Buffers: they never go out as JSON's default {type:'Buffer',data:[...]}
function wireReplacer (_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && 'pieceHashes' in value && Buffer.isBuffer((value as FileMeta).pieceHashes)) {
    const m = value as FileMeta
    return { name: m.name, size: m.size, pieceBytes: m.pieceBytes, pieceHashes: m.pieceHashes.toString('base64'), fileHash: m.fileHash.toString('hex') }
  }
  return value
}

export function errorResponse (id: number, err: PeershareError): ControlResponse {
  return { id, ok: false, error: { code: err.code, message: err.message } }
}

// ---------------------------------------------------------------------------------------------
// Decoding (tracker side): frame body → typed request

function parseJson (body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'))
  } catch {
    throw new PeershareError('PROTOCOL', 'frame is not valid JSON')
  }
}

function isObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Reads the request id alone, so that a request with bad arguments can still get an error reply
 * carrying its id. Returns undefined when there is no usable id (the connection should be dropped).
 */
export function peekRequestId (body: Buffer): number | undefined {
  let v: unknown
  try { v = parseJson(body) } catch { return undefined }
  if (isObject(v) && isRequestId(v.id)) return v.id
  return undefined
}

function isRequestId (v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_REQUEST_ID
}

const decoders: { [O in Op]: (a: Record<string, unknown>) => OpArgs[O] } = {
  hello: (a) => ({
    version: intArg(a, 'version', 1, 1_000_000),
    clientId: stringArg(a, 'clientId', /^[0-9a-f]{16,64}$/, 'hex, 16-64 digits'),
    peerAddr: peerAddrArg(a.peerAddr),
  }),
  ping: () => ({}),
  create_user: (a) => ({ userId: validateUserId(a.userId), password: validatePassword(a.password) }),
  login: (a) => ({ userId: validateUserId(a.userId), password: validatePassword(a.password) }),
  resume: (a) => ({ token: stringArg(a, 'token', /^[A-Za-z0-9_-]{43}$/, 'a session token') }),
  logout: () => ({}),
  create_group: (a) => ({ groupId: validateGroupId(a.groupId) }),
  join_group: (a) => ({ groupId: validateGroupId(a.groupId) }),
  leave_group: (a) => ({ groupId: validateGroupId(a.groupId) }),
  list_requests: (a) => ({ groupId: validateGroupId(a.groupId) }),
  accept_request: (a) => ({ groupId: validateGroupId(a.groupId), userId: validateUserId(a.userId) }),
  reject_request: (a) => ({ groupId: validateGroupId(a.groupId), userId: validateUserId(a.userId) }),
  list_groups: () => ({}),
  list_files: (a) => ({ groupId: validateGroupId(a.groupId) }),
  upload_file: (a) => ({ groupId: validateGroupId(a.groupId), meta: decodeFileMeta(a.meta) }),
  stop_share: (a) => ({ groupId: validateGroupId(a.groupId), fileName: validateFileName(a.fileName) }),
  reshare: (a) => ({ shares: reshareArg(a.shares) }),
  get_file: (a) => ({ groupId: validateGroupId(a.groupId), fileName: validateFileName(a.fileName) }),
  hold: (a) => ({ groupId: validateGroupId(a.groupId), fileId: stringArg(a, 'fileId', FILE_ID_RE, 'a file id (64 hex digits)') }),
}

const OPS: ReadonlySet<string> = new Set(Object.keys(decoders))
export function isOp (v: unknown): v is Op {
  return typeof v === 'string' && OPS.has(v)
}

/** Frame body → typed request. Throws PROTOCOL (unusable frame) or BAD_REQUEST (bad op or args). */
export function decodeRequest (body: Buffer): ControlRequest {
  const v = parseJson(body)
  if (!isObject(v)) throw new PeershareError('PROTOCOL', 'request must be a JSON object')
  if (!isRequestId(v.id)) throw new PeershareError('PROTOCOL', 'request id must be an integer from 0 to 2^31-1')
  if (!isOp(v.op)) {
    const shown = typeof v.op === 'string' ? v.op.slice(0, 40) : typeof v.op
    throw new PeershareError('BAD_REQUEST', `unknown operation '${shown}'`)
  }
  const args = v.args === undefined ? {} : v.args
  if (!isObject(args)) throw new PeershareError('BAD_REQUEST', 'args must be an object')
  const op = v.op
  return { id: v.id, op, args: decoders[op](args) } as ControlRequest
}

// ---------------------------------------------------------------------------------------------
// Decoding (client side): frame body → response or event

export function decodeServerMessage (body: Buffer): ControlResponse | ControlEvent {
  const v = parseJson(body)
  if (!isObject(v)) throw new PeershareError('PROTOCOL', 'tracker message must be a JSON object')
  if (typeof v.event === 'string') return { event: v.event, data: v.data }
  if (!isRequestId(v.id) || typeof v.ok !== 'boolean') throw new PeershareError('PROTOCOL', 'malformed tracker response')
  if (v.ok) return { id: v.id, ok: true, result: v.result }
  const e = v.error
  if (!isObject(e) || typeof e.message !== 'string') throw new PeershareError('PROTOCOL', 'malformed tracker error')
  return { id: v.id, ok: false, error: { code: isErrorCode(e.code) ? e.code : 'INTERNAL', message: e.message } }
}

// ---------------------------------------------------------------------------------------------
// Argument helpers

function stringArg (a: Record<string, unknown>, key: string, re: RegExp, what: string): string {
  const v = a[key]
  if (typeof v !== 'string' || v.length > 256 || !re.test(v)) throw new PeershareError('BAD_REQUEST', `${key} must be ${what}`)
  return v
}

function intArg (a: Record<string, unknown>, key: string, min: number, max: number): number {
  const v = a[key]
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new PeershareError('BAD_REQUEST', `${key} must be an integer from ${min} to ${max}`)
  }
  return v
}

const FILE_ID_RE = /^[0-9a-f]{64}$/
export function isFileId (v: unknown): v is string {
  return typeof v === 'string' && FILE_ID_RE.test(v)
}

function reshareArg (v: unknown): Array<{ groupId: string, fileId: string }> {
  if (!Array.isArray(v) || v.length > MAX_RESHARE_ITEMS) {
    throw new PeershareError('BAD_REQUEST', `shares must be an array of at most ${MAX_RESHARE_ITEMS} items`)
  }
  return v.map((item) => {
    if (!isObject(item) || !isFileId(item.fileId)) throw new PeershareError('BAD_REQUEST', 'each share needs a groupId and a fileId')
    return { groupId: validateGroupId(item.groupId), fileId: item.fileId }
  })
}

/** "ip:port" with an IPv4 address (or [IPv6]:port) and a port from 1 to 65535. */
export function peerAddrArg (v: unknown): string {
  if (typeof v !== 'string' || v.length > 64) throw new PeershareError('BAD_REQUEST', 'peerAddr must be "ip:port"')
  const parsed = parseHostPort(v)
  if (parsed === undefined) throw new PeershareError('BAD_REQUEST', `peerAddr '${v}' must be "ip:port"`)
  return v
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/

export function parseHostPort (text: string): { host: string, port: number } | undefined {
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:\s]+):(\d{1,5})$/.exec(text)
  if (m === null) return undefined
  const host = m[1]!
  const port = Number(m[2])
  if (port < 1 || port > 65535) return undefined
  if (!text.startsWith('[') && !IPV4_RE.test(host) && !/^[A-Za-z0-9.-]{1,253}$/.test(host)) return undefined
  return { host, port }
}
