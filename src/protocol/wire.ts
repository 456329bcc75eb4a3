// The peer wire protocol (peer ↔ peer), in the spirit of BEP 3, inside the length-prefixed frames of
// frame.ts. A frame body is a 1-byte message id + a fixed binary payload; the empty body is keep-alive.
// encodeX returns bytes ready for the socket (frame length prefix included, one allocation);
// decodeX takes a frame body from FrameDecoder and validates lengths and ranges (PROTOCOL).
// Geometry against a known file is checkBlockRange's job; what to do with a message is the caller's.

import { PeershareError } from '../common/errors.ts'
import { bitfieldBytes } from '../common/bitfield.ts'
import type { Bitfield } from '../common/bitfield.ts'
import { FRAME_HEADER_BYTES } from './frame.ts'
import { MAX_FILE_BYTES, pieceCount, pieceLength } from './file-meta.ts'
import type { FileMeta } from './file-meta.ts'

/** The first bytes of every handshake; the version lives here, so a mismatch is a clear error. */
export const PROTOCOL_MAGIC: Buffer = Buffer.from('peershare/1', 'ascii')
export const FILE_ID_BYTES = 32 // SHA-256 (file-meta.ts fileId, sent raw rather than as 64 hex chars)
export const MAX_TICKET_BYTES = 1024 // an Ed25519-signed ticket is ~200 bytes; 1 KiB leaves room

/**
 * A block is the unit of request/piece messages. 128 KiB = 4 blocks per 512 KiB piece. BitTorrent uses
 * 16 KiB, tuned for 2001's links; at our 600 MB/s target that would be ~37k messages and handler calls
 * per second, against ~4.6k here. Not a whole piece either: a piece can still be spread over 4 peers when
 * few pieces remain, an endgame duplicate wastes at most 128 KiB, and a timed-out request costs less.
 * Hashing is unaffected: it runs per whole piece once its blocks are in. (The unofficial BitTorrent
 * spec, wiki.theory.org, caps a request at 2^17 = 128 KiB too.) PIECE_BYTES is a multiple of it, so only the last
 * piece of a file has a short block.
 */
export const BLOCK_BYTES = 128 * 1024
export const MAX_BLOCK_BYTES = BLOCK_BYTES
/** Requests one connection may have queued at a server; more get reject(Busy). The picker stays below it. */
export const MAX_QUEUED_REQUESTS = 64

export const Msg = {
  /** Not an id byte: keep-alive is the empty frame body; -1 tags it in decoded messages. */
  KeepAlive: -1,
  /** First frame each way. BEP 3's handshake is unframed; ours is a frame like any other. */
  Handshake: 0,
  Have: 4,
  Bitfield: 5,
  Request: 6,
  Piece: 7,
  Cancel: 8,
  Reject: 16, // BEP 6's number
} as const
export type Msg = (typeof Msg)[keyof typeof Msg]

export const RejectReason = {
  NotHave: 1, // we do not have that piece (yet)
  Busy: 2, // MAX_QUEUED_REQUESTS reached; ask again later
  BadRange: 3, // outside the file's geometry
  Unavailable: 4, // stopping to serve, or the disk read failed
} as const
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason]
const REJECT_REASONS: ReadonlySet<number> = new Set(Object.values(RejectReason))

const HANDSHAKE_FIXED_BYTES = 1 + PROTOCOL_MAGIC.length + FILE_ID_BYTES + 2
const HAVE_BYTES = 1 + 4
const RANGE_BYTES = 1 + 4 + 4 + 4 // request and cancel: piece, offset, length
const REJECT_BYTES = RANGE_BYTES + 1
/** id + piece + offset, before a piece message's data. */
export const PIECE_HEADER_BYTES = 1 + 4 + 4
/** Bitfield of the largest file we accept (MAX_FILE_BYTES): 16 KiB. */
export const MAX_BITFIELD_BYTES = bitfieldBytes(pieceCount(MAX_FILE_BYTES))

/** Largest frame body (FrameDecoder's cap) once the handshake is done: a piece message with a whole block. */
export const MAX_WIRE_FRAME_BYTES = PIECE_HEADER_BYTES + MAX_BLOCK_BYTES
/** Cap before the handshake: an unauthenticated socket cannot make us buffer more than this. */
export const MAX_HANDSHAKE_FRAME_BYTES = HANDSHAKE_FIXED_BYTES + MAX_TICKET_BYTES

export interface WireHandshake { type: typeof Msg.Handshake, fileId: string, ticket: Buffer }
export interface WireKeepAlive { type: typeof Msg.KeepAlive }
export interface WireBitfield { type: typeof Msg.Bitfield, bits: Buffer }
export interface WireHave { type: typeof Msg.Have, piece: number }
export interface WireRequest { type: typeof Msg.Request, piece: number, offset: number, length: number }
export interface WireCancel { type: typeof Msg.Cancel, piece: number, offset: number, length: number }
export interface WireReject { type: typeof Msg.Reject, piece: number, offset: number, length: number, reason: RejectReason }
export interface WirePiece { type: typeof Msg.Piece, piece: number, offset: number, data: Buffer }
export type WireMessage = WireHandshake | WireKeepAlive | WireBitfield | WireHave | WireRequest
  | WireCancel | WireReject | WirePiece

// ---------------------------------------------------------------------------------------------
// Encoding: one Buffer per message, frame prefix included

function frame (bodyLength: number, id: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + bodyLength)
  out.writeUInt32BE(bodyLength, 0)
  out[FRAME_HEADER_BYTES] = id
  return out
}

const FILE_ID_RE = /^[0-9a-f]{64}$/

/** `fileId` is the hex id of file-meta.ts; `ticket` is opaque here (security/tickets.ts gives it meaning). */
export function encodeHandshake (fileId: string, ticket: Buffer = Buffer.alloc(0)): Buffer {
  if (!FILE_ID_RE.test(fileId)) throw new RangeError('file id must be 64 lowercase hex digits')
  if (ticket.length > MAX_TICKET_BYTES) throw new RangeError(`ticket of ${ticket.length} bytes exceeds ${MAX_TICKET_BYTES}`)
  const out = frame(HANDSHAKE_FIXED_BYTES + ticket.length, Msg.Handshake)
  let at = FRAME_HEADER_BYTES + 1
  at += PROTOCOL_MAGIC.copy(out, at)
  at += out.write(fileId, at, FILE_ID_BYTES, 'hex')
  at = out.writeUInt16BE(ticket.length, at)
  ticket.copy(out, at)
  return out
}

export function encodeKeepAlive (): Buffer {
  return Buffer.alloc(FRAME_HEADER_BYTES)
}

export function encodeBitfield (bits: Bitfield): Buffer {
  const out = frame(1 + bits.byteLength, Msg.Bitfield)
  bits.copyTo(out, FRAME_HEADER_BYTES + 1)
  return out
}

export function encodeHave (piece: number): Buffer {
  const out = frame(HAVE_BYTES, Msg.Have)
  out.writeUInt32BE(piece, FRAME_HEADER_BYTES + 1)
  return out
}

function encodeRange (id: number, size: number, piece: number, offset: number, length: number): Buffer {
  const out = frame(size, id)
  const at = FRAME_HEADER_BYTES + 1
  out.writeUInt32BE(piece, at)
  out.writeUInt32BE(offset, at + 4)
  out.writeUInt32BE(length, at + 8)
  return out
}

export function encodeRequest (piece: number, offset: number, length: number): Buffer {
  return encodeRange(Msg.Request, RANGE_BYTES, piece, offset, length)
}

export function encodeCancel (piece: number, offset: number, length: number): Buffer {
  return encodeRange(Msg.Cancel, RANGE_BYTES, piece, offset, length)
}

export function encodeReject (piece: number, offset: number, length: number, reason: RejectReason): Buffer {
  const out = encodeRange(Msg.Reject, REJECT_BYTES, piece, offset, length)
  out[FRAME_HEADER_BYTES + REJECT_BYTES - 1] = reason
  return out
}

/**
 * Frame prefix + piece header (13 bytes) for `dataLength` bytes of data that the caller writes next,
 * as a second write (or inside socket.cork()), so the block is never copied.
 */
export function encodePieceHeader (piece: number, offset: number, dataLength: number): Buffer {
  if (!(dataLength > 0 && dataLength <= MAX_BLOCK_BYTES)) {
    throw new RangeError(`block of ${dataLength} bytes is outside 1..${MAX_BLOCK_BYTES}`)
  }
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + PIECE_HEADER_BYTES)
  writePieceHeader(out, piece, offset, dataLength)
  return out
}

/** Whole piece message in one Buffer: copies `data`; the hot path uses encodePieceHeader instead. */
export function encodePiece (piece: number, offset: number, data: Buffer): Buffer {
  if (!(data.length > 0 && data.length <= MAX_BLOCK_BYTES)) {
    throw new RangeError(`block of ${data.length} bytes is outside 1..${MAX_BLOCK_BYTES}`)
  }
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + PIECE_HEADER_BYTES + data.length)
  writePieceHeader(out, piece, offset, data.length)
  data.copy(out, FRAME_HEADER_BYTES + PIECE_HEADER_BYTES)
  return out
}

function writePieceHeader (out: Buffer, piece: number, offset: number, dataLength: number): void {
  out.writeUInt32BE(PIECE_HEADER_BYTES + dataLength, 0)
  out[FRAME_HEADER_BYTES] = Msg.Piece
  out.writeUInt32BE(piece, FRAME_HEADER_BYTES + 1)
  out.writeUInt32BE(offset, FRAME_HEADER_BYTES + 5)
}

// ---------------------------------------------------------------------------------------------
// Decoding: frame body → typed message, or PROTOCOL

function fail (message: string): PeershareError {
  return new PeershareError('PROTOCOL', message)
}

function expectId (body: Buffer, id: number, name: string): void {
  if (body.length === 0 || body[0] !== id) throw fail(`not a ${name} message`)
}

function expectLength (body: Buffer, want: number, name: string): void {
  if (body.length !== want) throw fail(`${name} message is ${body.length} bytes, want ${want}`)
}

export function decodeHandshake (body: Buffer): WireHandshake {
  expectId(body, Msg.Handshake, 'handshake')
  if (body.length < HANDSHAKE_FIXED_BYTES) throw fail(`handshake is ${body.length} bytes, want at least ${HANDSHAKE_FIXED_BYTES}`)
  let at = 1
  if (!body.subarray(at, at + PROTOCOL_MAGIC.length).equals(PROTOCOL_MAGIC)) {
    throw fail(`peer does not speak ${PROTOCOL_MAGIC.toString('ascii')}`)
  }
  at += PROTOCOL_MAGIC.length
  // hex only at this edge: once per connection, and the id is compared as a string everywhere else
  const fileId = body.toString('hex', at, at + FILE_ID_BYTES)
  at += FILE_ID_BYTES
  const ticketLength = body.readUInt16BE(at)
  at += 2
  if (ticketLength > MAX_TICKET_BYTES) throw fail(`ticket of ${ticketLength} bytes exceeds ${MAX_TICKET_BYTES}`)
  expectLength(body, at + ticketLength, 'handshake')
  // copied: a ticket outlives the frame, and must not pin the socket's chunk
  return { type: Msg.Handshake, fileId, ticket: Buffer.from(body.subarray(at)) }
}

/** `bits` is a view into the frame; Bitfield.fromBuffer(pieceCount, bits) checks it against the file and copies. */
export function decodeBitfield (body: Buffer): WireBitfield {
  expectId(body, Msg.Bitfield, 'bitfield')
  if (body.length - 1 > MAX_BITFIELD_BYTES) throw fail(`bitfield of ${body.length - 1} bytes exceeds ${MAX_BITFIELD_BYTES}`)
  return { type: Msg.Bitfield, bits: body.subarray(1) }
}

export function decodeHave (body: Buffer): WireHave {
  expectId(body, Msg.Have, 'have')
  expectLength(body, HAVE_BYTES, 'have')
  return { type: Msg.Have, piece: body.readUInt32BE(1) }
}

function decodeRange (body: Buffer, name: string): { piece: number, offset: number, length: number } {
  const length = body.readUInt32BE(9)
  if (length === 0 || length > MAX_BLOCK_BYTES) throw fail(`${name} length ${length} is outside 1..${MAX_BLOCK_BYTES}`)
  return { piece: body.readUInt32BE(1), offset: body.readUInt32BE(5), length }
}

export function decodeRequest (body: Buffer): WireRequest {
  expectId(body, Msg.Request, 'request')
  expectLength(body, RANGE_BYTES, 'request')
  return { type: Msg.Request, ...decodeRange(body, 'request') }
}

export function decodeCancel (body: Buffer): WireCancel {
  expectId(body, Msg.Cancel, 'cancel')
  expectLength(body, RANGE_BYTES, 'cancel')
  return { type: Msg.Cancel, ...decodeRange(body, 'cancel') }
}

export function decodeReject (body: Buffer): WireReject {
  expectId(body, Msg.Reject, 'reject')
  expectLength(body, REJECT_BYTES, 'reject')
  const reason = body[REJECT_BYTES - 1]!
  if (!REJECT_REASONS.has(reason)) throw fail(`unknown reject reason ${reason}`)
  return { type: Msg.Reject, ...decodeRange(body, 'reject'), reason: reason as RejectReason }
}

/** `data` is a view into the frame body: no copy on the way to disk. */
export function decodePiece (body: Buffer): WirePiece {
  expectId(body, Msg.Piece, 'piece')
  const dataLength = body.length - PIECE_HEADER_BYTES
  if (dataLength <= 0 || dataLength > MAX_BLOCK_BYTES) {
    throw fail(`piece message carries ${Math.max(dataLength, 0)} bytes, want 1..${MAX_BLOCK_BYTES}`)
  }
  return {
    type: Msg.Piece,
    piece: body.readUInt32BE(1),
    offset: body.readUInt32BE(5),
    data: body.subarray(PIECE_HEADER_BYTES),
  }
}

/** One switch on the id byte, so a connection has a single entry point for every frame. */
export function decodeMessage (body: Buffer): WireMessage {
  if (body.length === 0) return { type: Msg.KeepAlive }
  switch (body[0]) {
    case Msg.Piece: return decodePiece(body)
    case Msg.Request: return decodeRequest(body)
    case Msg.Have: return decodeHave(body)
    case Msg.Cancel: return decodeCancel(body)
    case Msg.Reject: return decodeReject(body)
    case Msg.Bitfield: return decodeBitfield(body)
    case Msg.Handshake: return decodeHandshake(body)
    default: throw fail(`unknown message id ${body[0]}`)
  }
}

// ---------------------------------------------------------------------------------------------
// Block geometry of a known file

type Geometry = Pick<FileMeta, 'size' | 'pieceBytes'>

export function blocksInPiece (meta: Geometry, piece: number, blockBytes: number = BLOCK_BYTES): number {
  return Math.ceil(pieceLength(meta, piece) / blockBytes)
}

/** Length of the block that starts at `offset` in `piece` (the last block of the last piece is short). */
export function blockLength (meta: Geometry, piece: number, offset: number, blockBytes: number = BLOCK_BYTES): number {
  return Math.min(blockBytes, pieceLength(meta, piece) - offset)
}

export function checkPieceIndex (meta: Geometry, piece: number): void {
  const count = pieceCount(meta.size, meta.pieceBytes)
  if (piece >= count) throw fail(`piece ${piece} does not exist (the file has ${count})`)
}

/**
 * Throws PROTOCOL unless (piece, offset, length) is exactly one block of the file: piece in range,
 * offset on a block boundary, length the block's whole length. Stricter than "inside the piece" on
 * purpose: both sides use BLOCK_BYTES, and one block = one request keeps matching exact.
 * Call it before any disk access.
 */
export function checkBlockRange (meta: Geometry, piece: number, offset: number, length: number): void {
  checkPieceIndex(meta, piece)
  const pieceLen = pieceLength(meta, piece)
  if (offset % BLOCK_BYTES !== 0 || offset >= pieceLen) {
    throw fail(`offset ${offset} is not a block boundary inside piece ${piece} (${pieceLen} bytes)`)
  }
  const want = Math.min(BLOCK_BYTES, pieceLen - offset)
  if (length !== want) throw fail(`block at piece ${piece} offset ${offset} is ${want} bytes, not ${length}`)
}
