// Every control command against a real tracker process: happy paths, error paths with their codes
// and messages, and presence (who is online, who holds a file). The subtests share one tracker and
// build on each other's state, in order.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { ControlResponse, FileListing, GroupListing, Holder } from '../../src/protocol/control.ts'
import { encodeFrame } from '../../src/protocol/frame.ts'
import { decodeFileMeta, fileId } from '../../src/protocol/file-meta.ts'
import type { FileMetaWire } from '../../src/protocol/file-meta.ts'
import { connectRaw, metaOf, startTracker } from '../helpers/tracker.ts'
import type { RawClient } from '../helpers/tracker.ts'
import { waitFor } from '../helpers/wait.ts'

function errorOf (r: ControlResponse): { code: string, message: string } {
  assert.equal(r.ok, false, `expected an error, got ${JSON.stringify(r)}`)
  return (r as Extract<ControlResponse, { ok: false }>).error
}

async function refused (p: Promise<ControlResponse>, code: string, message?: string | RegExp): Promise<void> {
  const err = errorOf(await p)
  assert.equal(err.code, code, err.message)
  if (typeof message === 'string') assert.equal(err.message, message)
  else if (message !== undefined) assert.match(err.message, message)
}

const idOf = (meta: FileMetaWire): string => fileId(decodeFileMeta(meta))

test('control commands', async (t) => {
  const tracker = await startTracker(t)
  const open: RawClient[] = []
  t.after(() => Promise.all(open.map((c) => c.close())))
  const connect = async (clientId?: string, peerAddr?: string): Promise<RawClient> => {
    const c = await connectRaw(tracker.port, clientId === undefined ? {} : { clientId })
    open.push(c)
    assert.equal((await c.hello(peerAddr)).ok, true)
    return c
  }
  const loginAs = async (userId: string, peerAddr: string): Promise<RawClient & { token: string }> => {
    const c = await connect(undefined, peerAddr)
    const { token } = await c.call<{ token: string }>('login', { userId, password: `${userId}-pw` })
    return Object.assign(c, { token })
  }

  const a = await connect() // accounts are made from a client that is not logged in
  for (const u of ['alice', 'bob', 'carol']) {
    assert.deepEqual(await a.call('create_user', { userId: u, password: `${u}-pw` }), { userId: u })
  }

  await t.test('create_user refuses a taken user id', async () => {
    await refused(a.request('create_user', { userId: 'alice', password: 'other' }), 'EXISTS',
      'user alice already exists: choose another user id, or login')
  })

  await t.test('login: one message for unknown user and wrong password; a token on success', async () => {
    await refused(a.request('login', { userId: 'nobody', password: 'x' }), 'BAD_PASSWORD', 'wrong user id or password')
    await refused(a.request('login', { userId: 'alice', password: 'wrong' }), 'BAD_PASSWORD', 'wrong user id or password')
    const r = await a.call<{ userId: string, token: string }>('login', { userId: 'alice', password: 'alice-pw' })
    assert.equal(r.userId, 'alice')
    assert.match(r.token, /^[A-Za-z0-9_-]{43}$/)
    await refused(a.request('login', { userId: 'alice', password: 'alice-pw' }), 'ALREADY_LOGGED_IN', 'already logged in as alice: logout first')
    await refused(a.request('login', { userId: 'bob', password: 'bob-pw' }), 'ALREADY_LOGGED_IN', 'already logged in as alice: logout first')
    assert.deepEqual(await a.call('logout'), { userId: 'alice' })
  })

  let alice = await loginAs('alice', '127.0.0.1:7001')
  const bob = await loginAs('bob', '127.0.0.1:7002')
  const carol = await loginAs('carol', '127.0.0.1:7003')

  await t.test('create_group: the creator owns it; a taken id is EXISTS', async () => {
    assert.deepEqual(await alice.call('create_group', { groupId: 'g1' }), { groupId: 'g1' })
    await refused(bob.request('create_group', { groupId: 'g1' }), 'EXISTS', /group g1 already exists/)
    const { groups } = await alice.call<{ groups: GroupListing[] }>('list_groups')
    assert.deepEqual(groups, [{ groupId: 'g1', owner: 'alice', members: 1, role: 'owner' }])
  })

  await t.test('join_group: a request; twice is EXISTS; members and unknown groups refused', async () => {
    assert.deepEqual(await bob.call('join_group', { groupId: 'g1' }), { groupId: 'g1', status: 'requested' })
    await refused(bob.request('join_group', { groupId: 'g1' }), 'EXISTS', /already asked to join g1/)
    await refused(alice.request('join_group', { groupId: 'g1' }), 'ALREADY_MEMBER', 'you are already a member of g1')
    await refused(bob.request('join_group', { groupId: 'nope' }), 'NOT_FOUND', 'group nope does not exist: list_groups shows the groups')
    assert.deepEqual(await carol.call('join_group', { groupId: 'g1' }), { groupId: 'g1', status: 'requested' })
  })

  await t.test('list_groups shows each caller its role', async () => {
    const role = async (c: RawClient): Promise<string | undefined> =>
      (await c.call<{ groups: GroupListing[] }>('list_groups')).groups.find((g) => g.groupId === 'g1')?.role
    assert.equal(await role(alice), 'owner')
    assert.equal(await role(bob), 'pending')
    const dave = await connect()
    await dave.call('create_user', { userId: 'dave', password: 'dave-pw' })
    await dave.call('login', { userId: 'dave', password: 'dave-pw' })
    assert.equal(await role(dave), 'none')
  })

  await t.test('requests: only the owner lists, accepts and rejects them', async () => {
    await refused(bob.request('list_requests', { groupId: 'g1' }), 'NOT_OWNER', /only the owner of g1 \(alice\)/)
    await refused(bob.request('accept_request', { groupId: 'g1', userId: 'bob' }), 'NOT_OWNER')
    await refused(carol.request('reject_request', { groupId: 'g1', userId: 'bob' }), 'NOT_OWNER')
    await refused(alice.request('list_requests', { groupId: 'nope' }), 'NOT_FOUND')
    const { requests } = await alice.call<{ requests: Array<{ userId: string, requestedAt: number }> }>('list_requests', { groupId: 'g1' })
    assert.deepEqual(requests.map((r) => r.userId).sort(), ['bob', 'carol'])
    assert.ok(requests.every((r) => typeof r.requestedAt === 'number'))
    assert.deepEqual(await alice.call('reject_request', { groupId: 'g1', userId: 'carol' }), { groupId: 'g1', userId: 'carol' })
    assert.deepEqual(await alice.call('accept_request', { groupId: 'g1', userId: 'bob' }), { groupId: 'g1', userId: 'bob' })
    await refused(alice.request('accept_request', { groupId: 'g1', userId: 'bob' }), 'NOT_FOUND', /bob has not asked to join g1/)
    await refused(alice.request('reject_request', { groupId: 'g1', userId: 'carol' }), 'NOT_FOUND', /carol has not asked to join g1/)
    assert.deepEqual((await alice.call<{ requests: unknown[] }>('list_requests', { groupId: 'g1' })).requests, [])
    const g1 = (await bob.call<{ groups: GroupListing[] }>('list_groups')).groups.find((g) => g.groupId === 'g1')
    assert.deepEqual(g1, { groupId: 'g1', owner: 'alice', members: 2, role: 'member' })
  })

  const fileA = metaOf('a.txt', Buffer.from('hello, peers\n'))
  const bigger = metaOf('big.bin', randomBytes(600 * 1024)) // two pieces

  await t.test('members only: list_files, upload_file, get_file and stop_share refuse others', async () => {
    await refused(carol.request('list_files', { groupId: 'g1' }), 'NOT_MEMBER', /you are not a member of g1/)
    await refused(carol.request('upload_file', { groupId: 'g1', meta: fileA }), 'NOT_MEMBER')
    await refused(carol.request('get_file', { groupId: 'g1', fileName: 'a.txt' }), 'NOT_MEMBER')
    await refused(carol.request('stop_share', { groupId: 'g1', fileName: 'a.txt' }), 'NOT_MEMBER')
    await refused(carol.request('list_files', { groupId: 'nope' }), 'NOT_FOUND')
    assert.deepEqual(await alice.call('list_files', { groupId: 'g1' }), { groupId: 'g1', files: [] })
  })

  await t.test('upload_file shares metadata; again is alreadyShared; another file of that name is EXISTS', async () => {
    const r = await alice.call('upload_file', { groupId: 'g1', meta: fileA })
    assert.deepEqual(r, { groupId: 'g1', name: 'a.txt', fileId: idOf(fileA), size: 13, pieces: 1, alreadyShared: false })
    assert.equal((await alice.call<{ alreadyShared: boolean }>('upload_file', { groupId: 'g1', meta: fileA })).alreadyShared, true)
    await refused(bob.request('upload_file', { groupId: 'g1', meta: metaOf('a.txt', Buffer.from('other')) }), 'EXISTS', /different file named a\.txt/)
    assert.equal((await bob.call<{ alreadyShared: boolean }>('upload_file', { groupId: 'g1', meta: fileA })).alreadyShared, false)
    const big = await bob.call<{ pieces: number, size: number }>('upload_file', { groupId: 'g1', meta: bigger })
    assert.equal(big.pieces, 2)
    assert.equal(big.size, 600 * 1024)
  })

  await t.test('list_files: name, id, size, sorted distinct sharers, sharers online', async () => {
    const { files } = await alice.call<{ files: FileListing[] }>('list_files', { groupId: 'g1' })
    assert.deepEqual(files, [
      { name: 'a.txt', fileId: idOf(fileA), size: 13, sharers: ['alice', 'bob'], sharersOnline: 2 },
      { name: 'big.bin', fileId: idOf(bigger), size: 600 * 1024, sharers: ['bob'], sharersOnline: 1 },
    ])
  })

  await t.test('get_file: the metadata and the other online holders with their peer address', async () => {
    const r = await bob.call<{ fileId: string, meta: FileMetaWire, holders: Holder[] }>('get_file', { groupId: 'g1', fileName: 'a.txt' })
    assert.equal(r.fileId, idOf(fileA))
    assert.deepEqual(r.meta, fileA)
    assert.deepEqual(r.holders, [{ userId: 'alice', peerAddr: '127.0.0.1:7001', complete: true, fingerprint: 'SHA256:' + alice.clientId }]) // not bob's own client
    await refused(bob.request('get_file', { groupId: 'g1', fileName: 'missing.txt' }), 'NOT_FOUND', /no file named missing\.txt in g1/)
  })

  await t.test('presence follows the connection that logged in last, not an older one closing', async () => {
    // alice's client reconnects (same client id) and resumes; then its old connection closes
    const again = await connect(alice.clientId, '127.0.0.1:7011')
    assert.deepEqual(await again.call('resume', { token: alice.token }), { userId: 'alice' })
    // the tracker itself closes the old connection (a malformed frame), so it has seen the close when we ask
    alice.sendRaw(encodeFrame(Buffer.from('not json')))
    await alice.closed
    const r = await bob.call<{ holders: Holder[] }>('get_file', { groupId: 'g1', fileName: 'a.txt' })
    assert.deepEqual(r.holders, [{ userId: 'alice', peerAddr: '127.0.0.1:7011', complete: true, fingerprint: 'SHA256:' + alice.clientId }])
    // the newest connection closing takes alice offline
    await again.close()
    await waitFor(async () => {
      const r = await bob.call<{ holders: Holder[] }>('get_file', { groupId: 'g1', fileName: 'a.txt' })
      return r.holders.length === 0 ? true : undefined
    }, 'alice to go offline')
    const { files } = await bob.call<{ files: FileListing[] }>('list_files', { groupId: 'g1' })
    assert.equal(files.find((f) => f.name === 'a.txt')?.sharersOnline, 1)
    const back = await connect(alice.clientId, '127.0.0.1:7001')
    await back.call('resume', { token: alice.token })
    alice = Object.assign(back, { token: alice.token })
  })

  await t.test('resume refuses a token from another client id, and a garbage token', async () => {
    const thief = await connect()
    await refused(thief.request('resume', { token: bob.token }), 'NOT_LOGGED_IN', 'session expired or revoked: login again')
    await refused(thief.request('resume', { token: 'A'.repeat(43) }), 'NOT_LOGGED_IN', 'session expired or revoked: login again')
    await refused(thief.request('list_groups'), 'NOT_LOGGED_IN')
    await refused(alice.request('resume', { token: alice.token }), 'ALREADY_LOGGED_IN')
  })

  await t.test('stop_share: only what the caller shares; the last sharer removes the file', async () => {
    await refused(carol.request('stop_share', { groupId: 'g1', fileName: 'a.txt' }), 'NOT_MEMBER')
    await refused(alice.request('stop_share', { groupId: 'g1', fileName: 'big.bin' }), 'NOT_FOUND', 'you do not share big.bin in g1')
    assert.deepEqual(await bob.call('stop_share', { groupId: 'g1', fileName: 'a.txt' }), { groupId: 'g1', name: 'a.txt', fileRemoved: false })
    assert.deepEqual(await alice.call('stop_share', { groupId: 'g1', fileName: 'a.txt' }), { groupId: 'g1', name: 'a.txt', fileRemoved: true })
    const { files } = await bob.call<{ files: FileListing[] }>('list_files', { groupId: 'g1' })
    assert.deepEqual(files.map((f) => f.name), ['big.bin'])
  })

  await t.test('logout stops sharing and revokes the token; login plus reshare restores the shares', async () => {
    await alice.call('upload_file', { groupId: 'g1', meta: fileA })
    const token = alice.token
    assert.deepEqual(await alice.call('logout'), { userId: 'alice' })
    await refused(alice.request('logout'), 'NOT_LOGGED_IN')
    await refused(alice.request('resume', { token }), 'NOT_LOGGED_IN', 'session expired or revoked: login again')
    const offline = await bob.call<{ files: FileListing[] }>('list_files', { groupId: 'g1' })
    assert.equal(offline.files.find((f) => f.name === 'a.txt')?.sharersOnline, 0)
    assert.deepEqual(offline.files.find((f) => f.name === 'a.txt')?.sharers, ['alice'])

    await alice.call('login', { userId: 'alice', password: 'alice-pw' })
    // login alone does not reactivate: the client re-verifies its files first
    assert.deepEqual((await bob.call<{ holders: Holder[] }>('get_file', { groupId: 'g1', fileName: 'a.txt' })).holders, [])
    const ghost = { groupId: 'g1', fileId: 'f'.repeat(64) }
    const r = await alice.call('reshare', { shares: [{ groupId: 'g1', fileId: idOf(fileA) }, ghost] })
    assert.deepEqual(r, { restored: 1, gone: [ghost] })
    assert.deepEqual((await bob.call<{ holders: Holder[] }>('get_file', { groupId: 'g1', fileName: 'a.txt' })).holders,
      [{ userId: 'alice', peerAddr: '127.0.0.1:7001', complete: true, fingerprint: 'SHA256:' + alice.clientId }])
  })

  await t.test('leave_group: members only; the earliest joiner inherits; an empty group is deleted', async () => {
    await refused(carol.request('leave_group', { groupId: 'g1' }), 'NOT_MEMBER')
    await refused(carol.request('leave_group', { groupId: 'nope' }), 'NOT_FOUND')
    // alice owns g1 with bob; she leaves: bob owns it, and her share of a.txt goes with her
    assert.deepEqual(await alice.call('leave_group', { groupId: 'g1' }), { groupId: 'g1', newOwner: 'bob', groupDeleted: false })
    const { groups } = await bob.call<{ groups: GroupListing[] }>('list_groups')
    assert.deepEqual(groups.find((g) => g.groupId === 'g1'), { groupId: 'g1', owner: 'bob', members: 1, role: 'owner' })
    const { files } = await bob.call<{ files: FileListing[] }>('list_files', { groupId: 'g1' })
    assert.deepEqual(files.map((f) => f.name), ['big.bin'])
    await refused(alice.request('list_files', { groupId: 'g1' }), 'NOT_MEMBER')
    // a member who is not the owner leaves: ownership stays
    await carol.call('create_group', { groupId: 'g2' })
    await bob.call('join_group', { groupId: 'g2' })
    await carol.call('accept_request', { groupId: 'g2', userId: 'bob' })
    assert.deepEqual(await bob.call('leave_group', { groupId: 'g2' }), { groupId: 'g2', newOwner: null, groupDeleted: false })
    // the last member leaves: the group is gone
    assert.deepEqual(await carol.call('leave_group', { groupId: 'g2' }), { groupId: 'g2', newOwner: null, groupDeleted: true })
    await refused(carol.request('join_group', { groupId: 'g2' }), 'NOT_FOUND')
  })

  await t.test('ping answers logged in or not', async () => {
    assert.deepEqual(await bob.call('ping'), {})
    assert.deepEqual(await (await connect()).call('ping'), {})
  })
})
