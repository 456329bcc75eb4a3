// The in-memory replica the stores read from: its indexes, its cascades, and its shared frozen views.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { fileId } from '../../src/protocol/file-meta.ts'
import { MemoryModel } from '../../src/store/memory-model.ts'
import { makeMeta } from './contract.ts'

const alice = { userId: 'alice', clientId: 'ca1' }
const alice2 = { userId: 'alice', clientId: 'ca2' }
const bob = { userId: 'bob', clientId: 'cb1' }

/** g1: alice (owner, 100), bob (200), carol (300); dave asked to join. */
function model (): MemoryModel {
  const m = new MemoryModel()
  m.putGroup('g1', 'alice', 100)
  m.putMember('g1', 'alice', 100)
  m.putMember('g1', 'carol', 300)
  m.putMember('g1', 'bob', 200)
  m.putRequest('g1', 'dave', 250)
  return m
}

function withFile (m: MemoryModel, groupId: string, name: string, ...sharers: Array<{ userId: string, clientId: string }>): string {
  const meta = makeMeta(name)
  const id = fileId(meta)
  m.putFile(groupId, id, meta)
  for (const s of sharers) m.putShare(groupId, id, s, true)
  return id
}

describe('memory model', () => {
  it('lists members earliest joiner first, ties by user id', () => {
    const m = model()
    m.putMember('g1', 'amy', 300)
    assert.deepEqual(m.getGroup('g1')?.members.map((x) => x.userId), ['alice', 'bob', 'amy', 'carol'])
  })

  it('answers membership, ownership and pending requests without the member list', () => {
    const m = model()
    assert.deepEqual(m.groupAccess('g1', 'bob'), { groupId: 'g1', owner: 'alice', member: true, pending: false })
    assert.deepEqual(m.groupAccess('g1', 'dave'), { groupId: 'g1', owner: 'alice', member: false, pending: true })
    assert.deepEqual(m.groupAccess('g1', 'erin'), { groupId: 'g1', owner: 'alice', member: false, pending: false })
    assert.equal(m.groupAccess('nope', 'bob'), undefined)
  })

  it('hands out one frozen view per state and a new one after a change', () => {
    const m = model()
    const id = withFile(m, 'g1', 'a.bin', alice)
    const group = m.getGroup('g1')
    const files = m.listFiles('g1')
    const groups = m.listGroups()
    assert.equal(m.getGroup('g1'), group)
    assert.equal(m.listFiles('g1'), files)
    assert.equal(m.listGroups(), groups)
    assert.equal(m.getFile('g1', 'a.bin'), files[0])
    assert.equal(m.getFileById('g1', id), files[0])
    for (const view of [group, group?.members, group?.members[0], files, files[0], files[0]?.sharers, files[0]?.meta, groups, groups[0]]) {
      assert.ok(Object.isFrozen(view))
    }
    assert.throws(() => { (files as unknown as unknown[]).push(1) }, TypeError)

    m.putShare('g1', id, bob, true)
    assert.notEqual(m.listFiles('g1'), files)
    assert.equal(m.getGroup('g1'), group) // the members did not change
    m.deleteMember('g1', 'carol')
    assert.notEqual(m.getGroup('g1'), group)
    assert.deepEqual(m.listGroups(), [{ groupId: 'g1', owner: 'alice', memberCount: 2 }])
  })

  it('keeps the group list sorted by id with current owners and member counts', () => {
    const m = model()
    m.putGroup('a0', 'zed', 1)
    m.putMember('a0', 'zed', 1)
    assert.deepEqual(m.listGroups(), [
      { groupId: 'a0', owner: 'zed', memberCount: 1 },
      { groupId: 'g1', owner: 'alice', memberCount: 3 },
    ])
    m.setOwner('g1', 'bob')
    m.deleteMember('g1', 'alice')
    assert.deepEqual(m.listGroups()[1], { groupId: 'g1', owner: 'bob', memberCount: 2 })
  })

  it('indexes each user\'s memberships and requests, and keeps the index on accept and delete', () => {
    const m = model()
    m.putGroup('g2', 'bob', 1)
    m.putMember('g2', 'bob', 1)
    m.putRequest('g2', 'dave', 5)
    assert.deepEqual(m.membershipsOf('bob').member.sort(), ['g1', 'g2'])
    assert.deepEqual(m.membershipsOf('dave').pending.sort(), ['g1', 'g2'])
    assert.equal(m.deleteRequest('g1', 'dave'), true)
    assert.equal(m.deleteRequest('g1', 'dave'), false)
    m.putMember('g1', 'dave', 400)
    assert.deepEqual(m.membershipsOf('dave'), { member: ['g1'], pending: ['g2'] })
    m.deleteGroup('g2')
    assert.deepEqual(m.membershipsOf('dave'), { member: ['g1'], pending: [] })
    assert.deepEqual(m.membershipsOf('bob'), { member: ['g1'], pending: [] })
    assert.deepEqual(m.membershipsOf('nobody'), { member: [], pending: [] })
  })

  it('lists requests oldest first', () => {
    const m = model()
    m.putRequest('g1', 'erin', 240)
    m.putRequest('g1', 'abe', 250)
    assert.deepEqual(m.listRequests('g1').map((r) => r.userId), ['erin', 'abe', 'dave'])
    assert.deepEqual(m.listRequests('nope'), [])
  })

  it('deletes a group with everything in it, and the id starts afresh', () => {
    const m = model()
    const id = withFile(m, 'g1', 'a.bin', alice, bob)
    m.deleteGroup('g1')
    assert.equal(m.getGroup('g1'), undefined)
    assert.deepEqual(m.listFiles('g1'), [])
    assert.equal(m.isSharing('g1', id, alice), false)
    m.setSharesActive(alice, false) // the share index forgot the group's files: nothing to touch
    m.putGroup('g1', 'bob', 900)
    assert.deepEqual(m.listFiles('g1'), [])
    assert.deepEqual(m.listRequests('g1'), [])
    assert.deepEqual(m.getGroup('g1')?.members, [])
    assert.deepEqual(m.counts, { users: 0, sessions: 0, groups: 1, files: 0 })
  })

  it('removes a leaver\'s shares from every client in that group only, and the files left unshared', () => {
    const m = model()
    m.putGroup('g2', 'alice', 1)
    const both = withFile(m, 'g1', 'both.bin', alice, bob)
    withFile(m, 'g1', 'alices.bin', alice, alice2)
    withFile(m, 'g2', 'alices.bin', alice)
    m.deleteUserShares('g1', 'alice')
    assert.deepEqual(m.listFiles('g1').map((f) => [f.fileId, f.sharers]), [[both, [{ ...bob, active: true }]]])
    assert.equal(m.listFiles('g2').length, 1)
  })

  it('marks one client\'s shares active or not in every group', () => {
    const m = model()
    m.putGroup('g2', 'alice', 1)
    withFile(m, 'g1', 'a.bin', alice, alice2)
    withFile(m, 'g2', 'b.bin', alice)
    const before = m.getFile('g1', 'a.bin')
    m.setSharesActive(alice, false)
    assert.deepEqual(m.getFile('g1', 'a.bin')?.sharers, [{ ...alice, active: false }, { ...alice2, active: true }])
    assert.deepEqual(m.getFile('g2', 'b.bin')?.sharers, [{ ...alice, active: false }])
    assert.deepEqual(before?.sharers, [{ ...alice, active: true }, { ...alice2, active: true }]) // views are snapshots
    m.setSharesActive(alice, true)
    assert.deepEqual(m.getFile('g2', 'b.bin')?.sharers, [{ ...alice, active: true }])
  })

  it('counts the sharers left when one stops, and forgets a deleted file by name and id', () => {
    const m = model()
    const id = withFile(m, 'g1', 'a.bin', alice, bob)
    assert.equal(m.deleteShare('g1', id, alice), 1)
    assert.equal(m.deleteShare('g1', id, alice), 1)
    assert.equal(m.deleteShare('g1', id, bob), 0)
    m.deleteFile('g1', id)
    assert.equal(m.getFile('g1', 'a.bin'), undefined)
    assert.equal(m.getFileById('g1', id), undefined)
    withFile(m, 'g1', 'a.bin', bob) // the name is free again
  })

  it('keeps its own copy of a file\'s hashes', () => {
    const m = model()
    const meta = makeMeta('a.bin')
    const id = fileId(meta)
    m.putFile('g1', id, meta)
    const kept = m.getFileById('g1', id)?.meta
    assert.deepEqual(kept, meta)
    assert.notEqual(kept?.pieceHashes.buffer, meta.pieceHashes.buffer)
    meta.pieceHashes.fill(0)
    assert.notDeepEqual(kept?.pieceHashes, meta.pieceHashes)
  })

  it('refuses children of a group or file it does not have (a bug in the caller)', () => {
    const m = model()
    assert.throws(() => m.putMember('nope', 'bob', 1), /no group nope/)
    assert.throws(() => m.putShare('g1', 'f'.repeat(64), bob, true), /unknown file/)
    m.deleteMember('nope', 'bob') // deletes of what is not there do nothing
    m.deleteFile('g1', 'f'.repeat(64))
  })

  it('stores users and sessions as frozen copies', () => {
    const m = new MemoryModel()
    const user = { userId: 'alice', passwordHash: 'scrypt$x', createdAt: 1 }
    m.putUser(user)
    user.createdAt = 2
    assert.equal(m.getUser('alice')?.createdAt, 1)
    assert.ok(Object.isFrozen(m.getUser('alice')))
    m.putSession({ tokenHash: 'ab', userId: 'alice', clientId: 'c', createdAt: 1 })
    assert.equal(m.getSession('ab')?.userId, 'alice')
    assert.equal(m.deleteSession('ab'), true)
    assert.equal(m.deleteSession('ab'), false)
    assert.deepEqual(m.counts, { users: 1, sessions: 0, groups: 0, files: 0 })
  })
})
