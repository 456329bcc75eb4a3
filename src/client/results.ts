// Shape checks for the tracker's results, on the client side of the socket boundary: the front ends
// format these fields, so a tracker that sends something else gets a PROTOCOL error, not a crash
// or text with terminal escapes. Names are checked with the same validators the tracker uses.

import { PeershareError } from '../common/errors.ts'
import type { Op } from '../protocol/control.ts'
import { isFileId, peerAddrArg } from '../protocol/control.ts'
import { decodeFileMeta, fileId } from '../protocol/file-meta.ts'
import type { FileMeta } from '../protocol/file-meta.ts'
import { validateFileName, validateGroupId, validateUserId } from '../protocol/names.ts'

type Check = (v: unknown) => boolean

const num: Check = (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0
const bool: Check = (v) => typeof v === 'boolean'
const ok = (f: (v: unknown) => unknown): Check => (v) => { try { f(v); return true } catch { return false } }
const userId = ok(validateUserId)
const groupId = ok(validateGroupId)
const fileName = ok(validateFileName)
const peerAddr = ok(peerAddrArg)
const isObject: Check = (v) => typeof v === 'object' && v !== null && !Array.isArray(v)
const optional = (c: Check): Check => (v) => v === undefined || c(v)
const hex64: Check = (v) => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v)
const fingerprint: Check = (v) => typeof v === 'string' && /^SHA256:[0-9a-f]{64}$/.test(v)
const nullable = (c: Check): Check => (v) => v === null || c(v)
const oneOf = (...values: string[]): Check => (v) => typeof v === 'string' && values.includes(v)
const arrayOf = (c: Check): Check => (v) => Array.isArray(v) && v.every(c)
const obj = (shape: Record<string, Check>): Check => (v) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const o = v as Record<string, unknown>
  return Object.entries(shape).every(([k, c]) => c(o[k]))
}

const RESULTS: Partial<Record<Op, Check>> = {
  hello: obj({ version: num, trackerNo: num, ticketKey: optional(hex64) }),
  create_user: obj({ userId }),
  login: obj({ userId, token: (v) => typeof v === 'string' && /^[A-Za-z0-9_-]{43}$/.test(v) }),
  resume: obj({ userId }),
  logout: obj({ userId }),
  create_group: obj({ groupId }),
  join_group: obj({ groupId, status: oneOf('requested') }),
  leave_group: obj({ groupId, newOwner: nullable(userId), groupDeleted: bool }),
  list_requests: obj({ groupId, requests: arrayOf(obj({ userId, requestedAt: num })) }),
  accept_request: obj({ groupId, userId }),
  reject_request: obj({ groupId, userId }),
  list_groups: obj({ groups: arrayOf(obj({ groupId, owner: userId, members: num, role: oneOf('owner', 'member', 'pending', 'none') })) }),
  list_files: obj({ groupId, files: arrayOf(obj({ name: fileName, fileId: isFileId, size: num, sharers: arrayOf(userId), sharersOnline: num })) }),
  upload_file: obj({ groupId, name: fileName, fileId: isFileId, size: num, pieces: num, alreadyShared: bool }),
  stop_share: obj({ groupId, name: fileName, fileRemoved: bool }),
  reshare: obj({ restored: num, gone: arrayOf(obj({ groupId, fileId: isFileId })) }),
  // meta is checked in full by decodeFileMeta where it is used (core.ts)
  get_file: obj({
    groupId,
    fileId: isFileId,
    meta: isObject,
    holders: arrayOf(obj({ userId, peerAddr, complete: bool, fingerprint: optional(fingerprint) })),
    ticket: optional((v) => typeof v === 'string' && v.length <= 2048 && /^[A-Za-z0-9+/]*={0,2}$/.test(v)),
    ticketExpiresAt: optional(num),
  }),
  hold: obj({ groupId, fileId: isFileId }),
}

/** Throws PROTOCOL when the tracker's result for `op` does not have the documented shape. */
export function checkResult (op: Op, result: unknown): void {
  const check = RESULTS[op] ?? ((v: unknown) => typeof v === 'object' && v !== null)
  if (!check(result)) throw new PeershareError('PROTOCOL', `the tracker sent a malformed ${op} result`)
}

/** The metadata get_file returned, checked: it must be the file asked for, with the id it claims. */
export function checkedFileMeta (wire: unknown, id: string, asked: string): FileMeta {
  let meta: FileMeta
  try {
    meta = decodeFileMeta(wire)
  } catch (err) {
    throw new PeershareError('PROTOCOL', `the tracker sent unusable metadata for ${asked}: ${(err as Error).message}`, { cause: err })
  }
  if (meta.name !== asked || fileId(meta) !== id) throw new PeershareError('PROTOCOL', `the tracker sent metadata of another file than ${asked}`)
  return meta
}

