// Download tickets: the tracker signs (Ed25519) "the holder of certificate F may fetch file X of
// group G until T"; a seeder verifies it against the tracker keys it trusts and against the TLS
// certificate of the connection that presented it. Codec and checks only: no clock (pass `now`), no
// files (the tracker's key lives in ticket-key.ts), so the peer verifies without importing the tracker.
//
// Layout (big-endian), 147-178 bytes, well under wire.ts MAX_TICKET_BYTES:
//   u8 version=1 | 8 issuer key id | u64 expiresAt (ms since epoch) | 32 requester fingerprint (SHA-256)
//   | 32 file id | u8 group id length | group id (UTF-8) | 64 Ed25519 signature over
//   DOMAIN || everything before the signature

import { createHash, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { PeershareError } from '../common/errors.ts'
import { validateGroupId } from '../protocol/names.ts'
import { fingerprintBytes } from './identity.ts'

export const TICKET_VERSION = 1
/** How long the tracker makes a ticket last: a download renews it; a leaked one is soon useless. */
export const TICKET_TTL_MS = 10 * 60_000
/** A ticket claiming to last longer than this is refused even if signed: defence against a tracker bug. */
export const MAX_TICKET_TTL_MS = 60 * 60_000
/** Clocks of the tracker and the seeder disagree a little; a ticket lives minutes, so 30 s is harmless. */
export const TICKET_CLOCK_SKEW_MS = 30_000
export const KEY_ID_BYTES = 8
const SIGNATURE_BYTES = 64
const FINGERPRINT_BYTES = 32
const FILE_ID_BYTES = 32
// Domain separation: a tracker signature over anything else can never pass for a ticket.
const DOMAIN = Buffer.from('peershare ticket v1\0', 'latin1')
const FIXED_BYTES = 1 + KEY_ID_BYTES + 8 + FINGERPRINT_BYTES + FILE_ID_BYTES + 1
export const MIN_TICKET_BYTES = FIXED_BYTES + 1 + SIGNATURE_BYTES
export const MAX_TICKET_ENCODED_BYTES = FIXED_BYTES + 32 + SIGNATURE_BYTES // group ids are at most 32 ASCII chars
const FILE_ID_RE = /^[0-9a-f]{64}$/
const KEY_ID_RE = /^[0-9a-f]{16}$/

export interface TicketFields {
  /** "SHA256:<hex>" of the certificate the requester logged in with. */
  requester: string
  /** 64 hex (file-meta.ts fileId). */
  fileId: string
  groupId: string
  /** ms since the epoch. */
  expiresAt: number
  /** 16 hex: which tracker key signed it. */
  keyId: string
}

export interface DecodedTicket extends TicketFields {
  /** The bytes the signature covers (without DOMAIN). */
  signed: Buffer
  signature: Buffer
}

/** A tracker's signing key. */
export interface TicketSigner {
  keyId: string
  privateKey: KeyObject
  publicKey: KeyObject
}

/** Public keys a seeder accepts tickets from, by key id. */
export type TrustedTicketKeys = ReadonlyMap<string, KeyObject>

/** 16 hex: the first 8 bytes of SHA-256 over the raw 32-byte Ed25519 public key. */
export function ticketKeyId (publicKey: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(publicKey)).digest().subarray(0, KEY_ID_BYTES).toString('hex')
}

/** The raw 32-byte Ed25519 public key: how a tracker's ticket key travels (hex) to peers. */
export function rawPublicKey (publicKey: KeyObject): Buffer {
  if (publicKey.asymmetricKeyType !== 'ed25519') throw new PeershareError('BAD_REQUEST', 'ticket keys are Ed25519')
  const jwk = publicKey.export({ format: 'jwk' })
  return Buffer.from(jwk.x!, 'base64url')
}

/** The inverse of rawPublicKey (32 bytes, or 64 hex); BAD_REQUEST otherwise. */
export function ticketPublicKeyFromRaw (raw: Buffer | string): KeyObject {
  const bytes = typeof raw === 'string' && /^[0-9a-fA-F]{64}$/.test(raw) ? Buffer.from(raw, 'hex') : raw
  if (!Buffer.isBuffer(bytes) || bytes.length !== 32) throw new PeershareError('BAD_REQUEST', 'a ticket public key is 32 bytes (64 hex digits)')
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: bytes.toString('base64url') }, format: 'jwk' })
}

export function trustedTicketKeys (keys: Iterable<KeyObject>): Map<string, KeyObject> {
  const out = new Map<string, KeyObject>()
  for (const k of keys) out.set(ticketKeyId(k), k)
  return out
}

export function signerFromPrivateKey (privateKey: KeyObject): TicketSigner {
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new PeershareError('BAD_REQUEST', 'a ticket signing key must be Ed25519')
  const publicKey = createPublicKey(privateKey)
  return { keyId: ticketKeyId(publicKey), privateKey, publicKey }
}

/** A fresh in-memory signer (tests; the tracker uses ticket-key.ts, which persists one). */
export function generateTicketSigner (): TicketSigner {
  return signerFromPrivateKey(generateKeyPairSync('ed25519').privateKey)
}

/** The signed part of a ticket. BAD_REQUEST on fields that cannot be encoded (a bug in the issuer). */
export function encodeTicketBody (fields: TicketFields): Buffer {
  if (!KEY_ID_RE.test(fields.keyId)) throw new PeershareError('BAD_REQUEST', 'ticket key id must be 16 lowercase hex digits')
  if (!FILE_ID_RE.test(fields.fileId)) throw new PeershareError('BAD_REQUEST', 'ticket file id must be 64 lowercase hex digits')
  if (!Number.isSafeInteger(fields.expiresAt) || fields.expiresAt < 0) throw new PeershareError('BAD_REQUEST', 'ticket expiry must be a time in ms')
  const group = Buffer.from(validateGroupId(fields.groupId), 'utf8')
  const out = Buffer.alloc(FIXED_BYTES + group.length)
  let at = out.writeUInt8(TICKET_VERSION, 0)
  at += out.write(fields.keyId, at, KEY_ID_BYTES, 'hex')
  at = out.writeBigUInt64BE(BigInt(fields.expiresAt), at)
  at += fingerprintBytes(fields.requester).copy(out, at)
  at += out.write(fields.fileId, at, FILE_ID_BYTES, 'hex')
  at = out.writeUInt8(group.length, at)
  group.copy(out, at)
  return out
}

export function encodeTicket (fields: TicketFields, signature: Buffer): Buffer {
  if (signature.length !== SIGNATURE_BYTES) throw new PeershareError('BAD_REQUEST', `a ticket signature is ${SIGNATURE_BYTES} bytes`)
  return Buffer.concat([encodeTicketBody(fields), signature])
}

/** Parses the layout (no signature check): BAD_TICKET on anything malformed. */
export function decodeTicket (bytes: Buffer): DecodedTicket {
  if (bytes.length < MIN_TICKET_BYTES) throw bad(`ticket is ${bytes.length} bytes, at least ${MIN_TICKET_BYTES} expected`)
  if (bytes.length > MAX_TICKET_ENCODED_BYTES) throw bad(`ticket is ${bytes.length} bytes, at most ${MAX_TICKET_ENCODED_BYTES} expected`)
  const version = bytes.readUInt8(0)
  if (version !== TICKET_VERSION) throw bad(`ticket version ${version} is not supported (want ${TICKET_VERSION})`)
  let at = 1
  const keyId = bytes.toString('hex', at, at + KEY_ID_BYTES)
  at += KEY_ID_BYTES
  const expires = bytes.readBigUInt64BE(at)
  at += 8
  if (expires > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('ticket expiry is out of range')
  const requester = 'SHA256:' + bytes.toString('hex', at, at + FINGERPRINT_BYTES)
  at += FINGERPRINT_BYTES
  const fileId = bytes.toString('hex', at, at + FILE_ID_BYTES)
  at += FILE_ID_BYTES
  const groupLength = bytes.readUInt8(at)
  at += 1
  if (bytes.length !== at + groupLength + SIGNATURE_BYTES) {
    throw bad(`ticket is ${bytes.length} bytes, but its group id of ${groupLength} bytes makes ${at + groupLength + SIGNATURE_BYTES}`)
  }
  const groupBytes = bytes.subarray(at, at + groupLength)
  const groupId = groupBytes.toString('utf8')
  // fatal check: the round trip must be exact, or two encodings would name one group
  if (!Buffer.from(groupId, 'utf8').equals(groupBytes)) throw bad('ticket group id is not valid UTF-8')
  try {
    validateGroupId(groupId)
  } catch (err) {
    throw bad(`ticket group id is invalid: ${(err as Error).message}`, err)
  }
  at += groupLength
  // copies: a ticket may outlive the buffer it came in
  return {
    keyId,
    expiresAt: Number(expires),
    requester,
    fileId,
    groupId,
    signed: Buffer.from(bytes.subarray(0, at)),
    signature: Buffer.from(bytes.subarray(at)),
  }
}

/** A signed ticket for `claims`, ready for the handshake. */
export function signTicket (claims: Omit<TicketFields, 'keyId'>, signer: TicketSigner): Buffer {
  const body = encodeTicketBody({ ...claims, keyId: signer.keyId })
  return Buffer.concat([body, sign(null, Buffer.concat([DOMAIN, body]), signer.privateKey)])
}

export interface VerifyTicketOptions {
  trustedKeys: TrustedTicketKeys
  /** ms since the epoch (the caller's clock). */
  now: number
  /** The file the connection asked for. */
  fileId: string
  /** The fingerprint of the certificate the connecting peer presented in TLS. */
  peerFingerprint: string
  skewMs?: number
}

/**
 * The ticket's claims when it is well-formed, signed by a trusted key, unexpired, for `fileId` and for
 * the certificate of this connection; otherwise BAD_TICKET with the reason (for the log: the
 * signature is checked first, so a reason about a claim is never about forged content).
 */
export function verifyTicket (bytes: Buffer | undefined, opts: VerifyTicketOptions): TicketFields {
  if (bytes === undefined || bytes.length === 0) throw bad('no ticket')
  const t = decodeTicket(bytes)
  const key = opts.trustedKeys.get(t.keyId)
  if (key === undefined) throw bad(`ticket is signed by unknown key ${t.keyId}`)
  let ok: boolean
  try {
    ok = verify(null, Buffer.concat([DOMAIN, t.signed]), key, t.signature)
  } catch (err) {
    throw bad('ticket signature cannot be checked', err)
  }
  if (!ok) throw bad('ticket signature does not verify')
  const skew = opts.skewMs ?? TICKET_CLOCK_SKEW_MS
  if (t.expiresAt + skew <= opts.now) throw bad(`ticket expired ${Math.round((opts.now - t.expiresAt) / 1000)} s ago`)
  if (t.expiresAt - opts.now > MAX_TICKET_TTL_MS + skew) throw bad('ticket lasts longer than any ticket may')
  if (t.fileId !== opts.fileId) throw bad('ticket is for another file')
  if (t.requester !== opts.peerFingerprint) throw bad('ticket is for another certificate')
  return { requester: t.requester, fileId: t.fileId, groupId: t.groupId, expiresAt: t.expiresAt, keyId: t.keyId }
}

function bad (reason: string, cause?: unknown): PeershareError {
  return new PeershareError('BAD_TICKET', reason, cause === undefined ? undefined : { cause })
}
