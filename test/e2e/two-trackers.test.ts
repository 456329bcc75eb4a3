// Two trackers over one etcd are one service: accounts, groups and files made through one are
// usable through the other, by real clients (--json) whose trackers files list a different first
// tracker. Reads through the other tracker come from its watch-fed replica, so they are waited for
// (within the 1 s the issue allows), never slept for.

import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { startClient } from '../helpers/client.ts'
import type { StartedClient } from '../helpers/client.ts'
import { content } from '../helpers/peer.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { waitFor } from '../helpers/wait.ts'
import { assertComplete } from './download-helpers.ts'
import { addressOf, startEtcdTrackers } from './etcd-trackers.ts'

/** Generous next to the 1 s propagation bound: a loaded CI machine runs several suites at once. */
const PROPAGATION_WAIT_MS = 5_000

async function groupIds (c: StartedClient): Promise<string[]> {
  return (await c.ok('list_groups')).groups.map((g: { groupId: string }) => g.groupId).sort()
}

test('two trackers over one etcd: users, groups and files cross from one to the other', async (t) => {
  const { trackers: [t1, t2], fileFor } = await startEtcdTrackers(t, 2)
  const alice = await startClient(t, { infoFile: await fileFor([0, 1]) })
  const bob = await startClient(t, { infoFile: await fileFor([1, 0]) })
  assert.equal(alice.ready.tracker, addressOf(t1!))
  assert.equal(bob.ready.tracker, addressOf(t2!))

  // a user created through tracker 1 logs in through tracker 2
  await alice.ok('create_user alice pw-a')
  await alice.ok('create_user bob pw-b')
  // ... with its password checked there too
  assert.equal((await bob.run('login bob wrong')).error?.code, 'BAD_PASSWORD')
  assert.equal((await bob.ok('login bob pw-b')).userId, 'bob')
  await alice.ok('login alice pw-a')

  // a group made on tracker 1 is joined through tracker 2 and accepted through tracker 1
  await alice.ok('create_group g1')
  await waitFor(async () => (await groupIds(bob)).includes('g1') || undefined, 'g1 listed through tracker 2', PROPAGATION_WAIT_MS)
  await bob.ok('join_group g1')
  await waitFor(async () => {
    const { requests } = await alice.ok('list_requests g1')
    return requests.some((r: { userId: string }) => r.userId === 'bob') || undefined
  }, 'the request of bob seen through tracker 1', PROPAGATION_WAIT_MS)
  await alice.ok('accept_request g1 bob')
  // and the other way round: made on tracker 2, joined on 1, accepted on 2
  await bob.ok('create_group g2')
  await waitFor(async () => (await groupIds(alice)).includes('g2') || undefined, 'g2 listed through tracker 1', PROPAGATION_WAIT_MS)
  await alice.ok('join_group g2')
  await waitFor(async () => (await bob.run('accept_request g2 alice')).ok || undefined, 'bob accepting alice through tracker 2', PROPAGATION_WAIT_MS)

  // a file shared through tracker 1 is listed and downloaded through tracker 2
  const dir = await tmpDir(t, 'peershare-two-trackers-')
  const bytes = content(3 * 1024 * 1024 + 77, 5)
  await writeFile(join(dir, 'shared.bin'), bytes)
  await alice.ok(`upload_file ${join(dir, 'shared.bin')} g1`)
  const listed = await waitFor(async () => {
    const r = await bob.run('list_files g1')
    return r.ok ? r.result.files.find((f: { name: string }) => f.name === 'shared.bin') : undefined
  }, 'shared.bin listed through tracker 2', PROPAGATION_WAIT_MS)
  assert.equal(listed.size, bytes.length)
  assert.deepEqual(listed.sharers, ['alice'])
  const into = await tmpDir(t, 'peershare-bob-')
  await bob.ok(`download_file g1 shared.bin ${into}`)
  const [d] = (await bob.ok('wait')).downloads
  await assertComplete(d, bytes)
  // the finished download made bob a sharer through tracker 2: tracker 1 says so
  await waitFor(async () => {
    const { files } = await alice.ok('list_files g1')
    return files[0]?.sharersOnline === 2 || undefined
  }, 'bob sharing, seen through tracker 1', PROPAGATION_WAIT_MS)
  // neither client ever left its first tracker
  for (const c of [alice, bob]) assert.equal(c.events.some((e) => e.event === 'switched'), false)
  assert.equal(await alice.close(), 0)
  assert.equal(await bob.close(), 0)
})
