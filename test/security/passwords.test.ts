import { test } from 'node:test'
import assert from 'node:assert/strict'
import { scrypt } from 'node:crypto'
import {
  MAX_CONCURRENT_HASHES, MAX_WAITING_HASHES, SCRYPT_N, SCRYPT_P, SCRYPT_R, hashPassword, verifyDummy, verifyPassword,
} from '../../src/security/passwords.ts'

test('hashes as scrypt$N$r$p$salt$hash with the documented cost', async () => {
  const encoded = await hashPassword('correct horse')
  const parts = encoded.split('$')
  assert.equal(parts.length, 6)
  assert.deepEqual(parts.slice(0, 4), ['scrypt', String(SCRYPT_N), String(SCRYPT_R), String(SCRYPT_P)])
  assert.equal(SCRYPT_N, 16384)
  assert.equal(Buffer.from(parts[4]!, 'base64').length, 16)
  assert.equal(Buffer.from(parts[5]!, 'base64').length, 32)
  assert.ok(!encoded.includes('correct horse'))
})

test('verifies the right password and refuses a wrong one', async () => {
  const encoded = await hashPassword('s3cret')
  assert.equal(await verifyPassword('s3cret', encoded), true)
  assert.equal(await verifyPassword('s3cret ', encoded), false)
  assert.equal(await verifyPassword('S3cret', encoded), false)
})

test('uses a fresh salt per hash: the same password hashes differently', async () => {
  const [a, b] = await Promise.all([hashPassword('same'), hashPassword('same')])
  assert.notEqual(a, b)
  assert.notEqual(a.split('$')[4], b.split('$')[4])
})

test('handles passwords outside ASCII', async () => {
  const encoded = await hashPassword('pässwörd 🔑')
  assert.equal(await verifyPassword('pässwörd 🔑', encoded), true)
  assert.equal(await verifyPassword('passwort 🔑', encoded), false)
})

test('verifies hashes made with other cost parameters (the cost can be raised later)', async () => {
  const salt = Buffer.alloc(16, 7)
  const key = await new Promise<Buffer>((resolve, reject) => {
    scrypt('old', salt, 32, { N: 1024, r: 8, p: 1 }, (err, k) => (err === null ? resolve(k) : reject(err)))
  })
  const encoded = `scrypt$1024$8$1$${salt.toString('base64')}$${key.toString('base64')}`
  assert.equal(await verifyPassword('old', encoded), true)
  assert.equal(await verifyPassword('new', encoded), false)
})

test('rejects malformed or over-costly stored hashes instead of treating them as a mismatch', async () => {
  const good = await hashPassword('x')
  const [, , , , salt, hash] = good.split('$')
  for (const bad of ['', 'plain', `bcrypt$16384$8$1$${salt}$${hash}`, `scrypt$1000$8$1$${salt}$${hash}`,
    `scrypt$${2 ** 24}$8$1$${salt}$${hash}`, `scrypt$16384$8$1$$${hash}`, `scrypt$16384$8$1$${salt}`]) {
    await assert.rejects(verifyPassword('x', bad), /malformed/, bad)
  }
})

test('the dummy verification for unknown users returns false', async () => {
  assert.equal(await verifyDummy('anything'), false)
  assert.equal(await verifyDummy(''), false)
})

test('hashing runs off the event loop (async scrypt, not scryptSync)', async () => {
  let turns = 0
  let spinning = true
  const spin = (): void => { if (spinning) { turns++; setImmediate(spin) } }
  setImmediate(spin)
  await hashPassword('event loop stays free')
  spinning = false
  // with scryptSync the promise would settle before any setImmediate callback ran
  assert.ok(turns > 0, `event loop turned ${turns} times during the hash`)
})

test('a flood of hashes is bounded: past the waiting line, BUSY instead of an unbounded queue', async () => {
  const extra = 3
  const results = await Promise.allSettled(Array.from({ length: MAX_CONCURRENT_HASHES + MAX_WAITING_HASHES + extra },
    () => verifyPassword('x', 'scrypt$1024$8$1$' + Buffer.alloc(16).toString('base64') + '$' + Buffer.alloc(32).toString('base64'))))
  const busy = results.filter((r) => r.status === 'rejected')
  assert.equal(busy.length, extra)
  for (const r of busy) assert.equal((r as PromiseRejectedResult).reason.code, 'BUSY')
  assert.equal(await verifyDummy('after the flood'), false)
})
