// The pure group rules, table by table.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { PeershareError } from '../../src/common/errors.ts'
import type { ErrorCode } from '../../src/common/errors.ts'
import {
  decideLeave, isMember, nextOwner, requireCanRequest, requireMember, requireOwner, roleOf,
} from '../../src/tracker/groups.ts'
import type { Role } from '../../src/tracker/groups.ts'
import type { GroupRecord, LeaveOutcome, Member } from '../../src/store/store.ts'

function group (owner: string, members: Array<[string, number]>): GroupRecord {
  return { groupId: 'g1', owner, createdAt: 0, members: members.map(([userId, joinedAt]): Member => ({ userId, joinedAt })) }
}

// alice created g1 at 0; bob joined at 10, carol at 20
const g = group('alice', [['alice', 0], ['bob', 10], ['carol', 20]])
const solo = group('alice', [['alice', 0]])

function assertThrowsCode (fn: () => unknown, code: ErrorCode, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PeershareError)
    assert.equal(err.code, code)
    assert.match(err.message, message)
    return true
  })
}

describe('roleOf', () => {
  const cases: Array<[string, boolean, Role]> = [
    ['alice', false, 'owner'],
    ['alice', true, 'owner'],
    ['bob', false, 'member'],
    ['carol', true, 'member'],
    ['dave', true, 'pending'],
    ['dave', false, 'none'],
  ]
  for (const [userId, pending, role] of cases) {
    it(`${userId} (pending ${pending}) is ${role}`, () => {
      assert.equal(roleOf(g, userId, pending), role)
    })
  }
})

describe('isMember and requireMember', () => {
  const cases: Array<[string, boolean]> = [['alice', true], ['bob', true], ['carol', true], ['dave', false], ['', false], ['Alice', false]]
  for (const [userId, member] of cases) {
    it(`${userId || '(empty)'} ${member ? 'may' : 'may not'} use g1`, () => {
      assert.equal(isMember(g, userId), member)
      if (member) requireMember(g, userId)
      else assertThrowsCode(() => requireMember(g, userId), 'NOT_MEMBER', /not a member of g1.*join_group g1/)
    })
  }
})

describe('requireOwner', () => {
  const cases: Array<[string, boolean]> = [['alice', true], ['bob', false], ['dave', false]]
  for (const [userId, owner] of cases) {
    it(`${userId} ${owner ? 'may' : 'may not'} manage requests of g1`, () => {
      if (owner) requireOwner(g, userId)
      else assertThrowsCode(() => requireOwner(g, userId), 'NOT_OWNER', /only the owner of g1 \(alice\)/)
    })
  }
})

describe('requireCanRequest', () => {
  const cases: Array<[string, boolean]> = [['dave', true], ['alice', false], ['bob', false]]
  for (const [userId, allowed] of cases) {
    it(`${userId} ${allowed ? 'may' : 'may not'} ask to join g1`, () => {
      if (allowed) requireCanRequest(g, userId)
      else assertThrowsCode(() => requireCanRequest(g, userId), 'ALREADY_MEMBER', /already a member of g1/)
    })
  }
})

describe('nextOwner', () => {
  const cases: Array<{ name: string, members: Array<[string, number]>, leaving: string, want: string | null }> = [
    { name: 'the earliest other joiner', members: [['alice', 0], ['bob', 10], ['carol', 20]], leaving: 'alice', want: 'bob' },
    { name: 'join time, not list order', members: [['alice', 0], ['carol', 20], ['bob', 10]], leaving: 'alice', want: 'bob' },
    { name: 'join time, not user id order', members: [['alice', 0], ['zed', 5], ['amy', 9]], leaving: 'alice', want: 'zed' },
    { name: 'the smaller user id on a tie', members: [['alice', 0], ['zed', 5], ['amy', 5]], leaving: 'alice', want: 'amy' },
    { name: 'someone else when a non-owner leaves', members: [['alice', 0], ['bob', 10]], leaving: 'bob', want: 'alice' },
    { name: 'nobody when the leaver is alone', members: [['alice', 0]], leaving: 'alice', want: null },
    { name: 'nobody in an empty list', members: [], leaving: 'alice', want: null },
    { name: 'the earliest when the leaver is not listed', members: [['bob', 10], ['carol', 3]], leaving: 'alice', want: 'carol' },
  ]
  for (const c of cases) {
    it(`picks ${c.name}`, () => {
      assert.equal(nextOwner(group('alice', c.members).members, c.leaving), c.want)
    })
  }
})

describe('decideLeave', () => {
  const cases: Array<{ name: string, group: GroupRecord, leaving: string, want: LeaveOutcome }> = [
    { name: 'a member leaves: nothing else changes', group: g, leaving: 'carol', want: { newOwner: null, groupDeleted: false } },
    { name: 'the owner leaves: the earliest joiner owns', group: g, leaving: 'alice', want: { newOwner: 'bob', groupDeleted: false } },
    { name: 'the last member leaves: the group goes', group: solo, leaving: 'alice', want: { newOwner: null, groupDeleted: true } },
    {
      name: 'the owner leaves a two-member group',
      group: group('bob', [['alice', 0], ['bob', 1]]),
      leaving: 'bob',
      want: { newOwner: 'alice', groupDeleted: false },
    },
  ]
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(decideLeave(c.group, c.leaving), c.want)
    })
  }

  it('refuses a non-member with NOT_MEMBER', () => {
    assertThrowsCode(() => decideLeave(g, 'dave'), 'NOT_MEMBER', /not a member of g1/)
  })
})
