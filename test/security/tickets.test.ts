import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createPrivateKey, sign } from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { PeershareError } from '../../src/common/errors.ts'
import { MAX_TICKET_BYTES } from '../../src/protocol/wire.ts'
import {
  MAX_TICKET_ENCODED_BYTES, MAX_TICKET_TTL_MS, MIN_TICKET_BYTES, TICKET_CLOCK_SKEW_MS, decodeTicket, encodeTicket,
  encodeTicketBody, generateTicketSigner, rawPublicKey, signTicket, ticketKeyId, ticketPublicKeyFromRaw,
  trustedTicketKeys, verifyTicket,
} from '../../src/security/tickets.ts'
import type { TicketFields } from '../../src/security/tickets.ts'
import { TICKET_KEY_FILE, loadOrCreateTicketKey } from '../../src/security/ticket-key.ts'
import { tmpDir } from '../helpers/tmp.ts'

const NOW = 1_800_000_000_000
const ALICE = 'SHA256:' + 'a1'.repeat(32)
const MALLORY = 'SHA256:' + 'e7'.repeat(32)
const FILE = 'f0'.repeat(32)
const OTHER_FILE = '0f'.repeat(32)
const tracker = generateTicketSigner()
const trustedKeys = trustedTicketKeys([tracker.publicKey])
const claims = { requester: ALICE, fileId: FILE, groupId: 'team-1', expiresAt: NOW + 10 * 60_000 }
const checks = { trustedKeys, now: NOW, fileId: FILE, peerFingerprint: ALICE }

const badTicket = (re: RegExp) => (err: unknown): boolean => {
  assert.ok(err instanceof PeershareError, String(err))
  assert.equal(err.code, 'BAD_TICKET')
  assert.match(err.message, re)
  return true
}

test('a signed ticket verifies and yields its claims; it fits the handshake', () => {
  const bytes = signTicket(claims, tracker)
  assert.ok(bytes.length <= MAX_TICKET_BYTES)
  assert.ok(bytes.length >= MIN_TICKET_BYTES && bytes.length <= MAX_TICKET_ENCODED_BYTES)
  assert.deepEqual(verifyTicket(bytes, checks), { ...claims, keyId: tracker.keyId })
})

test('the longest group id still fits MAX_TICKET_BYTES', () => {
  const bytes = signTicket({ ...claims, groupId: 'g'.repeat(32) }, tracker)
  assert.equal(bytes.length, MAX_TICKET_ENCODED_BYTES)
  assert.ok(bytes.length <= MAX_TICKET_BYTES)
  assert.equal(verifyTicket(bytes, checks).groupId, 'g'.repeat(32))
})

test('encode/decode round trip keeps every field', () => {
  const fields: TicketFields = { ...claims, keyId: '0123456789abcdef' }
  const sig = Buffer.alloc(64, 7)
  const decoded = decodeTicket(encodeTicket(fields, sig))
  assert.deepEqual({ ...decoded, signed: undefined, signature: undefined }, { ...fields, signed: undefined, signature: undefined })
  assert.deepEqual(decoded.signature, sig)
  assert.deepEqual(decoded.signed, encodeTicketBody(fields))
})

// the refusals issue 5 lists, plus the edges around them
const refusals: Array<{ name: string, bytes: () => Buffer | undefined, opts?: Partial<typeof checks>, reason: RegExp }> = [
  { name: 'no ticket (absent)', bytes: () => undefined, reason: /^no ticket$/ },
  { name: 'no ticket (empty)', bytes: () => Buffer.alloc(0), reason: /^no ticket$/ },
  { name: 'expired', bytes: () => signTicket({ ...claims, expiresAt: NOW - TICKET_CLOCK_SKEW_MS - 1 }, tracker), reason: /expired 30 s ago/ },
  { name: 'expired exactly at the skew limit', bytes: () => signTicket({ ...claims, expiresAt: NOW - TICKET_CLOCK_SKEW_MS }, tracker), reason: /expired/ },
  { name: 'for another file', bytes: () => signTicket({ ...claims, fileId: OTHER_FILE }, tracker), reason: /another file/ },
  { name: 'for another certificate', bytes: () => signTicket(claims, tracker), opts: { peerFingerprint: MALLORY }, reason: /another certificate/ },
  { name: 'signed by an unknown key', bytes: () => signTicket(claims, generateTicketSigner()), reason: /unknown key [0-9a-f]{16}/ },
  { name: 'with no trusted key at all', bytes: () => signTicket(claims, tracker), opts: { trustedKeys: new Map() }, reason: /unknown key/ },
  { name: 'lasting longer than any ticket may', bytes: () => signTicket({ ...claims, expiresAt: NOW + MAX_TICKET_TTL_MS + TICKET_CLOCK_SKEW_MS + 1 }, tracker), reason: /longer than any ticket may/ },
  { name: 'truncated', bytes: () => signTicket(claims, tracker).subarray(0, 100), reason: /at least/ },
  { name: 'one byte short', bytes: () => { const b = signTicket(claims, tracker); return b.subarray(0, b.length - 1) }, reason: /makes/ },
  { name: 'one byte too many', bytes: () => Buffer.concat([signTicket(claims, tracker), Buffer.alloc(1)]), reason: /makes/ },
  { name: 'oversized', bytes: () => Buffer.alloc(MAX_TICKET_BYTES), reason: /at most/ },
  { name: 'unknown version', bytes: () => { const b = signTicket(claims, tracker); b[0] = 2; return b }, reason: /version 2 is not supported/ },
]
for (const r of refusals) {
  test(`refuses a ticket: ${r.name}`, () => {
    assert.throws(() => verifyTicket(r.bytes(), { ...checks, ...r.opts }), badTicket(r.reason))
  })
}

test('refuses a ticket with any single flipped bit, wherever it is', () => {
  const good = signTicket(claims, tracker)
  for (let i = 0; i < good.length; i++) {
    for (const bit of [0x01, 0x80]) {
      const b = Buffer.from(good)
      b[i]! ^= bit
      // every flip is BAD_TICKET; which reason depends on the byte (version, key id, length, signature)
      assert.throws(() => verifyTicket(b, checks), (err: unknown) => err instanceof PeershareError && err.code === 'BAD_TICKET', `byte ${i} bit ${bit}`)
    }
  }
})

test('a ticket with a flipped claim byte fails on the signature, not on the claim', () => {
  const b = signTicket(claims, tracker)
  b[1 + 8 + 8]! ^= 0xff // first byte of the requester fingerprint
  assert.throws(() => verifyTicket(b, checks), badTicket(/signature does not verify/))
})

test('a signature over the same bytes without the domain prefix does not verify', () => {
  const body = encodeTicketBody({ ...claims, keyId: tracker.keyId })
  const forged = Buffer.concat([body, sign(null, body, tracker.privateKey)])
  assert.throws(() => verifyTicket(forged, checks), badTicket(/signature does not verify/))
})

test('decode refuses a group id that is not a valid id', () => {
  const good = encodeTicketBody({ ...claims, keyId: tracker.keyId })
  const withGroup = (group: Buffer): Buffer => {
    const fixed = good.subarray(0, good.length - Buffer.byteLength(claims.groupId) - 1)
    return Buffer.concat([fixed, Buffer.from([group.length]), group, Buffer.alloc(64)])
  }
  assert.throws(() => decodeTicket(withGroup(Buffer.from('../x'))), badTicket(/group id is invalid/))
  assert.throws(() => decodeTicket(withGroup(Buffer.from([0xff, 0x41]))), badTicket(/not valid UTF-8/))
  assert.throws(() => decodeTicket(withGroup(Buffer.alloc(0))), badTicket(/at least/))
})

test('encode refuses fields it cannot represent', () => {
  const ok: TicketFields = { ...claims, keyId: tracker.keyId }
  for (const bad of [{ keyId: 'xyz' }, { fileId: 'abc' }, { expiresAt: -1 }, { expiresAt: 1.5 }, { groupId: 'bad group' }, { requester: 'SHA1:00' }]) {
    assert.throws(() => encodeTicketBody({ ...ok, ...bad }), (err: unknown) => err instanceof PeershareError && err.code === 'BAD_REQUEST', JSON.stringify(bad))
  }
})

test('a tracker public key travels as 32 raw bytes and keeps its key id', () => {
  const raw = rawPublicKey(tracker.publicKey)
  assert.equal(raw.length, 32)
  const back = ticketPublicKeyFromRaw(raw.toString('hex'))
  assert.equal(ticketKeyId(back), tracker.keyId)
  assert.deepEqual(verifyTicket(signTicket(claims, tracker), { ...checks, trustedKeys: trustedTicketKeys([back]) }).keyId, tracker.keyId)
  assert.throws(() => ticketPublicKeyFromRaw(Buffer.alloc(31)), (err: unknown) => err instanceof PeershareError && err.code === 'BAD_REQUEST')
})

test('the tracker signing key is created once (0600) and reused: old tickets still verify after a restart', async (t) => {
  const dir = await tmpDir(t)
  const first = await loadOrCreateTicketKey(dir)
  assert.equal(first.created, true)
  assert.ok(first.file.endsWith(TICKET_KEY_FILE))
  assert.equal((await stat(first.file)).mode & 0o777, 0o600)
  const ticket = signTicket(claims, first)
  const again = await loadOrCreateTicketKey(dir)
  assert.equal(again.created, false)
  assert.equal(again.keyId, first.keyId)
  assert.equal(verifyTicket(ticket, { ...checks, trustedKeys: trustedTicketKeys([again.publicKey]) }).requester, ALICE)
  assert.equal(createPrivateKey(await readFile(first.file, 'utf8')).asymmetricKeyType, 'ed25519')
})

test('a damaged tracker signing key is refused with a message naming the file', async (t) => {
  const dir = await tmpDir(t)
  const { file } = await loadOrCreateTicketKey(dir)
  await writeFile(file, 'garbage')
  await assert.rejects(loadOrCreateTicketKey(dir), (err: unknown) =>
    err instanceof PeershareError && err.code === 'BAD_REQUEST' && err.message.includes(file))
})
