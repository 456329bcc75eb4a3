import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import {
  MAX_REQUEST_ID, decodeRequest, decodeServerMessage, encodeMessage, errorResponse, parseHostPort, peekRequestId,
} from '../../src/protocol/control.ts'
import type { ControlRequest } from '../../src/protocol/control.ts'
import { PeershareError } from '../../src/common/errors.ts'
import { PIECE_BYTES } from '../../src/protocol/file-meta.ts'
import type { FileMeta } from '../../src/protocol/file-meta.ts'

const sha1 = (s: string): Buffer => createHash('sha1').update(s).digest()
const META: FileMeta = {
  name: 'a.bin', size: PIECE_BYTES + 1, pieceBytes: PIECE_BYTES,
  pieceHashes: Buffer.concat([sha1('p0'), sha1('p1')]), fileHash: sha1('whole'),
}
const TOKEN = 'A'.repeat(43)
const FILE_ID = 'f'.repeat(64)

const VALID: ControlRequest[] = [
  { id: 0, op: 'hello', args: { version: 1, clientId: 'ab'.repeat(16), peerAddr: '127.0.0.1:7001' } },
  { id: 1, op: 'ping', args: {} },
  { id: 2, op: 'create_user', args: { userId: 'alice', password: 'p w' } },
  { id: 3, op: 'login', args: { userId: 'alice', password: 'pw' } },
  { id: 4, op: 'resume', args: { token: TOKEN } },
  { id: 5, op: 'logout', args: {} },
  { id: 6, op: 'create_group', args: { groupId: 'g1' } },
  { id: 7, op: 'join_group', args: { groupId: 'g1' } },
  { id: 8, op: 'leave_group', args: { groupId: 'g1' } },
  { id: 9, op: 'list_requests', args: { groupId: 'g1' } },
  { id: 10, op: 'accept_request', args: { groupId: 'g1', userId: 'bob' } },
  { id: 11, op: 'reject_request', args: { groupId: 'g1', userId: 'bob' } },
  { id: 12, op: 'list_groups', args: {} },
  { id: 13, op: 'list_files', args: { groupId: 'g1' } },
  { id: 14, op: 'upload_file', args: { groupId: 'g1', meta: META } },
  { id: 15, op: 'stop_share', args: { groupId: 'g1', fileName: 'a.bin' } },
  { id: 16, op: 'reshare', args: { shares: [{ groupId: 'g1', fileId: FILE_ID }] } },
  { id: MAX_REQUEST_ID, op: 'get_file', args: { groupId: 'g1', fileName: 'a.bin' } },
  { id: 17, op: 'hold', args: { groupId: 'g1', fileId: FILE_ID } },
]

for (const req of VALID) {
  test(`round trip: ${req.op}`, () => {
    assert.deepEqual(decodeRequest(encodeMessage(req)), req)
  })
}

test('FileMeta travels as base64 piece hashes and a hex file hash, never as a byte array', () => {
  const json = JSON.parse(encodeMessage(VALID[14]!).toString()) as { args: { meta: Record<string, unknown> } }
  assert.equal(json.args.meta.pieceHashes, META.pieceHashes.toString('base64'))
  assert.equal(json.args.meta.fileHash, META.fileHash.toString('hex'))
})

const body = (v: unknown): Buffer => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v))

const BAD_REQUESTS: Array<[string, unknown, 'PROTOCOL' | 'BAD_REQUEST']> = [
  ['not JSON', '{"id": 1,', 'PROTOCOL'],
  ['truncated JSON', '{"id":1,"op":"ping"', 'PROTOCOL'],
  ['an array', [1, 'ping'], 'PROTOCOL'],
  ['no id', { op: 'ping' }, 'PROTOCOL'],
  ['negative id', { id: -1, op: 'ping' }, 'PROTOCOL'],
  ['fractional id', { id: 1.5, op: 'ping' }, 'PROTOCOL'],
  ['id too large', { id: MAX_REQUEST_ID + 1, op: 'ping' }, 'PROTOCOL'],
  ['string id', { id: '1', op: 'ping' }, 'PROTOCOL'],
  ['unknown op', { id: 1, op: 'frobnicate' }, 'BAD_REQUEST'],
  ['op not a string', { id: 1, op: 7 }, 'BAD_REQUEST'],
  ['args not an object', { id: 1, op: 'ping', args: [] }, 'BAD_REQUEST'],
  ['user id of the wrong type', { id: 1, op: 'login', args: { userId: 5, password: 'x' } }, 'BAD_REQUEST'],
  ['missing password', { id: 1, op: 'login', args: { userId: 'a' } }, 'BAD_REQUEST'],
  ['bad group id', { id: 1, op: 'join_group', args: { groupId: '../x' } }, 'BAD_REQUEST'],
  ['file name that is a path', { id: 1, op: 'stop_share', args: { groupId: 'g', fileName: '../etc/passwd' } }, 'BAD_REQUEST'],
  ['short token', { id: 1, op: 'resume', args: { token: 'abc' } }, 'BAD_REQUEST'],
  ['hello without version', { id: 1, op: 'hello', args: { clientId: 'ab'.repeat(16), peerAddr: '127.0.0.1:1' } }, 'BAD_REQUEST'],
  ['hello with a bad peer address', { id: 1, op: 'hello', args: { version: 1, clientId: 'ab'.repeat(16), peerAddr: 'x:0' } }, 'BAD_REQUEST'],
  ['reshare not an array', { id: 1, op: 'reshare', args: { shares: {} } }, 'BAD_REQUEST'],
  ['reshare with a bad file id', { id: 1, op: 'reshare', args: { shares: [{ groupId: 'g', fileId: 'xyz' }] } }, 'BAD_REQUEST'],
  ['hold without a file id', { id: 1, op: 'hold', args: { groupId: 'g' } }, 'BAD_REQUEST'],
  ['hold with an uppercase file id', { id: 1, op: 'hold', args: { groupId: 'g', fileId: 'F'.repeat(64) } }, 'BAD_REQUEST'],
  ['hold with a bad group id', { id: 1, op: 'hold', args: { groupId: '', fileId: FILE_ID } }, 'BAD_REQUEST'],
  ['upload with hashes of the wrong count', { id: 1, op: 'upload_file', args: { groupId: 'g', meta: { ...JSON.parse(encodeMessage(VALID[14]!).toString()).args.meta, size: 1 } } }, 'BAD_REQUEST'],
]

for (const [what, value, code] of BAD_REQUESTS) {
  test(`decodeRequest refuses ${what} with ${code}`, () => {
    assert.throws(() => decodeRequest(body(value)), (err: unknown) => err instanceof PeershareError && err.code === code)
  })
}

test('peekRequestId finds the id of a request with bad arguments, and nothing in garbage', () => {
  assert.equal(peekRequestId(body({ id: 9, op: 'login', args: { userId: 5 } })), 9)
  assert.equal(peekRequestId(body('garbage')), undefined)
  assert.equal(peekRequestId(body({ id: 'x' })), undefined)
})

test('decodeServerMessage: results, errors and events', () => {
  assert.deepEqual(decodeServerMessage(body({ id: 3, ok: true, result: { a: 1 } })), { id: 3, ok: true, result: { a: 1 } })
  const err = errorResponse(4, new PeershareError('NOT_MEMBER', 'not a member'))
  assert.deepEqual(decodeServerMessage(encodeMessage(err)), err)
  assert.deepEqual(decodeServerMessage(body({ event: 'hi', data: [1] })), { event: 'hi', data: [1] })
  // a code this client does not know yet degrades to INTERNAL, the message is kept
  assert.deepEqual(decodeServerMessage(body({ id: 5, ok: false, error: { code: 'NEWER_CODE', message: 'm' } })),
    { id: 5, ok: false, error: { code: 'INTERNAL', message: 'm' } })
})

const BAD_SERVER: Array<[string, unknown]> = [
  ['not JSON', 'nope'],
  ['not an object', '[]'],
  ['no id', { ok: true, result: {} }],
  ['ok not a boolean', { id: 1, ok: 'yes' }],
  ['error without message', { id: 1, ok: false, error: { code: 'NOT_FOUND' } }],
  ['error not an object', { id: 1, ok: false, error: 'bad' }],
]
for (const [what, value] of BAD_SERVER) {
  test(`decodeServerMessage refuses ${what}`, () => {
    assert.throws(() => decodeServerMessage(body(value)), { code: 'PROTOCOL' })
  })
}

test('parseHostPort', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:7001'), { host: '127.0.0.1', port: 7001 })
  assert.deepEqual(parseHostPort('[::1]:80'), { host: '::1', port: 80 })
  for (const bad of ['127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536', ':80', '1.2.3.4:x', 'a b:1']) assert.equal(parseHostPort(bad), undefined, bad)
})
