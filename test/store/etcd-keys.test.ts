// The etcd store's key layout and value codecs: every key parses back to what built it, ids cannot
// forge a '/', foreign and malformed keys and values are refused.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  decodeFile, decodeHead, decodePresence, decodeRequest, decodeShare, decodeUser, encodeFile, encodeValue, Keys,
} from '../../src/store/etcd-keys.ts'
import { makeMeta } from './contract.ts'

describe('etcd keys', () => {
  const k = new Keys('/p/v1')

  it('parses every key back to what built it', () => {
    const cases: Array<[string, unknown]> = [
      [k.user('alice'), { kind: 'user', userId: 'alice' }],
      [k.session('ab'.repeat(32)), { kind: 'session', tokenHash: 'ab'.repeat(32) }],
      [k.group('g1'), { kind: 'group', groupId: 'g1' }],
      [k.member('g1', 'bob'), { kind: 'member', groupId: 'g1', userId: 'bob' }],
      [k.request('g1', 'carol'), { kind: 'request', groupId: 'g1', userId: 'carol' }],
      [k.file('g1', 'f00d'), { kind: 'file', groupId: 'g1', fileId: 'f00d' }],
      [k.share('g1', 'f00d', 'bob', 'c1'), { kind: 'share', groupId: 'g1', fileId: 'f00d', userId: 'bob', clientId: 'c1' }],
      [k.presence('c1'), { kind: 'presence', clientId: 'c1' }],
      [k.sync, { kind: 'sync' }],
    ]
    for (const [key, parsed] of cases) {
      assert.ok(key.startsWith('/p/v1/'), key)
      assert.deepEqual(k.parse(key), parsed, key)
    }
  })

  it('encodes components, so an id holding "/" or "%" cannot reach another key', () => {
    assert.deepEqual(k.parse(k.member('a/members/b', 'c%2F')), { kind: 'member', groupId: 'a/members/b', userId: 'c%2F' })
    assert.ok(!k.member('g', 'x').startsWith(k.groupChildren('g1')))
    assert.ok(k.member('g1', 'x').startsWith(k.groupChildren('g1')))
    assert.ok(!k.file('g10', 'f').startsWith(k.groupFiles('g1')))
    assert.ok(k.share('g1', 'f', 'bob', 'c').startsWith(k.userFileShares('g1', 'f', 'bob')))
    assert.ok(!k.share('g1', 'f', 'bobby', 'c').startsWith(k.userFileShares('g1', 'f', 'bob')))
  })

  it('refuses keys outside the prefix, of unknown shape or badly escaped', () => {
    for (const key of ['/other/users/a', '/p/v1/', '/p/v1/users', '/p/v1/users/', '/p/v1/users/a/b', '/p/v1/nope/a',
      '/p/v1/groups/g/owners/a', '/p/v1/users/%E0%A4%A', '/p/v1/shares/g/f/u', '/p/v1/sync/x']) {
      assert.equal(k.parse(key), undefined, key)
    }
    assert.equal(new Keys('/p/v1/').root, '/p/v1/')
    assert.throws(() => new Keys(''))
  })
})

describe('etcd values', () => {
  it('round-trips each record', () => {
    assert.deepEqual(decodeUser(encodeValue({ passwordHash: 'h', createdAt: 5, n: 'x.1' })), { passwordHash: 'h', createdAt: 5, n: 'x.1' })
    assert.deepEqual(decodeHead(encodeValue({ owner: 'a', createdAt: 1, n: 'x.2' })), { owner: 'a', createdAt: 1, n: 'x.2' })
    assert.deepEqual(decodeRequest(encodeValue({ requestedAt: 3, n: 'x.3' })), { requestedAt: 3, n: 'x.3' })
    assert.deepEqual(decodeShare(encodeValue({ active: false })), { active: false })
    assert.deepEqual(decodePresence(encodeValue({ userId: 'a', peerAddr: '127.0.0.1:1' })), { userId: 'a', peerAddr: '127.0.0.1:1' })
    for (const meta of [makeMeta('a.bin'), makeMeta('empty', 0)]) assert.deepEqual(decodeFile(encodeFile(meta)), meta)
  })

  it('refuses malformed values', () => {
    for (const text of ['', 'null', '[]', '{"passwordHash":"h","createdAt":"5","n":"x"}', '{"passwordHash":"h","createdAt":1.5,"n":"x"}',
      '{"passwordHash":"h","createdAt":5}']) {
      assert.equal(decodeUser(text), undefined, text)
    }
    const meta = JSON.parse(encodeFile(makeMeta('a.bin'))) as Record<string, unknown>
    for (const bad of [{ pieceHashes: '' }, { fileHash: 'abcd' }, { size: -1 }, { pieceBytes: 0 }, { name: 7 }]) {
      assert.equal(decodeFile(JSON.stringify({ ...meta, ...bad })), undefined, JSON.stringify(bad))
    }
  })
})
