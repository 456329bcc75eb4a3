import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Bitfield } from '../../src/common/bitfield.ts'
import { PeershareError } from '../../src/common/errors.ts'
import { FRAME_HEADER_BYTES, FrameDecoder } from '../../src/protocol/frame.ts'
import { PIECE_BYTES, fileId } from '../../src/protocol/file-meta.ts'
import type { FileMeta } from '../../src/protocol/file-meta.ts'
import {
  BLOCK_BYTES, MAX_BITFIELD_BYTES, MAX_BLOCK_BYTES, MAX_HANDSHAKE_FRAME_BYTES, MAX_TICKET_BYTES,
  MAX_WIRE_FRAME_BYTES, Msg, PIECE_HEADER_BYTES, PROTOCOL_MAGIC, RejectReason,
  blockLength, blocksInPiece, checkBlockRange, decodeBitfield, decodeCancel, decodeHandshake, decodeHave,
  decodeMessage, decodePiece, decodeReject, decodeRequest, encodeBitfield, encodeCancel, encodeHandshake,
  encodeHave, encodeKeepAlive, encodePiece, encodePieceHeader, encodeReject, encodeRequest,
} from '../../src/protocol/wire.ts'
import type { WireMessage } from '../../src/protocol/wire.ts'

const FILE_ID = createHash('sha256').update('some file').digest('hex')

function isProtocol (err: unknown): boolean {
  return err instanceof PeershareError && err.code === 'PROTOCOL'
}

/** The frame body of an encoded message (what FrameDecoder hands a connection). */
function body (encoded: Buffer): Buffer {
  assert.equal(encoded.readUInt32BE(0), encoded.length - FRAME_HEADER_BYTES, 'frame prefix matches the body')
  return encoded.subarray(FRAME_HEADER_BYTES)
}

function withByte (buf: Buffer, at: number, value: number): Buffer {
  const copy = Buffer.from(buf)
  copy[at] = value
  return copy
}

const bits = new Bitfield(11)
bits.set(0)
bits.set(10)
const data = Buffer.from('block bytes, never a string on the hot path')

const roundTrips: Array<{ name: string, encoded: Buffer, want: WireMessage }> = [
  { name: 'keep-alive', encoded: encodeKeepAlive(), want: { type: Msg.KeepAlive } },
  { name: 'handshake without ticket', encoded: encodeHandshake(FILE_ID), want: { type: Msg.Handshake, fileId: FILE_ID, ticket: Buffer.alloc(0) } },
  { name: 'handshake with ticket', encoded: encodeHandshake(FILE_ID, Buffer.from([1, 2, 3])), want: { type: Msg.Handshake, fileId: FILE_ID, ticket: Buffer.from([1, 2, 3]) } },
  { name: 'handshake with largest ticket', encoded: encodeHandshake(FILE_ID, Buffer.alloc(MAX_TICKET_BYTES, 7)), want: { type: Msg.Handshake, fileId: FILE_ID, ticket: Buffer.alloc(MAX_TICKET_BYTES, 7) } },
  { name: 'bitfield', encoded: encodeBitfield(bits), want: { type: Msg.Bitfield, bits: Buffer.from([0x80, 0x20]) } },
  { name: 'empty bitfield (empty file)', encoded: encodeBitfield(new Bitfield(0)), want: { type: Msg.Bitfield, bits: Buffer.alloc(0) } },
  { name: 'have', encoded: encodeHave(8191), want: { type: Msg.Have, piece: 8191 } },
  { name: 'have, largest index', encoded: encodeHave(2 ** 32 - 1), want: { type: Msg.Have, piece: 2 ** 32 - 1 } },
  { name: 'request', encoded: encodeRequest(3, BLOCK_BYTES, BLOCK_BYTES), want: { type: Msg.Request, piece: 3, offset: BLOCK_BYTES, length: BLOCK_BYTES } },
  { name: 'request, short block', encoded: encodeRequest(9, 0, 1), want: { type: Msg.Request, piece: 9, offset: 0, length: 1 } },
  { name: 'cancel', encoded: encodeCancel(4, 0, 100), want: { type: Msg.Cancel, piece: 4, offset: 0, length: 100 } },
  { name: 'reject', encoded: encodeReject(5, 2 * BLOCK_BYTES, BLOCK_BYTES, RejectReason.Busy), want: { type: Msg.Reject, piece: 5, offset: 2 * BLOCK_BYTES, length: BLOCK_BYTES, reason: RejectReason.Busy } },
  { name: 'piece', encoded: encodePiece(6, BLOCK_BYTES, data), want: { type: Msg.Piece, piece: 6, offset: BLOCK_BYTES, data } },
  { name: 'piece, whole block', encoded: encodePiece(0, 0, Buffer.alloc(MAX_BLOCK_BYTES, 1)), want: { type: Msg.Piece, piece: 0, offset: 0, data: Buffer.alloc(MAX_BLOCK_BYTES, 1) } },
]

for (const { name, encoded, want } of roundTrips) {
  test(`round trips ${name} through FrameDecoder and decodeMessage`, () => {
    const frames = new FrameDecoder(MAX_WIRE_FRAME_BYTES).push(encoded)
    assert.equal(frames.length, 1)
    assert.deepEqual(decodeMessage(frames[0]!), want)
  })
}

test('each decodeX accepts its own message and refuses another id', () => {
  const table: Array<[(b: Buffer) => WireMessage, Buffer]> = [
    [decodeHandshake, encodeHandshake(FILE_ID)],
    [decodeBitfield, encodeBitfield(bits)],
    [decodeHave, encodeHave(1)],
    [decodeRequest, encodeRequest(1, 0, 1)],
    [decodeCancel, encodeCancel(1, 0, 1)],
    [decodeReject, encodeReject(1, 0, 1, RejectReason.NotHave)],
    [decodePiece, encodePiece(1, 0, data)],
  ]
  for (const [decode, encoded] of table) {
    assert.doesNotThrow(() => decode(body(encoded)))
    for (const [, other] of table) {
      if (other !== encoded) assert.throws(() => decode(body(other)), isProtocol, `${decode.name} on id ${body(other)[0]}`)
    }
    assert.throws(() => decode(Buffer.alloc(0)), isProtocol, `${decode.name} on an empty body`)
  }
})

test('rejects unknown message ids', () => {
  for (const id of [1, 2, 3, 9, 15, 17, 20, 255]) {
    assert.throws(() => decodeMessage(Buffer.from([id, 0, 0, 0, 0])), isProtocol, `id ${id}`)
  }
})

// Every strict prefix of a fixed-size message is rejected (bitfield and piece data have no fixed length:
// a short bitfield fails Bitfield.fromBuffer against the file, a short block fails checkBlockRange)
const fixedSize: Array<[string, Buffer]> = [
  ['handshake', encodeHandshake(FILE_ID, Buffer.from('ticket'))],
  ['have', encodeHave(1)],
  ['request', encodeRequest(1, 0, 1)],
  ['cancel', encodeCancel(1, 0, 1)],
  ['reject', encodeReject(1, 0, 1, RejectReason.BadRange)],
]

for (const [name, encoded] of fixedSize) {
  test(`rejects a truncated ${name} at every length`, () => {
    const b = body(encoded)
    for (let n = 1; n < b.length; n++) assert.throws(() => decodeMessage(b.subarray(0, n)), isProtocol, `${n} of ${b.length} bytes`)
  })
  test(`rejects a ${name} with trailing bytes`, () => {
    assert.throws(() => decodeMessage(Buffer.concat([body(encoded), Buffer.from([0])])), isProtocol)
  })
}

test('rejects a piece message with no data or a truncated header', () => {
  const b = body(encodePiece(1, 0, data))
  for (let n = 1; n <= PIECE_HEADER_BYTES; n++) assert.throws(() => decodeMessage(b.subarray(0, n)), isProtocol, `${n} bytes`)
})

test('rejects a piece message carrying more than MAX_BLOCK_BYTES', () => {
  const b = Buffer.alloc(PIECE_HEADER_BYTES + MAX_BLOCK_BYTES + 1)
  b[0] = Msg.Piece
  assert.throws(() => decodePiece(b), isProtocol)
  assert.equal(decodePiece(b.subarray(0, b.length - 1)).data.length, MAX_BLOCK_BYTES)
})

test('rejects request, cancel and reject lengths of 0 or over MAX_BLOCK_BYTES', () => {
  for (const length of [0, MAX_BLOCK_BYTES + 1, 2 ** 32 - 1]) {
    assert.throws(() => decodeMessage(body(encodeRequest(1, 0, length))), isProtocol, `request ${length}`)
    assert.throws(() => decodeMessage(body(encodeCancel(1, 0, length))), isProtocol, `cancel ${length}`)
    assert.throws(() => decodeMessage(body(encodeReject(1, 0, length, RejectReason.Busy))), isProtocol, `reject ${length}`)
  }
})

test('rejects a reject with an unknown reason code', () => {
  const b = body(encodeReject(1, 0, 1, RejectReason.Busy))
  for (const reason of [0, 5, 255]) assert.throws(() => decodeReject(withByte(b, b.length - 1, reason)), isProtocol)
})

test('rejects a handshake with another protocol magic', () => {
  const b = body(encodeHandshake(FILE_ID))
  assert.throws(() => decodeHandshake(withByte(b, 1 + PROTOCOL_MAGIC.length - 1, 0x32)), /does not speak peershare\/1/)
})

test('rejects a handshake whose ticket is longer than MAX_TICKET_BYTES', () => {
  const b = Buffer.alloc(MAX_HANDSHAKE_FRAME_BYTES + 1)
  body(encodeHandshake(FILE_ID)).copy(b)
  b.writeUInt16BE(MAX_TICKET_BYTES + 1, 1 + PROTOCOL_MAGIC.length + 32)
  assert.throws(() => decodeHandshake(b), /exceeds/)
})

test('rejects a handshake whose ticket length disagrees with the frame', () => {
  const b = body(encodeHandshake(FILE_ID, Buffer.from('abc')))
  const at = 1 + PROTOCOL_MAGIC.length + 32
  for (const claimed of [0, 2, 4, 1024]) {
    const bad = Buffer.from(b)
    bad.writeUInt16BE(claimed, at)
    assert.throws(() => decodeHandshake(bad), isProtocol, `claimed ${claimed}`)
  }
})

test('rejects a bitfield longer than the largest file needs', () => {
  const b = Buffer.alloc(1 + MAX_BITFIELD_BYTES + 1)
  b[0] = Msg.Bitfield
  assert.throws(() => decodeBitfield(b), isProtocol)
  assert.equal(decodeBitfield(b.subarray(0, b.length - 1)).bits.length, MAX_BITFIELD_BYTES)
})

test('a decoded bitfield is checked against the file by Bitfield.fromBuffer', () => {
  const { bits: wire } = decodeBitfield(body(encodeBitfield(bits)))
  assert.equal(Bitfield.fromBuffer(11, wire).count(), 2)
  assert.throws(() => Bitfield.fromBuffer(8, wire), isProtocol)
  assert.throws(() => Bitfield.fromBuffer(9, wire), isProtocol) // bit 10 is a spare bit for 9 pieces
})

test('the handshake carries the file id as 32 raw bytes and returns it as hex', () => {
  const meta: FileMeta = { name: 'a.bin', size: 10, pieceBytes: PIECE_BYTES, pieceHashes: Buffer.alloc(20), fileHash: Buffer.alloc(20) }
  const id = fileId(meta)
  const encoded = encodeHandshake(id)
  assert.equal(encoded.length, FRAME_HEADER_BYTES + 1 + PROTOCOL_MAGIC.length + 32 + 2)
  assert.equal(decodeHandshake(body(encoded)).fileId, id)
})

test('encoders refuse values they cannot put on the wire', () => {
  assert.throws(() => encodeHandshake('ab'), RangeError)
  assert.throws(() => encodeHandshake(FILE_ID.toUpperCase()), RangeError)
  assert.throws(() => encodeHandshake(FILE_ID, Buffer.alloc(MAX_TICKET_BYTES + 1)), RangeError)
  assert.throws(() => encodePieceHeader(0, 0, 0), RangeError)
  assert.throws(() => encodePieceHeader(0, 0, MAX_BLOCK_BYTES + 1), RangeError)
  assert.throws(() => encodePiece(0, 0, Buffer.alloc(0)), RangeError)
  assert.throws(() => encodeHave(-1), RangeError)
  assert.throws(() => encodeRequest(2 ** 32, 0, 1), RangeError)
})

test('every message fits its frame cap: handshake before auth, the rest after', () => {
  assert.equal(body(encodeHandshake(FILE_ID, Buffer.alloc(MAX_TICKET_BYTES))).length, MAX_HANDSHAKE_FRAME_BYTES)
  assert.equal(body(encodePiece(0, 0, Buffer.alloc(MAX_BLOCK_BYTES))).length, MAX_WIRE_FRAME_BYTES)
  assert.ok(1 + MAX_BITFIELD_BYTES <= MAX_WIRE_FRAME_BYTES)
  assert.ok(MAX_HANDSHAKE_FRAME_BYTES <= MAX_WIRE_FRAME_BYTES)
  // a peer announcing a bigger frame is cut off before its body is buffered
  const header = Buffer.alloc(4)
  header.writeUInt32BE(MAX_WIRE_FRAME_BYTES + 1)
  assert.throws(() => new FrameDecoder(MAX_WIRE_FRAME_BYTES).push(header), isProtocol)
})

test('piece header + data written separately equal encodePiece byte for byte', () => {
  const header = encodePieceHeader(7, BLOCK_BYTES, data.length)
  assert.equal(header.length, FRAME_HEADER_BYTES + PIECE_HEADER_BYTES)
  assert.deepEqual(Buffer.concat([header, data]), encodePiece(7, BLOCK_BYTES, data))
})

test('decodePiece returns the data as a view into the frame, not a copy', () => {
  const b = Buffer.from(body(encodePiece(1, 0, data)))
  const piece = decodePiece(b)
  assert.equal(piece.data.buffer, b.buffer)
  b[PIECE_HEADER_BYTES] = 0x21
  assert.equal(piece.data[0], 0x21)
})

function reassemble (chunks: Buffer[]): WireMessage[] {
  const decoder = new FrameDecoder(MAX_WIRE_FRAME_BYTES)
  const out: WireMessage[] = []
  for (const c of chunks) for (const f of decoder.push(c)) out.push(decodeMessage(f))
  assert.equal(decoder.bufferedBytes, 0)
  return out
}

test('piece header + data reassemble through FrameDecoder split at every boundary', () => {
  const small = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz')
  const stream = Buffer.concat([encodePieceHeader(2, BLOCK_BYTES, small.length), small, encodeHave(3), encodeKeepAlive()])
  const want: WireMessage[] = [
    { type: Msg.Piece, piece: 2, offset: BLOCK_BYTES, data: small },
    { type: Msg.Have, piece: 3 },
    { type: Msg.KeepAlive },
  ]
  for (let i = 0; i <= stream.length; i++) {
    for (let j = i; j <= stream.length; j++) {
      assert.deepEqual(reassemble([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]), want, `split at ${i}, ${j}`)
    }
  }
})

test('a whole block reassembles from socket-sized chunks at many offsets', () => {
  const block = Buffer.alloc(MAX_BLOCK_BYTES)
  for (let i = 0; i < block.length; i++) block[i] = i * 31 & 0xff
  const stream = Buffer.concat([encodePieceHeader(0, 0, block.length), block, encodeRequest(1, 0, 5)])
  for (const chunkBytes of [1000, 16 * 1024, 65536, 65536 + 13, stream.length]) {
    const chunks: Buffer[] = []
    for (let at = 0; at < stream.length; at += chunkBytes) chunks.push(stream.subarray(at, at + chunkBytes))
    const got = reassemble(chunks)
    assert.equal(got.length, 2)
    const piece = got[0] as { data: Buffer }
    assert.ok(piece.data.equals(block), `chunks of ${chunkBytes}`)
    assert.deepEqual(got[1], { type: Msg.Request, piece: 1, offset: 0, length: 5 })
  }
})

// A file of 3 pieces: two whole, the last 200,000 bytes (blocks of 131,072 and 68,928)
const geometry = { size: 2 * PIECE_BYTES + 200_000, pieceBytes: PIECE_BYTES }

test('block geometry: whole pieces have 4 blocks, the last piece has short ones', () => {
  assert.equal(blocksInPiece(geometry, 0), 4)
  assert.equal(blocksInPiece(geometry, 2), 2)
  assert.equal(blockLength(geometry, 0, 3 * BLOCK_BYTES), BLOCK_BYTES)
  assert.equal(blockLength(geometry, 2, BLOCK_BYTES), 200_000 - BLOCK_BYTES)
})

test('checkBlockRange accepts exactly the blocks of the file', () => {
  for (let piece = 0; piece < 3; piece++) {
    for (let b = 0; b < blocksInPiece(geometry, piece); b++) {
      const offset = b * BLOCK_BYTES
      assert.doesNotThrow(() => checkBlockRange(geometry, piece, offset, blockLength(geometry, piece, offset)))
    }
  }
})

test('checkBlockRange rejects anything else before it reaches the disk', () => {
  const bad: Array<[string, number, number, number]> = [
    ['piece past the end', 3, 0, BLOCK_BYTES],
    ['huge piece index', 2 ** 32 - 1, 0, BLOCK_BYTES],
    ['offset off a block boundary', 0, 1, BLOCK_BYTES],
    ['offset past the piece', 0, PIECE_BYTES, BLOCK_BYTES],
    ['offset past the short last piece', 2, 2 * BLOCK_BYTES, 1],
    ['partial block', 0, 0, BLOCK_BYTES - 1],
    ['block running past the last piece', 2, BLOCK_BYTES, BLOCK_BYTES],
    ['block longer than BLOCK_BYTES', 0, 0, BLOCK_BYTES + 1],
  ]
  for (const [name, piece, offset, length] of bad) {
    assert.throws(() => checkBlockRange(geometry, piece, offset, length), isProtocol, name)
  }
  assert.throws(() => checkBlockRange({ size: 0, pieceBytes: PIECE_BYTES }, 0, 0, 1), isProtocol, 'empty file')
})
