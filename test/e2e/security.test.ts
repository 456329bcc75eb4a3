// Security as a user of the processes sees it (issue 5): identities and `peershare id`, TLS on the
// tracker port, --insecure-plaintext only on request and with a warning, pins in the trackers file.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import { runPeershare, startClient } from '../helpers/client.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { connectRaw, startTracker } from '../helpers/tracker.ts'

test('peershare id prints the fingerprint the tracker announced; nothing is created where there is none', async (t) => {
  const tracker = await startTracker(t)
  assert.match(tracker.fingerprint ?? '', /^SHA256:[0-9a-f]{64}$/)
  const r = await runPeershare(['id', '--data-dir', tracker.dataDir])
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout, `${tracker.fingerprint}\n`)

  const empty = await tmpDir(t)
  const none = await runPeershare(['id', '--data-dir', empty])
  assert.equal(none.code, 1)
  assert.match(none.stderr, /^peershare: no identity in .* \(no cert\.pem\): pass the data dir of a tracker or client with --data-dir\n$/)
})

test('plain TCP to the tracker port gets nothing but a closed connection', async (t) => {
  const tracker = await startTracker(t)
  const socket = net.connect({ host: '127.0.0.1', port: tracker.port })
  await once(socket, 'connect')
  let got = 0
  socket.on('data', (b: Buffer) => { got += b.length })
  socket.on('error', () => {})
  // a control frame as a plaintext client would send it
  const hello = Buffer.from(JSON.stringify({ id: 1, op: 'hello', args: { version: 1, clientId: 'ab'.repeat(16), peerAddr: '127.0.0.1:1' } }))
  const frame = Buffer.alloc(4 + hello.length)
  frame.writeUInt32BE(hello.length, 0)
  hello.copy(frame, 4)
  socket.write(frame)
  await once(socket, 'close')
  assert.equal(got, 0)
})

test('--insecure-plaintext: a warning on both ends, and the tracker speaks plain TCP', async (t) => {
  const tracker = await startTracker(t, { extraArgs: ['--insecure-plaintext'] })
  assert.match(tracker.stderr(), /WARNING: --insecure-plaintext: .*For benchmarking only/)
  assert.equal(tracker.fingerprint, undefined, 'no identity to announce without TLS')
  const raw = await connectRaw(tracker.port, { plaintext: true })
  t.after(() => raw.close())
  assert.equal((await raw.hello()).ok, true)

  const client = await startClient(t, { infoFile: tracker.infoFile, extraArgs: ['--insecure-plaintext'] })
  assert.match(client.stderr(), /WARNING: --insecure-plaintext/)
  assert.deepEqual(await client.ok('create_user pt pw'), { userId: 'pt' })
})

test('a client refuses a tracker whose certificate is not the one pinned in the trackers file', async (t) => {
  const tracker = await startTracker(t)
  const dir = await tmpDir(t)
  const pinned = join(dir, 'trackers.txt')
  await writeFile(pinned, `127.0.0.1:${tracker.port} SHA256:${'0'.repeat(64)}\n`)
  const client = await startClient(t, { infoFile: pinned })
  const untrusted = await client.waitEvent('untrusted')
  assert.match(String(untrusted.message), /expects SHA256:0{64}: refusing it/)
  const r = await client.run('create_user mallory pw')
  assert.equal(r.ok, false)
  assert.equal(r.error?.code, 'UNTRUSTED')

  // the right pin works
  const good = join(dir, 'good.txt')
  await writeFile(good, `127.0.0.1:${tracker.port} ${tracker.fingerprint}\n`)
  const ok = await startClient(t, { infoFile: good })
  assert.deepEqual(await ok.ok('create_user alice pw'), { userId: 'alice' })
})

test('a session token is bound to the certificate that logged in', async (t) => {
  const tracker = await startTracker(t)
  const alice = await connectRaw(tracker.port)
  t.after(() => alice.close())
  await alice.hello()
  await alice.call('create_user', { userId: 'alice', password: 'pw' })
  const { token } = await alice.call<{ token: string }>('login', { userId: 'alice', password: 'pw' })
  // another certificate claiming alice's clientId in hello: the tracker goes by the certificate
  const thief = await connectRaw(tracker.port)
  t.after(() => thief.close())
  assert.equal((await thief.request('hello', { version: 1, clientId: alice.clientId, peerAddr: '127.0.0.1:1' })).ok, true)
  const r = await thief.request('resume', { token })
  assert.equal(r.ok, false)
  assert.equal(!r.ok && r.error.code, 'NOT_LOGGED_IN')
  // the same certificate resumes
  const again = await connectRaw(tracker.port, { clientId: alice.clientId })
  t.after(() => again.close())
  await again.hello()
  assert.deepEqual(await again.call('resume', { token }), { userId: 'alice' })
})

test('a tracker whose certificate changed after first use is refused, and the client says how to accept it', async (t) => {
  const tracker = await startTracker(t)
  const client = await startClient(t, { infoFile: tracker.infoFile })
  await client.ok('create_user tofu pw') // first use: the certificate is now known
  const before = tracker.fingerprint
  await tracker.kill('SIGKILL')
  await client.waitEvent('disconnected')
  // a new identity on the same address (an impostor, or a tracker given a new data dir)
  await rm(join(tracker.dataDir, 'cert.pem'))
  await rm(join(tracker.dataDir, 'key.pem'))
  await tracker.restart()
  assert.notEqual(tracker.fingerprint, before)
  const untrusted = await client.waitEvent('untrusted')
  assert.match(String(untrusted.message), /was trusted for 127\.0\.0\.1:\d+ before: refusing it/)
  assert.match(String(untrusted.message), /remove the line for 127\.0\.0\.1:\d+ from .*known_trackers/)
  const r = await client.run('list_groups')
  assert.equal(r.ok, false)
  assert.equal(r.error?.code, 'UNTRUSTED')
})
