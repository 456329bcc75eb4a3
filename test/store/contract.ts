// The Store contract: one suite, written only against src/store/store.ts, run by every
// implementation's test file (sqlite.test.ts now, etcd.test.ts later). Each test opens a fresh,
// empty store through `open` and cleans it up when it ends.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import type { TestContext } from 'node:test'
import { fileId, PIECE_BYTES, pieceCount } from '../../src/protocol/file-meta.ts'
import type { FileMeta } from '../../src/protocol/file-meta.ts'
import type { Sharer, Store, StoredFile } from '../../src/store/store.ts'

export interface StoreHarness {
  store: Store
  /** Opens the same underlying state again (after the test closed `store`). */
  reopen?: () => Promise<Store>
  cleanup: () => Promise<void>
}

async function setup (t: TestContext, open: () => Promise<StoreHarness>): Promise<StoreHarness> {
  const h = await open()
  t.after(() => h.cleanup())
  return h
}

/** Deterministic metadata: `seed` changes the contents (so the id) while the name stays. */
export function makeMeta (name: string, size = 3 * PIECE_BYTES + 10, seed = 'a'): FileMeta {
  const sha1 = (s: string): Buffer => createHash('sha1').update(s).digest()
  const hashes: Buffer[] = []
  for (let i = 0; i < pieceCount(size); i++) hashes.push(sha1(`${seed}:${name}:${i}`))
  return { name, size, pieceBytes: PIECE_BYTES, pieceHashes: Buffer.concat(hashes), fileHash: sha1(`${seed}:${name}`) }
}

const user = (userId: string, createdAt = 1_000) => ({ userId, passwordHash: `scrypt$${userId}$hash`, createdAt })
const alice = { userId: 'alice', clientId: 'ca1' }
const alice2 = { userId: 'alice', clientId: 'ca2' }
const bob = { userId: 'bob', clientId: 'cb1' }

/** Creates `groupId` owned by `owner`, then lets each of `joiners` in at its join time. */
async function groupWith (store: Store, groupId: string, owner: string, joiners: Array<[string, number]> = []): Promise<void> {
  await store.createGroup(groupId, owner, 100)
  for (const [userId, at] of joiners) {
    await store.addRequest(groupId, userId, at - 1)
    await store.acceptRequest(groupId, userId, at)
  }
}

async function share (store: Store, groupId: string, meta: FileMeta, sharer: { userId: string, clientId: string }) {
  return await store.addShare(groupId, fileId(meta), meta, sharer, 500)
}

function sharersOf (file: StoredFile | undefined): Sharer[] {
  assert.ok(file !== undefined, 'file should exist')
  return [...file.sharers].sort((a, b) => `${a.userId}/${a.clientId}`.localeCompare(`${b.userId}/${b.clientId}`))
}

async function fileNames (store: Store, groupId: string): Promise<string[]> {
  return (await store.listFiles(groupId)).map((f) => f.meta.name).sort()
}

export function storeContract (name: string, open: () => Promise<StoreHarness>): void {
  describe(`Store contract: ${name}`, () => {
    describe('users', () => {
      it('creates a user and reads it back', async (t) => {
        const { store } = await setup(t, open)
        await store.createUser(user('alice'))
        assert.deepEqual(await store.getUser('alice'), user('alice'))
        assert.equal(await store.getUser('nobody'), undefined)
      })

      it('refuses a taken user id with EXISTS and keeps the first record', async (t) => {
        const { store } = await setup(t, open)
        await store.createUser(user('alice', 1))
        await assert.rejects(store.createUser(user('alice', 2)), { code: 'EXISTS' })
        assert.equal((await store.getUser('alice'))?.createdAt, 1)
      })

      it('lets exactly one of many concurrent createUser calls with one id succeed', async (t) => {
        const { store } = await setup(t, open)
        const results = await Promise.allSettled(Array.from({ length: 25 }, (_, i) => store.createUser(user('race', i))))
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
        for (const r of results) {
          if (r.status === 'rejected') assert.equal((r.reason as { code?: unknown }).code, 'EXISTS')
        }
        assert.ok(await store.getUser('race'))
      })
    })

    describe('sessions', () => {
      it('creates, reads and deletes a session', async (t) => {
        const { store } = await setup(t, open)
        const s = { tokenHash: 'ab'.repeat(32), userId: 'alice', clientId: 'ca1', createdAt: 7 }
        const other = { tokenHash: 'cd'.repeat(32), userId: 'alice', clientId: 'ca2', createdAt: 8 }
        await store.createSession(s)
        await store.createSession(other)
        assert.deepEqual(await store.getSession(s.tokenHash), s)
        assert.equal(await store.deleteSession(s.tokenHash), true)
        assert.equal(await store.deleteSession(s.tokenHash), false)
        assert.equal(await store.getSession(s.tokenHash), undefined)
        assert.deepEqual(await store.getSession(other.tokenHash), other)
      })
    })

    describe('groups', () => {
      it('creates a group whose owner is its only member', async (t) => {
        const { store } = await setup(t, open)
        await store.createGroup('g1', 'alice', 100)
        assert.deepEqual(await store.getGroup('g1'),
          { groupId: 'g1', owner: 'alice', createdAt: 100, members: [{ userId: 'alice', joinedAt: 100 }] })
        assert.equal(await store.getGroup('g2'), undefined)
      })

      it('refuses a taken group id with EXISTS', async (t) => {
        const { store } = await setup(t, open)
        await store.createGroup('g1', 'alice', 100)
        await assert.rejects(store.createGroup('g1', 'bob', 200), { code: 'EXISTS' })
        assert.equal((await store.getGroup('g1'))?.owner, 'alice')
      })

      it('lists every group with its owner and member count', async (t) => {
        const { store } = await setup(t, open)
        assert.deepEqual(await store.listGroups(), [])
        await groupWith(store, 'g1', 'alice', [['bob', 200], ['carol', 300]])
        await groupWith(store, 'g2', 'bob')
        const groups = [...await store.listGroups()].sort((a, b) => a.groupId.localeCompare(b.groupId))
        assert.deepEqual(groups, [
          { groupId: 'g1', owner: 'alice', memberCount: 3 },
          { groupId: 'g2', owner: 'bob', memberCount: 1 },
        ])
      })

      it('reports the owner and one user\'s standing in a group', async (t) => {
        const { store } = await setup(t, open)
        await groupWith(store, 'g1', 'alice', [['bob', 200]])
        await store.addRequest('g1', 'carol', 300)
        assert.deepEqual(await store.groupAccess('g1', 'alice'), { groupId: 'g1', owner: 'alice', member: true, pending: false })
        assert.deepEqual(await store.groupAccess('g1', 'bob'), { groupId: 'g1', owner: 'alice', member: true, pending: false })
        assert.deepEqual(await store.groupAccess('g1', 'carol'), { groupId: 'g1', owner: 'alice', member: false, pending: true })
        assert.deepEqual(await store.groupAccess('g1', 'dave'), { groupId: 'g1', owner: 'alice', member: false, pending: false })
        assert.equal(await store.groupAccess('nope', 'alice'), undefined)
        await store.leaveGroup('g1', 'alice')
        assert.deepEqual(await store.groupAccess('g1', 'alice'), { groupId: 'g1', owner: 'bob', member: false, pending: false })
      })

      it('reports the groups a user belongs to and those it asked to join', async (t) => {
        const { store } = await setup(t, open)
        await groupWith(store, 'g1', 'alice', [['bob', 200]])
        await groupWith(store, 'g2', 'bob')
        await store.createGroup('g3', 'carol', 100)
        await store.addRequest('g3', 'bob', 300)
        const m = await store.membershipsOf('bob')
        assert.deepEqual({ member: m.member.sort(), pending: m.pending }, { member: ['g1', 'g2'], pending: ['g3'] })
        assert.deepEqual(await store.membershipsOf('nobody'), { member: [], pending: [] })
      })
    })

    describe('join requests', () => {
      it('records requests and lists them oldest first', async (t) => {
        const { store } = await setup(t, open)
        await store.createGroup('g1', 'alice', 100)
        await store.addRequest('g1', 'carol', 300)
        await store.addRequest('g1', 'bob', 200)
        assert.deepEqual(await store.listRequests('g1'), [{ userId: 'bob', requestedAt: 200 }, { userId: 'carol', requestedAt: 300 }])
      })

      it('refuses a request to an unknown group, from a member, or made twice', async (t) => {
        const { store } = await setup(t, open)
        await groupWith(store, 'g1', 'alice', [['bob', 200]])
        await assert.rejects(store.addRequest('nope', 'bob', 1), { code: 'NOT_FOUND' })
        await assert.rejects(store.addRequest('g1', 'alice', 1), { code: 'ALREADY_MEMBER' })
        await assert.rejects(store.addRequest('g1', 'bob', 1), { code: 'ALREADY_MEMBER' })
        await store.addRequest('g1', 'carol', 300)
        await assert.rejects(store.addRequest('g1', 'carol', 301), { code: 'EXISTS' })
        assert.deepEqual(await store.listRequests('g1'), [{ userId: 'carol', requestedAt: 300 }])
      })

      it('accepting turns a request into membership at the given time', async (t) => {
        const { store } = await setup(t, open)
        await store.createGroup('g1', 'alice', 100)
        await store.addRequest('g1', 'bob', 150)
        await store.acceptRequest('g1', 'bob', 200)
        assert.deepEqual((await store.getGroup('g1'))?.members,
          [{ userId: 'alice', joinedAt: 100 }, { userId: 'bob', joinedAt: 200 }])
        assert.deepEqual(await store.listRequests('g1'), [])
        assert.deepEqual(await store.membershipsOf('bob'), { member: ['g1'], pending: [] })
      })

      it('rejecting drops the request without membership, and the user may ask again', async (t) => {
        const { store } = await setup(t, open)
        await store.createGroup('g1', 'alice', 100)
        await store.addRequest('g1', 'bob', 150)
        await store.rejectRequest('g1', 'bob')
        assert.deepEqual(await store.listRequests('g1'), [])
        assert.deepEqual((await store.getGroup('g1'))?.members.map((m) => m.userId), ['alice'])
        await store.addRequest('g1', 'bob', 160)
      })

      it('accepting or rejecting a request that does not exist is NOT_FOUND', async (t) => {
        const { store } = await setup(t, open)
        await store.createGroup('g1', 'alice', 100)
        await assert.rejects(store.acceptRequest('g1', 'bob', 200), { code: 'NOT_FOUND' })
        await assert.rejects(store.rejectRequest('g1', 'bob'), { code: 'NOT_FOUND' })
        await assert.rejects(store.acceptRequest('nope', 'bob', 200), { code: 'NOT_FOUND' })
        await assert.rejects(store.rejectRequest('nope', 'bob'), { code: 'NOT_FOUND' })
        assert.deepEqual((await store.getGroup('g1'))?.members.map((m) => m.userId), ['alice'])
      })
    })

    describe('leaving a group', () => {
      it('a member who leaves is gone and the owner stays', async (t) => {
        const { store } = await setup(t, open)
        await groupWith(store, 'g1', 'alice', [['bob', 200]])
        assert.deepEqual(await store.leaveGroup('g1', 'bob'), { newOwner: null, groupDeleted: false })
        const g = await store.getGroup('g1')
        assert.equal(g?.owner, 'alice')
        assert.deepEqual(g?.members.map((m) => m.userId), ['alice'])
        assert.deepEqual(await store.membershipsOf('bob'), { member: [], pending: [] })
      })

      it('hands ownership to the earliest joiner when the owner leaves', async (t) => {
        const { store } = await setup(t, open)
        await groupWith(store, 'g1', 'alice', [['zed', 200], ['amy', 300], ['bob', 400]])
        assert.deepEqual(await store.leaveGroup('g1', 'alice'), { newOwner: 'zed', groupDeleted: false })
        const g = await store.getGroup('g1')
        assert.equal(g?.owner, 'zed')
        assert.deepEqual(g?.members.map((m) => m.userId), ['zed', 'amy', 'bob'])
        assert.deepEqual(await store.leaveGroup('g1', 'zed'), { newOwner: 'amy', groupDeleted: false })
      })

      it('breaks a tie in join time by the smaller user id', async (t) => {
        const { store } = await setup(t, open)
        await groupWith(store, 'g1', 'alice', [['zed', 200], ['amy', 200]])
        assert.deepEqual(await store.leaveGroup('g1', 'alice'), { newOwner: 'amy', groupDeleted: false })
      })

      it('deletes a group left empty, with its files and requests', async (t) => {
        const { store } = await setup(t, open)
        await store.createGroup('g1', 'alice', 100)
        await share(store, 'g1', makeMeta('a.bin'), alice)
        await store.addRequest('g1', 'bob', 150)
        assert.deepEqual(await store.leaveGroup('g1', 'alice'), { newOwner: null, groupDeleted: true })
        assert.equal(await store.getGroup('g1'), undefined)
        assert.deepEqual(await store.listGroups(), [])
        assert.deepEqual(await store.listFiles('g1'), [])
        assert.equal(await store.getFile('g1', 'a.bin'), undefined)
        assert.deepEqual(await store.listRequests('g1'), [])
        assert.deepEqual(await store.membershipsOf('bob'), { member: [], pending: [] })
        // the id is free again, and nothing of the old group comes back with it
        await store.createGroup('g1', 'bob', 900)
        assert.deepEqual(await store.listFiles('g1'), [])
        assert.deepEqual(await store.listRequests('g1'), [])
      })

      it('refuses to leave an unknown group (NOT_FOUND) or one the user is not in (NOT_MEMBER)', async (t) => {
        const { store } = await setup(t, open)
        await store.createGroup('g1', 'alice', 100)
        await store.addRequest('g1', 'bob', 150)
        await assert.rejects(store.leaveGroup('nope', 'alice'), { code: 'NOT_FOUND' })
        await assert.rejects(store.leaveGroup('g1', 'carol'), { code: 'NOT_MEMBER' })
        await assert.rejects(store.leaveGroup('g1', 'bob'), { code: 'NOT_MEMBER' })
        assert.equal((await store.getGroup('g1'))?.owner, 'alice')
      })

      it('stops the leaver sharing into that group only', async (t) => {
        const { store } = await setup(t, open)
        await groupWith(store, 'g1', 'alice', [['bob', 200]])
        await groupWith(store, 'g2', 'bob')
        const both = makeMeta('both.bin')
        await share(store, 'g1', both, alice)
        await share(store, 'g1', both, bob)
        await share(store, 'g1', makeMeta('bobs.bin'), bob)
        await share(store, 'g2', makeMeta('bobs.bin'), bob)
        await store.leaveGroup('g1', 'bob')
        assert.deepEqual(await fileNames(store, 'g1'), ['both.bin'])
        assert.deepEqual(sharersOf(await store.getFile('g1', 'both.bin')), [{ ...alice, active: true }])
        assert.deepEqual(sharersOf(await store.getFile('g2', 'bobs.bin')), [{ ...bob, active: true }])
      })
    })

    describe('shares', () => {
      it('adds a file once and then more sharers of it, from two clients and two users', async (t) => {
        const { store } = await setup(t, open)
        await groupWith(store, 'g1', 'alice', [['bob', 200]])
        const meta = makeMeta('movie.mkv')
        assert.deepEqual(await share(store, 'g1', meta, alice), { newFile: true })
        assert.deepEqual(await share(store, 'g1', meta, alice2), { newFile: false })
        assert.deepEqual(await share(store, 'g1', meta, bob), { newFile: false })
        const file = await store.getFile('g1', 'movie.mkv')
        assert.equal(file?.fileId, fileId(meta))
        assert.deepEqual(file?.meta, meta)
        assert.deepEqual(sharersOf(file), [{ ...alice, active: true }, { ...alice2, active: true }, { ...bob, active: true }])
        const listed = await store.listFiles('g1')
        assert.equal(listed.length, 1)
        assert.deepEqual(listed[0]?.meta, meta)
        assert.deepEqual(sharersOf(listed[0]), sharersOf(file))
      })

      it('sharing again from the same client adds no second sharer and reactivates it', async (t) => {
        const { store } = await setup(t, open)
        await store.createGroup('g1', 'alice', 100)
        const meta = makeMeta('a.bin')
        await share(store, 'g1', meta, alice)
        await store.setSharesActive(alice, false)
        assert.deepEqual(await share(store, 'g1', meta, alice), { newFile: false })
        assert.deepEqual(sharersOf(await store.getFile('g1', 'a.bin')), [{ ...alice, active: true }])
      })

      it('refuses a different file under a name already shared in the group with EXISTS', async (t) => {
        const { store } = await setup(t, open)
        await groupWith(store, 'g1', 'alice', [['bob', 200]])
        await store.createGroup('g2', 'bob', 100)
        const first = makeMeta('a.bin', 100, 'one')
        const second = makeMeta('a.bin', 100, 'two')
        await share(store, 'g1', first, alice)
        await assert.rejects(share(store, 'g1', second, bob), { code: 'EXISTS' })
        assert.equal((await store.getFile('g1', 'a.bin'))?.fileId, fileId(first))
        assert.deepEqual(await share(store, 'g2', second, bob), { newFile: true }) // names are per group
      })

      it('refuses to share into an unknown group (NOT_FOUND) or as a non-member (NOT_MEMBER)', async (t) => {
        const { store } = await setup(t, open)
        await store.createGroup('g1', 'alice', 100)
        await assert.rejects(share(store, 'nope', makeMeta('a.bin'), alice), { code: 'NOT_FOUND' })
        await assert.rejects(share(store, 'g1', makeMeta('a.bin'), bob), { code: 'NOT_MEMBER' })
        assert.deepEqual(await store.listFiles('g1'), [])
      })

      it('keeps the metadata of an empty file and of a many-piece file intact', async (t) => {
        const { store } = await setup(t, open)
        await store.createGroup('g1', 'alice', 100)
        const empty = makeMeta('empty', 0)
        const big = makeMeta('big.iso', 4096 * PIECE_BYTES - 1)
        await share(store, 'g1', empty, alice)
        await share(store, 'g1', big, alice)
        assert.deepEqual((await store.getFile('g1', 'empty'))?.meta, empty)
        assert.deepEqual((await store.getFile('g1', 'big.iso'))?.meta, big)
        const listed = [...await store.listFiles('g1')].sort((a, b) => a.meta.name.localeCompare(b.meta.name))
        assert.deepEqual(listed.map((f) => [f.fileId, f.meta]), [[fileId(big), big], [fileId(empty), empty]])
      })

      it('removing a share keeps the file while others share it and drops it with its last sharer', async (t) => {
        const { store } = await setup(t, open)
        await groupWith(store, 'g1', 'alice', [['bob', 200]])
        const meta = makeMeta('a.bin')
        await share(store, 'g1', meta, alice)
        await share(store, 'g1', meta, bob)
        assert.deepEqual(await store.removeShare('g1', 'a.bin', alice), { fileRemoved: false })
        assert.deepEqual(sharersOf(await store.getFile('g1', 'a.bin')), [{ ...bob, active: true }])
        assert.deepEqual(await store.removeShare('g1', 'a.bin', bob), { fileRemoved: true })
        assert.equal(await store.getFile('g1', 'a.bin'), undefined)
        assert.deepEqual(await store.listFiles('g1'), [])
        // the name is free again, for any file
        assert.deepEqual(await share(store, 'g1', makeMeta('a.bin', 10, 'other'), bob), { newFile: true })
      })

      it('removing a share that does not exist is NOT_FOUND', async (t) => {
        const { store } = await setup(t, open)
        await groupWith(store, 'g1', 'alice', [['bob', 200]])
        await share(store, 'g1', makeMeta('a.bin'), alice)
        await assert.rejects(store.removeShare('g1', 'missing.bin', alice), { code: 'NOT_FOUND' })
        await assert.rejects(store.removeShare('g1', 'a.bin', bob), { code: 'NOT_FOUND' })
        await assert.rejects(store.removeShare('g1', 'a.bin', alice2), { code: 'NOT_FOUND' })
        await assert.rejects(store.removeShare('nope', 'a.bin', alice), { code: 'NOT_FOUND' })
        assert.deepEqual(sharersOf(await store.getFile('g1', 'a.bin')), [{ ...alice, active: true }])
      })

      it('setSharesActive marks only that client\'s shares, in every group', async (t) => {
        const { store } = await setup(t, open)
        await store.createGroup('g1', 'alice', 100)
        await store.createGroup('g2', 'alice', 100)
        await share(store, 'g1', makeMeta('a.bin'), alice)
        await share(store, 'g1', makeMeta('a.bin'), alice2)
        await share(store, 'g2', makeMeta('b.bin'), alice)
        await store.setSharesActive(alice, false)
        assert.deepEqual(sharersOf(await store.getFile('g1', 'a.bin')), [{ ...alice, active: false }, { ...alice2, active: true }])
        assert.deepEqual(sharersOf(await store.getFile('g2', 'b.bin')), [{ ...alice, active: false }])
        assert.deepEqual(sharersOf((await store.listFiles('g2'))[0]), [{ ...alice, active: false }])
        await store.setSharesActive(alice, true)
        assert.deepEqual(sharersOf(await store.getFile('g2', 'b.bin')), [{ ...alice, active: true }])
      })

      it('reactivateShares restores the listed shares that still exist and reports the others', async (t) => {
        const { store } = await setup(t, open)
        await store.createGroup('g1', 'alice', 100)
        const [a, b, c] = [makeMeta('a.bin'), makeMeta('b.bin'), makeMeta('c.bin')]
        for (const m of [a, b, c]) await share(store, 'g1', m, alice)
        await store.removeShare('g1', 'b.bin', alice)
        await store.setSharesActive(alice, false)
        const result = await store.reactivateShares(alice, [
          { groupId: 'g1', fileId: fileId(a) },
          { groupId: 'g1', fileId: fileId(b) },
          { groupId: 'gone', fileId: fileId(a) },
        ])
        assert.equal(result.restored, 1)
        assert.deepEqual(result.gone, [{ groupId: 'g1', fileId: fileId(b) }, { groupId: 'gone', fileId: fileId(a) }])
        assert.deepEqual(sharersOf(await store.getFile('g1', 'a.bin')), [{ ...alice, active: true }])
        assert.deepEqual(sharersOf(await store.getFile('g1', 'c.bin')), [{ ...alice, active: false }]) // not listed
        assert.deepEqual(await store.reactivateShares(alice2, [{ groupId: 'g1', fileId: fileId(c) }]),
          { restored: 0, gone: [{ groupId: 'g1', fileId: fileId(c) }] })
      })
    })

    describe('presence', () => {
      it('reports connected clients, replaces on up, forgets on down', async (t) => {
        const { store } = await setup(t, open)
        await store.presenceUp({ clientId: 'c1', userId: 'alice', peerAddr: '127.0.0.1:4000' })
        await store.presenceUp({ clientId: 'c2', userId: 'bob', peerAddr: '127.0.0.1:5000' })
        await store.presenceUp({ clientId: 'c1', userId: 'alice', peerAddr: '127.0.0.1:4001' })
        const seen = await store.getPresence(['c1', 'c2', 'c3'])
        assert.deepEqual([...seen.keys()].sort(), ['c1', 'c2'])
        assert.deepEqual(seen.get('c1'), { clientId: 'c1', userId: 'alice', peerAddr: '127.0.0.1:4001' })
        await store.presenceDown('c1')
        await store.presenceDown('c9') // unknown: nothing to do
        assert.deepEqual([...(await store.getPresence(['c1', 'c2'])).keys()], ['c2'])
        assert.equal((await store.getPresence([])).size, 0)
      })

      it('has a version that moves with every change of presence', async (t) => {
        const { store } = await setup(t, open)
        const seen = [store.presenceVersion()]
        const moved = (what: string): void => {
          const v = store.presenceVersion()
          assert.ok(!seen.includes(v), `${what}: the version ${v} was seen before`)
          seen.push(v)
        }
        await store.presenceUp({ clientId: 'c1', userId: 'alice', peerAddr: '127.0.0.1:4000' })
        moved('a client came')
        await store.presenceUp({ clientId: 'c1', userId: 'bob', peerAddr: '127.0.0.1:4000' })
        moved('the same client, as another user')
        await store.getPresence(['c1'])
        await store.listGroups()
        assert.equal(store.presenceVersion(), seen.at(-1), 'reads do not move it')
        await store.presenceDown('c1')
        moved('the client left')
      })
    })

    describe('reads', () => {
      it('settle without waiting for I/O (callers give them no deadline)', async (t) => {
        const { store } = await setup(t, open)
        await store.createUser(user('alice'))
        await groupWith(store, 'g1', 'alice')
        await store.addRequest('g1', 'bob', 200)
        await share(store, 'g1', makeMeta('a.bin'), alice)
        await store.presenceUp({ clientId: 'ca1', userId: 'alice', peerAddr: '127.0.0.1:4000' })
        const reads: Array<[string, () => Promise<unknown>]> = [
          ['getUser', () => store.getUser('alice')],
          ['getSession', () => store.getSession('0'.repeat(64))],
          ['getGroup', () => store.getGroup('g1')],
          ['groupAccess', () => store.groupAccess('g1', 'alice')],
          ['listGroups', () => store.listGroups()],
          ['membershipsOf', () => store.membershipsOf('bob')],
          ['listRequests', () => store.listRequests('g1')],
          ['listFiles', () => store.listFiles('g1')],
          ['getFile', () => store.getFile('g1', 'a.bin')],
          ['getPresence', () => store.getPresence(['ca1'])],
        ]
        for (const [name, read] of reads) {
          // an I/O callback (a socket's reply, a file read) runs after setImmediate's turn at the
          // earliest; a read that settles first never waited for one
          const io = new Promise<string>((resolve) => setImmediate(() => resolve('waited')))
          const settled = await Promise.race([read().then(() => 'settled', () => 'settled'), io])
          assert.equal(settled, 'settled', `${name} waited past an event-loop turn`)
        }
      })
    })

    describe('lifecycle', () => {
      it('rejects a call whose signal is already aborted, without writing', async (t) => {
        const { store } = await setup(t, open)
        const ac = new AbortController()
        ac.abort()
        await assert.rejects(store.createUser(user('alice'), { signal: ac.signal }))
        await assert.rejects(store.createGroup('g1', 'alice', 1, { signal: ac.signal }))
        assert.equal(await store.getUser('alice'), undefined)
        assert.equal(await store.getGroup('g1'), undefined)
      })

      it('close is idempotent', async (t) => {
        const { store } = await setup(t, open)
        await Promise.all([store.close(), store.close()])
        await store.close()
      })

      it('keeps every acknowledged write across close and reopen', async (t) => {
        const h = await setup(t, open)
        if (h.reopen === undefined) {
          t.diagnostic(`${name} cannot be reopened: durability across reopen not checked here`)
          return
        }
        const { store } = h
        const session = { tokenHash: 'ef'.repeat(32), userId: 'alice', clientId: 'ca1', createdAt: 5 }
        await store.createUser(user('alice'))
        await store.createSession(session)
        await store.createSession({ ...session, tokenHash: '01'.repeat(32) })
        await store.deleteSession('01'.repeat(32))
        await groupWith(store, 'g1', 'alice', [['bob', 200], ['carol', 300]])
        await store.addRequest('g1', 'dave', 400)
        await store.createGroup('g2', 'erin', 100)
        const a = makeMeta('a.bin')
        const b = makeMeta('b.bin', 0)
        await share(store, 'g1', a, alice)
        await share(store, 'g1', a, bob)
        await share(store, 'g1', b, bob)
        await store.leaveGroup('g1', 'alice') // bob becomes owner, alice's share goes
        await store.setSharesActive(bob, false)
        await store.leaveGroup('g2', 'erin') // deleted
        await store.close()

        const again = await h.reopen()
        assert.deepEqual(await again.getUser('alice'), user('alice'))
        assert.deepEqual(await again.getSession(session.tokenHash), session)
        assert.equal(await again.getSession('01'.repeat(32)), undefined)
        assert.deepEqual(await again.getGroup('g1'), {
          groupId: 'g1',
          owner: 'bob',
          createdAt: 100,
          members: [{ userId: 'bob', joinedAt: 200 }, { userId: 'carol', joinedAt: 300 }],
        })
        assert.equal(await again.getGroup('g2'), undefined)
        assert.deepEqual(await again.listGroups(), [{ groupId: 'g1', owner: 'bob', memberCount: 2 }])
        assert.deepEqual(await again.listRequests('g1'), [{ userId: 'dave', requestedAt: 400 }])
        assert.deepEqual(await again.membershipsOf('dave'), { member: [], pending: ['g1'] })
        const files = [...await again.listFiles('g1')].sort((x, y) => x.meta.name.localeCompare(y.meta.name))
        assert.deepEqual(files.map((f) => [f.fileId, f.meta, sharersOf(f)]), [
          [fileId(a), a, [{ ...bob, active: false }]],
          [fileId(b), b, [{ ...bob, active: false }]],
        ])
      })
    })
  })
}
