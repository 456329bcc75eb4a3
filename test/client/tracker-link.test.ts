// The client's control link over TLS: pinned trackers, trust on first use, a changed certificate
// refused (and said, not hidden by failover), the ticket key taken only from a verified tracker.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import { PeershareError } from '../../src/common/errors.ts'
import type { TrackerAddress } from '../../src/common/tracker-info.ts'
import { TrackerLink } from '../../src/client/tracker-link.ts'
import type { ConnectedInfo } from '../../src/client/tracker-link.ts'
import type { Identity } from '../../src/security/identity.ts'
import { KnownTrackers } from '../../src/security/tls.ts'
import { generateTicketSigner } from '../../src/security/tickets.ts'
import { openSqliteStore } from '../../src/store/sqlite.ts'
import { startTrackerServer } from '../../src/tracker/server.ts'
import type { TrackerServer } from '../../src/tracker/server.ts'
import { testIdentity } from '../helpers/identity.ts'
import { defer } from '../helpers/cleanup.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { waitFor } from '../helpers/wait.ts'

async function tracker (t: TestContext, identity: Identity, port = 0): Promise<TrackerServer> {
  const store = await openSqliteStore(join(await tmpDir(t), 'tracker.sqlite'))
  const server = await startTrackerServer({ store, trackerNo: 1, host: '127.0.0.1', port, tls: { identity }, ticketSigner: generateTicketSigner() })
  defer(t, async () => {
    await server.close()
    await store.close()
  })
  return server
}

async function link (t: TestContext, trackers: TrackerAddress[], dataDir: string): Promise<{ link: TrackerLink, known: KnownTrackers, untrusted: PeershareError[], connected: ConnectedInfo[] }> {
  const identity = await testIdentity()
  const known = await KnownTrackers.open(join(dataDir, 'known_trackers'))
  const l = new TrackerLink({
    trackers,
    clientId: identity.fingerprint.slice(7),
    peerAddr: '127.0.0.1:7000',
    security: { identity, known, trackersFile: 'trackers.txt' },
  })
  const untrusted: PeershareError[] = []
  const connected: ConnectedInfo[] = []
  l.on('untrusted', (_address, err) => untrusted.push(err))
  l.on('connected', (info) => connected.push(info))
  t.after(() => l.close())
  await l.start()
  return { link: l, known, untrusted, connected }
}

const at = (port: number, fingerprint?: string): TrackerAddress =>
  ({ no: 1, host: '127.0.0.1', port, line: 1, ...(fingerprint === undefined ? {} : { fingerprint }) })

test('a pinned tracker with its own certificate: connected, and its ticket key is trusted', async (t) => {
  const id = await testIdentity()
  const server = await tracker(t, id)
  const { link: l, connected } = await link(t, [at(server.address.port, id.fingerprint)], await tmpDir(t))
  assert.deepEqual(await l.request('ping', {}), {})
  assert.match(connected[0]?.ticketKey ?? '', /^[0-9a-f]{64}$/)
})

test('a tracker whose certificate does not match the pin is refused with UNTRUSTED, not a generic failure', async (t) => {
  const server = await tracker(t, await testIdentity())
  const other = await testIdentity()
  const { link: l, untrusted, connected } = await link(t, [at(server.address.port, other.fingerprint)], await tmpDir(t))
  const err = await l.request('ping', {}, { timeoutMs: 1_000 }).then(() => undefined, (e: unknown) => e)
  assert.ok(err instanceof PeershareError)
  assert.equal(err.code, 'UNTRUSTED')
  assert.match(err.message, new RegExp(`expects ${other.fingerprint}`))
  assert.equal(untrusted.length, 1, 'said once, not once per retry')
  assert.equal(connected.length, 0)
})

test('trust on first use: stored in known_trackers; a changed certificate later is refused with how to accept it', async (t) => {
  const first = await tracker(t, await testIdentity())
  const port = first.address.port
  const dataDir = await tmpDir(t)
  const a = await link(t, [at(port)], dataDir)
  assert.deepEqual(await a.link.request('ping', {}), {})
  const saved = await readFile(join(dataDir, 'known_trackers'), 'utf8')
  assert.match(saved, new RegExp(`^127\\.0\\.0\\.1:${port} SHA256:[0-9a-f]{64}$`, 'm'))
  await a.link.close()

  // an impostor (or a tracker with a new data dir) on the same address
  await first.close()
  await tracker(t, await testIdentity(), port)
  const b = await link(t, [at(port)], dataDir)
  const err = await b.link.request('ping', {}, { timeoutMs: 1_000 }).then(() => undefined, (e: unknown) => e)
  assert.ok(err instanceof PeershareError)
  assert.equal(err.code, 'UNTRUSTED')
  assert.match(err.message, /remove the line for 127\.0\.0\.1:\d+ from .*known_trackers/)
  await waitFor(() => b.untrusted.length > 0 ? true : undefined, 'the untrusted event')
  assert.equal(b.link.untrusted.size, 1)
})

test('failover does not hide an untrusted tracker: the event is emitted while another tracker serves', async (t) => {
  const bad = await tracker(t, await testIdentity())
  const good = await tracker(t, await testIdentity())
  const { link: l, untrusted } = await link(t, [at(bad.address.port, (await testIdentity()).fingerprint), { ...at(good.address.port), no: 2 }], await tmpDir(t))
  assert.deepEqual(await l.request('ping', {}), {})
  assert.equal(untrusted.length, 1)
  assert.equal(untrusted[0]!.code, 'UNTRUSTED')
})
