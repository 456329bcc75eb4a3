// Learning every tracker's ticket key (a sharer must accept tickets from whichever tracker the
// downloader uses), over the same trust check as a real connection.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import type { TrackerAddress } from '../../src/common/tracker-info.ts'
import { discoverTicketKeys } from '../../src/client/key-discovery.ts'
import { KnownTrackers } from '../../src/security/tls.ts'
import { generateTicketSigner, rawPublicKey } from '../../src/security/tickets.ts'
import type { TicketSigner } from '../../src/security/tickets.ts'
import { openSqliteStore } from '../../src/store/sqlite.ts'
import { startTrackerServer } from '../../src/tracker/server.ts'
import { testIdentity } from '../helpers/identity.ts'
import { defer } from '../helpers/cleanup.ts'
import { tmpDir } from '../helpers/tmp.ts'

async function tracker (t: TestContext, no: number, signer: TicketSigner): Promise<TrackerAddress & { fingerprint: string }> {
  const identity = await testIdentity()
  const store = await openSqliteStore(join(await tmpDir(t), 'tracker.sqlite'))
  const server = await startTrackerServer({ store, trackerNo: no, host: '127.0.0.1', port: 0, tls: { identity }, ticketSigner: signer })
  defer(t, async () => {
    await server.close()
    await store.close()
  })
  return { no, host: '127.0.0.1', port: server.address.port, line: no, fingerprint: identity.fingerprint }
}

test('learns the key of every tracker it can verify, and none from a tracker failing its pin', async (t) => {
  const [s1, s2, s3] = [generateTicketSigner(), generateTicketSigner(), generateTicketSigner()]
  const t1 = await tracker(t, 1, s1!)
  const t2 = await tracker(t, 2, s2!)
  const t3 = await tracker(t, 3, s3!)
  const trackers: TrackerAddress[] = [
    { no: 1, host: t1.host, port: t1.port, line: 1 }, // trusted on first use
    t2, // pinned, matching
    { ...t3, fingerprint: (await testIdentity()).fingerprint }, // pinned, not matching
  ]
  const dir = await tmpDir(t)
  const me = await testIdentity()
  const learnt = new Map<string, string>()
  await discoverTicketKeys(trackers, () => true, async (a, k) => { learnt.set(a, k) }, {
    identity: me,
    known: await KnownTrackers.open(join(dir, 'known_trackers')),
    trackersFile: 'trackers.txt',
    clientId: me.fingerprint.slice(7),
    peerAddr: '127.0.0.1:7000',
  })
  assert.deepEqual(learnt, new Map([
    [`127.0.0.1:${t1.port}`, rawPublicKey(s1!.publicKey).toString('hex')],
    [`127.0.0.1:${t2.port}`, rawPublicKey(s2!.publicKey).toString('hex')],
  ]))
})
