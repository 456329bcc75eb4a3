// A tracker killed with SIGKILL and restarted on the same data dir has lost nothing it acknowledged:
// sessions (resume works on a new connection), users, groups, requests, memberships and files.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { ControlResponse, FileListing, GroupListing, Holder } from '../../src/protocol/control.ts'
import { connectRaw, metaOf, startTracker } from '../helpers/tracker.ts'
import type { RawClient } from '../helpers/tracker.ts'

test('after kill -9 and a restart, sessions and all state are still there', async (t) => {
  const tracker = await startTracker(t)
  const open: RawClient[] = []
  t.after(() => Promise.all(open.map((c) => c.close())))
  const connect = async (clientId?: string, peerAddr = '127.0.0.1:7100'): Promise<RawClient> => {
    const c = await connectRaw(tracker.port, clientId === undefined ? {} : { clientId })
    open.push(c)
    await c.call('hello', { version: 1, clientId: c.clientId, peerAddr })
    return c
  }

  const owner = await connect(undefined, '127.0.0.1:7101')
  const member = await connect(undefined, '127.0.0.1:7102')
  const asker = await connect()
  for (const [c, u] of [[owner, 'olga'], [member, 'mike'], [asker, 'anna']] as const) {
    await c.call('create_user', { userId: u, password: `${u}-pw` })
  }
  const { token: ownerToken } = await owner.call<{ token: string }>('login', { userId: 'olga', password: 'olga-pw' })
  const { token: memberToken } = await member.call<{ token: string }>('login', { userId: 'mike', password: 'mike-pw' })
  await asker.call('login', { userId: 'anna', password: 'anna-pw' })
  await owner.call('create_group', { groupId: 'team' })
  await member.call('join_group', { groupId: 'team' })
  await owner.call('accept_request', { groupId: 'team', userId: 'mike' })
  await asker.call('join_group', { groupId: 'team' })
  const meta = metaOf('notes.txt', Buffer.from('survives a crash\n'))
  await owner.call('upload_file', { groupId: 'team', meta })

  assert.equal(await tracker.kill('SIGKILL'), null)
  await Promise.all(open.map((c) => c.closed))
  await tracker.restart()

  // new connections, same client ids: the tokens still work
  const owner2 = await connect(owner.clientId, '127.0.0.1:7101')
  assert.deepEqual(await owner2.call('resume', { token: ownerToken }), { userId: 'olga' })
  const member2 = await connect(member.clientId, '127.0.0.1:7102')
  assert.deepEqual(await member2.call('resume', { token: memberToken }), { userId: 'mike' })
  // ... but not from another client
  const other = await connect()
  const stolen: ControlResponse = await other.request('resume', { token: ownerToken })
  assert.equal(stolen.ok, false)
  assert.equal(!stolen.ok && stolen.error.code, 'NOT_LOGGED_IN')

  // users: passwords still check
  const anna = await connect()
  await anna.call('login', { userId: 'anna', password: 'anna-pw' })
  const wrong = await anna.request('create_user', { userId: 'anna', password: 'x' })
  assert.equal(!wrong.ok && wrong.error.code, 'EXISTS')

  const { groups } = await member2.call<{ groups: GroupListing[] }>('list_groups')
  assert.deepEqual(groups, [{ groupId: 'team', owner: 'olga', members: 2, role: 'member' }])
  const requests = await owner2.call<{ requests: Array<{ userId: string }> }>('list_requests', { groupId: 'team' })
  assert.deepEqual(requests.requests.map((r) => r.userId), ['anna'])
  const { files } = await member2.call<{ files: FileListing[] }>('list_files', { groupId: 'team' })
  assert.equal(files.length, 1)
  assert.equal(files[0]!.name, 'notes.txt')
  assert.deepEqual(files[0]!.sharers, ['olga'])
  assert.equal(files[0]!.sharersOnline, 1, 'olga resumed: her share is online again')
  const got = await member2.call<{ holders: Holder[] }>('get_file', { groupId: 'team', fileName: 'notes.txt' })
  assert.deepEqual(got.holders, [{ userId: 'olga', peerAddr: '127.0.0.1:7101', complete: true, fingerprint: 'SHA256:' + owner.clientId }])
})

test('SIGTERM stops the tracker cleanly (exit code 0) and the data stays', async (t) => {
  const tracker = await startTracker(t)
  const c = await connectRaw(tracker.port)
  t.after(() => c.close())
  await c.hello()
  await c.call('create_user', { userId: 'tess', password: 'pw' })
  assert.equal(await tracker.kill('SIGTERM'), 0)
  await c.closed
  await tracker.restart()
  const d = await connectRaw(tracker.port)
  t.after(() => d.close())
  await d.hello()
  assert.deepEqual(await d.call('login', { userId: 'tess', password: 'pw' }).then((r) => Object.keys(r).sort()), ['token', 'userId'])
})
