import { test } from 'node:test'
import assert from 'node:assert/strict'
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto'
import { chmod, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PeershareError } from '../../src/common/errors.ts'
import {
  CERT_FILE, FINGERPRINT_RE, KEY_FILE, fingerprintBytes, fingerprintOf, loadOrCreateIdentity, parseFingerprint,
  selfSignedCertificate, shortFingerprint,
} from '../../src/security/identity.ts'
import { tmpDir } from '../helpers/tmp.ts'

const isBadRequest = (re: RegExp) => (err: unknown): boolean => {
  assert.ok(err instanceof PeershareError)
  assert.equal(err.code, 'BAD_REQUEST')
  assert.match(err.message, re)
  return true
}

test('first start creates a P-256 key (mode 0600) and a self-signed certificate; the fingerprint is SHA-256 of the DER', async (t) => {
  const dir = join(await tmpDir(t), 'data') // does not exist yet: created (0700)
  const id = await loadOrCreateIdentity(dir)
  assert.equal(id.created, true)
  assert.match(id.fingerprint, FINGERPRINT_RE)
  assert.equal(id.shortId, id.fingerprint.slice(7, 15))
  assert.equal((await stat(id.keyFile)).mode & 0o777, 0o600)
  assert.equal((await stat(dir)).mode & 0o777, 0o700)
  assert.equal(id.keyFile, join(dir, KEY_FILE))
  assert.equal(id.certFile, join(dir, CERT_FILE))
  const cert = new X509Certificate(await readFile(id.certFile))
  assert.equal(cert.subject, 'CN=peershare')
  assert.equal(cert.issuer, cert.subject)
  assert.ok(cert.verify(cert.publicKey), 'self-signed')
  assert.ok(cert.checkPrivateKey(createPrivateKey(id.keyPem)))
  assert.equal(cert.publicKey.asymmetricKeyType, 'ec')
  assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1')
  // node's own colon form of the same digest
  assert.equal(id.fingerprint, 'SHA256:' + cert.fingerprint256.replaceAll(':', '').toLowerCase())
  assert.equal(fingerprintOf(cert), id.fingerprint)
  assert.equal(fingerprintOf(id.certDer), id.fingerprint)
})

test('later starts reuse the same identity', async (t) => {
  const dir = await tmpDir(t)
  const first = await loadOrCreateIdentity(dir)
  const again = await loadOrCreateIdentity(dir)
  assert.equal(again.created, false)
  assert.equal(again.fingerprint, first.fingerprint)
  assert.equal(again.keyPem, first.keyPem)
})

test('two processes starting at once on one data dir end up with one identity', async (t) => {
  const dir = await tmpDir(t)
  const ids = await Promise.all([loadOrCreateIdentity(dir), loadOrCreateIdentity(dir), loadOrCreateIdentity(dir)])
  assert.equal(new Set(ids.map((i) => i.fingerprint)).size, 1)
  assert.equal((await loadOrCreateIdentity(dir)).fingerprint, ids[0]!.fingerprint)
})

test('a key whose certificate was never written (crash between the two) gets a certificate for that key', async (t) => {
  const dir = await tmpDir(t)
  const first = await loadOrCreateIdentity(dir)
  await rm(first.certFile)
  const next = await loadOrCreateIdentity(dir)
  assert.equal(next.created, true)
  assert.equal(next.keyPem, first.keyPem)
  assert.ok(new X509Certificate(next.certPem).checkPrivateKey(createPrivateKey(next.keyPem)))
})

test('a certificate that does not belong to the key is refused, never replaced silently', async (t) => {
  const dir = await tmpDir(t)
  const other = await tmpDir(t)
  const mine = await loadOrCreateIdentity(dir)
  const theirs = await loadOrCreateIdentity(other)
  await writeFile(mine.certFile, theirs.certPem)
  await assert.rejects(loadOrCreateIdentity(dir), isBadRequest(/does not belong to the key .*delete both files/))
  assert.equal(await readFile(mine.certFile, 'utf8'), theirs.certPem)
})

test('an unreadable key or certificate is refused with a message naming the file', async (t) => {
  const dir = await tmpDir(t)
  const id = await loadOrCreateIdentity(dir)
  await writeFile(id.certFile, 'not a certificate\n')
  await assert.rejects(loadOrCreateIdentity(dir), isBadRequest(new RegExp(`${CERT_FILE} is not a readable certificate`)))
  await writeFile(id.keyFile, 'garbage\n', { mode: 0o600 })
  await assert.rejects(loadOrCreateIdentity(dir), isBadRequest(new RegExp(`${KEY_FILE} is not a readable private key`)))
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
  await writeFile(id.keyFile, rsa)
  await assert.rejects(loadOrCreateIdentity(dir), isBadRequest(/key type rsa is not supported/))
})

test('a key readable by others is tightened to 0600', async (t) => {
  const dir = await tmpDir(t)
  const id = await loadOrCreateIdentity(dir)
  await chmod(id.keyFile, 0o644)
  await loadOrCreateIdentity(dir)
  assert.equal((await stat(id.keyFile)).mode & 0o777, 0o600)
})

test('an Ed25519 identity found on disk loads too', async (t) => {
  const dir = await tmpDir(t)
  const key = generateKeyPairSync('ed25519').privateKey
  await writeFile(join(dir, KEY_FILE), key.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 })
  await writeFile(join(dir, CERT_FILE), await selfSignedCertificate(key))
  const id = await loadOrCreateIdentity(dir)
  assert.equal(id.created, false)
  assert.equal(new X509Certificate(id.certPem).publicKey.asymmetricKeyType, 'ed25519')
})

test('fingerprint helpers: parse normalises case, refuses other shapes; short form is 8 hex', () => {
  const hex = 'AB'.repeat(32)
  assert.equal(parseFingerprint(`SHA256:${hex}`), `SHA256:${hex.toLowerCase()}`)
  assert.equal(parseFingerprint(`  SHA256:${hex}\n`), `SHA256:${hex.toLowerCase()}`)
  for (const bad of ['', 'SHA256:', `SHA1:${hex}`, `SHA256:${hex}00`, `sha256:${hex}`, `SHA256:${'g'.repeat(64)}`, 42, undefined]) {
    assert.throws(() => parseFingerprint(bad), isBadRequest(/not a certificate fingerprint/), String(bad))
  }
  assert.equal(shortFingerprint(`SHA256:${'0123456789'.repeat(6)}abcd`), '01234567')
  assert.deepEqual(fingerprintBytes(`SHA256:${hex}`), Buffer.from(hex, 'hex'))
})
