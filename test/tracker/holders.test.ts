// Partial holders: the pure registry, and the `hold` op against a real tracker process (members
// only, the file must exist, get_file lists holders with `complete`, released on logout, on
// disconnect, on becoming a full sharer and on leaving the group).

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { ControlResponse, Holder } from '../../src/protocol/control.ts'
import { decodeFileMeta, fileId } from '../../src/protocol/file-meta.ts'
import { HolderRegistry, MAX_HOLDS_PER_CLIENT } from '../../src/tracker/holders.ts'
import { connectRaw, metaOf, startTracker } from '../helpers/tracker.ts'
import type { RawClient } from '../helpers/tracker.ts'
import { waitFor } from '../helpers/wait.ts'

const ID_A = 'a'.repeat(64)
const ID_B = 'b'.repeat(64)
const holder = (clientId: string, userId = 'u'): { clientId: string, userId: string, peerAddr: string } =>
  ({ clientId, userId, peerAddr: '127.0.0.1:7000' })

test('registry: hold is idempotent, release drops one, releaseGroup one group, releaseAll everything', () => {
  const r = new HolderRegistry()
  r.hold('g1', ID_A, holder('c1'))
  r.hold('g1', ID_A, holder('c1'))
  r.hold('g1', ID_A, holder('c2'))
  r.hold('g1', ID_B, holder('c1'))
  r.hold('g2', ID_A, holder('c1'))
  assert.equal(r.size, 4)
  assert.deepEqual(r.holdersOf('g1', ID_A).map((h) => h.clientId), ['c1', 'c2'])
  assert.deepEqual(r.holdersOf('g2', ID_B), [])
  r.release('c2', 'g1', ID_A)
  assert.deepEqual(r.holdersOf('g1', ID_A).map((h) => h.clientId), ['c1'])
  r.releaseGroup('c1', 'g1')
  assert.deepEqual(r.holdersOf('g1', ID_A), [])
  assert.deepEqual(r.holdersOf('g2', ID_A).map((h) => h.clientId), ['c1'])
  r.releaseAll('c1')
  assert.equal(r.size, 0)
  r.release('nobody', 'g1', ID_A) // unknown: nothing happens
})

test('registry: a group id that prefixes another is not released with it', () => {
  const r = new HolderRegistry()
  r.hold('g1', ID_A, holder('c1'))
  r.hold('g10', ID_A, holder('c1'))
  r.releaseGroup('c1', 'g1')
  assert.deepEqual(r.holdersOf('g10', ID_A).map((h) => h.clientId), ['c1'])
})

test('registry: one client holds at most MAX_HOLDS_PER_CLIENT files (BUSY), others are not affected', () => {
  const r = new HolderRegistry()
  for (let i = 0; i < MAX_HOLDS_PER_CLIENT; i++) r.hold('g', i.toString(16).padStart(64, '0'), holder('c1'))
  assert.throws(() => r.hold('g', 'f'.repeat(64), holder('c1')), { code: 'BUSY' })
  r.hold('g', '0'.repeat(64), holder('c1')) // one it already holds: still fine
  r.hold('g', 'f'.repeat(64), holder('c2'))
})

function errorCode (r: ControlResponse): string | undefined {
  return r.ok ? undefined : r.error.code
}

test('hold: partial holders in get_file, members only, released with presence and on sharing', async (t) => {
  const tracker = await startTracker(t)
  const open: RawClient[] = []
  t.after(() => Promise.all(open.map((c) => c.close())))
  const loginAs = async (userId: string, peerAddr: string, create = true): Promise<RawClient> => {
    const c = await connectRaw(tracker.port)
    open.push(c)
    await c.hello(peerAddr)
    if (create) await c.call('create_user', { userId, password: 'pw' })
    await c.call('login', { userId, password: 'pw' })
    return c
  }
  const alice = await loginAs('alice', '127.0.0.1:7001')
  let bob = await loginAs('bob', '127.0.0.1:7002')
  const carol = await loginAs('carol', '127.0.0.1:7003')
  const dave = await loginAs('dave', '127.0.0.1:7004')
  await alice.call('create_group', { groupId: 'g1' })
  for (const c of [bob, carol]) await c.call('join_group', { groupId: 'g1' })
  for (const u of ['bob', 'carol']) await alice.call('accept_request', { groupId: 'g1', userId: u })
  const meta = metaOf('movie.bin', randomBytes(1000))
  const id = fileId(decodeFileMeta(meta))
  await alice.call('upload_file', { groupId: 'g1', meta })
  const holdersSeenBy = async (c: RawClient): Promise<Holder[]> =>
    (await c.call<{ holders: Holder[] }>('get_file', { groupId: 'g1', fileName: 'movie.bin' })).holders

  await t.test('refused for non-members, unknown groups and files not in the group', async () => {
    assert.equal(errorCode(await dave.request('hold', { groupId: 'g1', fileId: id })), 'NOT_MEMBER')
    assert.equal(errorCode(await bob.request('hold', { groupId: 'nope', fileId: id })), 'NOT_FOUND')
    assert.equal(errorCode(await bob.request('hold', { groupId: 'g1', fileId: 'c'.repeat(64) })), 'NOT_FOUND')
    assert.equal(errorCode(await bob.request('hold', { groupId: 'g1', fileId: 'nope' })), 'BAD_REQUEST')
    const fresh = await connectRaw(tracker.port)
    open.push(fresh)
    await fresh.hello()
    assert.equal(errorCode(await fresh.request('hold', { groupId: 'g1', fileId: id })), 'NOT_LOGGED_IN')
  })

  await t.test('a holder is listed as incomplete to others, after the full sharers, not to itself', async () => {
    assert.deepEqual(await bob.call('hold', { groupId: 'g1', fileId: id }), { groupId: 'g1', fileId: id })
    assert.deepEqual(await holdersSeenBy(carol), [
      { userId: 'alice', peerAddr: '127.0.0.1:7001', complete: true, fingerprint: 'SHA256:' + alice.clientId },
      { userId: 'bob', peerAddr: '127.0.0.1:7002', complete: false, fingerprint: 'SHA256:' + bob.clientId },
    ])
    assert.deepEqual(await holdersSeenBy(bob), [{ userId: 'alice', peerAddr: '127.0.0.1:7001', complete: true, fingerprint: 'SHA256:' + alice.clientId }])
    await bob.call('hold', { groupId: 'g1', fileId: id }) // again: still one entry
    assert.equal((await holdersSeenBy(carol)).length, 2)
  })

  await t.test('logout releases the hold', async () => {
    await bob.call('logout')
    assert.deepEqual((await holdersSeenBy(carol)).map((h) => h.userId), ['alice'])
    await bob.call('login', { userId: 'bob', password: 'pw' })
    await bob.call('hold', { groupId: 'g1', fileId: id })
    assert.deepEqual((await holdersSeenBy(carol)).map((h) => h.userId), ['alice', 'bob'])
  })

  await t.test('a disconnect releases the hold', async () => {
    await bob.close()
    await waitFor(async () => (await holdersSeenBy(carol)).length === 1 ? true : undefined, 'bob\'s hold to go')
    bob = await loginAs('bob', '127.0.0.1:7002', false)
  })

  await t.test('becoming a full sharer turns the hold into a complete holder', async () => {
    await bob.call('hold', { groupId: 'g1', fileId: id })
    await bob.call('upload_file', { groupId: 'g1', meta })
    assert.deepEqual(await holdersSeenBy(carol), [
      { userId: 'alice', peerAddr: '127.0.0.1:7001', complete: true, fingerprint: 'SHA256:' + alice.clientId },
      { userId: 'bob', peerAddr: '127.0.0.1:7002', complete: true, fingerprint: 'SHA256:' + bob.clientId },
    ])
    // stopping the share does not bring the old hold back
    await bob.call('stop_share', { groupId: 'g1', fileName: 'movie.bin' })
    assert.deepEqual((await holdersSeenBy(carol)).map((h) => h.userId), ['alice'])
  })

  await t.test('leaving the group releases the hold', async () => {
    await carol.call('hold', { groupId: 'g1', fileId: id })
    assert.deepEqual((await holdersSeenBy(bob)).map((h) => `${h.userId}:${h.complete}`), ['alice:true', 'carol:false'])
    await carol.call('leave_group', { groupId: 'g1' })
    assert.deepEqual((await holdersSeenBy(bob)).map((h) => h.userId), ['alice'])
  })
})
