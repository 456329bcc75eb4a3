import assert from 'node:assert/strict'
import { test } from 'node:test'
import { checkResult } from '../../src/client/results.ts'

const FILE = { name: 'a.txt', fileId: 'a'.repeat(64), size: 3, sharers: ['alice'], sharersOnline: 1 }

test('accepts results of the documented shape', () => {
  checkResult('list_files', { groupId: 'g1', files: [FILE] })
  checkResult('leave_group', { groupId: 'g1', newOwner: null, groupDeleted: true })
  checkResult('login', { userId: 'alice', token: 'A'.repeat(43) })
  checkResult('ping', {})
})

test('refuses malformed results with PROTOCOL, including names that could carry terminal escapes', () => {
  const bad: Array<[Parameters<typeof checkResult>[0], unknown]> = [
    ['list_files', { groupId: 'g1', files: [{ ...FILE, name: 'a\u001b[2J' }] }],
    ['list_files', { groupId: 'g1', files: [{ ...FILE, size: '3' }] }],
    ['list_files', { groupId: 'g1' }],
    ['list_groups', { groups: [{ groupId: 'g', owner: 'o', members: 1, role: 'king' }] }],
    ['login', { userId: 'alice' }],
    ['leave_group', { groupId: 'g1', newOwner: 5, groupDeleted: false }],
    ['ping', null],
  ]
  for (const [op, result] of bad) assert.throws(() => checkResult(op, result), { code: 'PROTOCOL' }, `${op} ${JSON.stringify(result)}`)
})

test('get_file holders need a user, an ip:port address and a complete flag', () => {
  const good = { groupId: 'g1', fileId: 'a'.repeat(64), meta: {}, holders: [{ userId: 'bob', peerAddr: '127.0.0.1:7002', complete: false }] }
  checkResult('get_file', good)
  checkResult('hold', { groupId: 'g1', fileId: 'a'.repeat(64) })
  for (const holder of [
    { userId: 'bob', peerAddr: '127.0.0.1:7002' },
    { userId: 'bob', peerAddr: 'not an address', complete: true },
    { userId: '../bob', peerAddr: '127.0.0.1:7002', complete: true },
  ]) {
    assert.throws(() => checkResult('get_file', { ...good, holders: [holder] }), { code: 'PROTOCOL' }, JSON.stringify(holder))
  }
  assert.throws(() => checkResult('hold', { groupId: 'g1', fileId: 'short' }), { code: 'PROTOCOL' })
})
