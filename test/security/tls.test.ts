import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PeershareError } from '../../src/common/errors.ts'
import { parseTrackerInfo } from '../../src/common/tracker-info.ts'
import { loadOrCreateIdentity } from '../../src/security/identity.ts'
import {
  KnownTrackers, TLS_VERSION, addressKey, checkPeer, clientTlsOptions, knownTrackersPath, serverTlsOptions, trackerTrust,
} from '../../src/security/tls.ts'
import { tmpDir } from '../helpers/tmp.ts'

const A = 'SHA256:' + 'aa'.repeat(32)
const B = 'SHA256:' + 'bb'.repeat(32)
const A_UPPER = 'SHA256:' + 'AA'.repeat(32)

const untrusted = (...res: RegExp[]) => (err: unknown): boolean => {
  assert.ok(err instanceof PeershareError, String(err))
  assert.equal(err.code, 'UNTRUSTED')
  for (const re of res) assert.match(err.message, re)
  return true
}

test('option builders: TLS 1.3 only, our certificate, client certificate requested, CA checks off', async (t) => {
  const id = await loadOrCreateIdentity(await tmpDir(t))
  const server = serverTlsOptions(id)
  assert.equal(server.minVersion, TLS_VERSION)
  assert.equal(server.maxVersion, TLS_VERSION)
  assert.equal(server.requestCert, true)
  assert.equal(server.rejectUnauthorized, false)
  assert.equal(server.cert, id.certPem)
  assert.equal(server.key, id.keyPem)
  const client = clientTlsOptions(id)
  assert.equal(client.minVersion, TLS_VERSION)
  assert.equal(client.rejectUnauthorized, false)
  assert.equal(client.cert, id.certPem)
})

test('known trackers: first use stores the fingerprint durably; the same one is accepted later', async (t) => {
  const path = knownTrackersPath(await tmpDir(t))
  const known = await KnownTrackers.open(path)
  assert.equal(known.get('127.0.0.1:6000'), undefined)
  assert.equal(await known.check('127.0.0.1:6000', A), 'first-use')
  assert.match(await readFile(path, 'utf8'), /^127\.0\.0\.1:6000 SHA256:a{64}$/m)
  const reopened = await KnownTrackers.open(path)
  assert.equal(reopened.get('127.0.0.1:6000'), A)
  assert.equal(await reopened.check('127.0.0.1:6000', A), 'known')
})

test('known trackers: a changed certificate is refused with the way to accept it, and the file is kept', async (t) => {
  const path = knownTrackersPath(await tmpDir(t))
  const known = await KnownTrackers.open(path)
  await known.check('127.0.0.1:6000', A)
  const before = await readFile(path, 'utf8')
  await assert.rejects(known.check('127.0.0.1:6000', B, 'tracker 1 (127.0.0.1:6000)'), untrusted(
    /^tracker 1 \(127\.0\.0\.1:6000\) presented certificate SHA256:b{64}, but SHA256:a{64} was trusted/,
    new RegExp(`remove the line for 127\\.0\\.0\\.1:6000 from ${path.replaceAll('.', '\\.')}`),
    /pin the new fingerprint in the trackers file \("127\.0\.0\.1:6000 SHA256:b{64}"\)/,
  ))
  assert.equal(await readFile(path, 'utf8'), before)
  assert.equal(known.get('127.0.0.1:6000'), A)
})

test('known trackers: removing the line (or forget) accepts the new certificate on the next use', async (t) => {
  const path = knownTrackersPath(await tmpDir(t))
  const known = await KnownTrackers.open(path)
  await known.check('127.0.0.1:6000', A)
  await known.check('127.0.0.1:6001', A)
  const text = await readFile(path, 'utf8')
  await writeFile(path, text.split('\n').filter((l) => !l.startsWith('127.0.0.1:6000 ')).join('\n'))
  const edited = await KnownTrackers.open(path)
  assert.equal(await edited.check('127.0.0.1:6000', B), 'first-use')
  assert.equal(await edited.forget('127.0.0.1:6001'), true)
  assert.equal(await edited.forget('127.0.0.1:6001'), false)
  const final = await KnownTrackers.open(path)
  assert.equal(final.get('127.0.0.1:6000'), B)
  assert.equal(final.get('127.0.0.1:6001'), undefined)
})

test('known trackers: concurrent first uses of several trackers are all stored', async (t) => {
  const path = knownTrackersPath(await tmpDir(t))
  const known = await KnownTrackers.open(path)
  const results = await Promise.all([6000, 6001, 6002, 6000].map((p) => known.check(`127.0.0.1:${p}`, A)))
  assert.deepEqual(results.toSorted(), ['first-use', 'first-use', 'first-use', 'known'])
  const reopened = await KnownTrackers.open(path)
  for (const p of [6000, 6001, 6002]) assert.equal(reopened.get(`127.0.0.1:${p}`), A)
})

test('known trackers: a damaged line is refused with the file and line number', async (t) => {
  const path = knownTrackersPath(await tmpDir(t))
  await writeFile(path, `# comment\n127.0.0.1:6000 ${A}\n\nnot a line\n`)
  await assert.rejects(KnownTrackers.open(path), (err: unknown) =>
    err instanceof PeershareError && err.code === 'BAD_REQUEST' && err.message.startsWith(`${path}, line 4: expected`))
})

test('checkPeer: a pin accepts exactly its fingerprint (any case) and refuses another, saying where the pin comes from', async () => {
  await checkPeer(A, { kind: 'pin', fingerprint: A_UPPER }, 'x')
  await assert.rejects(checkPeer(B, { kind: 'pin', fingerprint: A, source: 'trackers.txt' }, 'tracker 1 (127.0.0.1:6000)'),
    untrusted(/^tracker 1 \(127\.0\.0\.1:6000\) presented certificate SHA256:b{64}, but trackers\.txt expects SHA256:a{64}/))
  await assert.rejects(checkPeer(undefined, { kind: 'any' }, 'peer p'), untrusted(/peer p presented no certificate/))
  await checkPeer(B, { kind: 'any' }, 'x')
})

test('trackerTrust: a fingerprint in the trackers file pins; without one, trust on first use under host:port', async (t) => {
  const known = await KnownTrackers.open(join(await tmpDir(t), 'k'))
  const [pinned, open, v6] = parseTrackerInfo(`127.0.0.1:6000 ${A_UPPER}\n127.0.0.1 6001\n[::1]:6002\n`)
  assert.deepEqual(trackerTrust(pinned!, known, 'trackers.txt'), { kind: 'pin', fingerprint: A, source: 'trackers.txt' })
  assert.deepEqual(trackerTrust(open!, known), { kind: 'tofu', known, address: '127.0.0.1:6001' })
  assert.deepEqual(trackerTrust(v6!, known), { kind: 'tofu', known, address: '[::1]:6002' })
  assert.equal(addressKey('::1', 1), '[::1]:1')
})
