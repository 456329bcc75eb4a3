// Encoded list_files / list_groups replies: the same JSON as encoding the result objects, reused
// while the store hands out the same records and presence, rebuilt when either changes.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { encodeMessage } from '../../src/protocol/control.ts'
import { encodeFrame } from '../../src/protocol/frame.ts'
import { fileListings } from '../../src/tracker/listings.ts'
import { COPY_REPLY_BELOW, EncodedResult, MAX_CACHED_GROUPS, ReplyCache, encodeResultFrame } from '../../src/tracker/reply-cache.ts'
import type { GroupSummary, Presence, Sharer, StoredFile } from '../../src/store/store.ts'
import { makeMeta } from '../store/contract.ts'

function file (name: string, sharers: Array<[string, string, boolean]>): StoredFile {
  return Object.freeze({
    fileId: name.padEnd(64, '0').replace(/[^0-9a-f]/g, 'a'),
    meta: makeMeta(name, 10),
    sharers: sharers.map(([userId, clientId, active]): Sharer => ({ userId, clientId, active })),
  })
}

/** Presence as a store reports it, from a table the test changes (bumping `version` when it does). */
function presence (online: Record<string, string>): { calls: number, version: number, of: (ids: string[]) => Promise<Map<string, Presence>> } {
  const p = {
    calls: 0,
    version: 0,
    of: async (ids: string[]) => {
      p.calls++
      const out = new Map<string, Presence>()
      for (const id of ids) {
        const userId = online[id]
        if (userId !== undefined) out.set(id, { clientId: id, userId, peerAddr: '127.0.0.1:1' })
      }
      return out
    },
  }
  return p
}

const parse = (r: EncodedResult): unknown => JSON.parse(r.json.toString('utf8'))

describe('ReplyCache.listFiles', () => {
  it('gives the JSON of the list_files result, rows by name', async () => {
    const files = [
      file('b "quoted" é.bin', [['zed', 'z1', true], ['amy', 'a1', true], ['amy', 'a2', true], ['bob', 'b1', false]]),
      file('a.bin', [['amy', 'a1', false], ['cat', 'c1', true]]),
    ]
    const online = { a1: 'amy', a2: 'amy', b1: 'bob', c1: 'someone-else' }
    const got = await new ReplyCache().listFiles('g1', files, 0, presence(online).of)
    const want = { groupId: 'g1', files: await fileListings(files, presence(online).of) }
    assert.equal(got.json.toString('utf8'), JSON.stringify(want))
  })

  it('reuses the reply while records and presence stay, rebuilds when a record or a sharer\'s presence changes', async () => {
    const cache = new ReplyCache()
    const online: Record<string, string> = { a1: 'amy' }
    const p = presence(online)
    const files = [file('a.bin', [['amy', 'a1', true]]), file('b.bin', [['bob', 'b1', true]])]
    const first = await cache.listFiles('g1', files, p.version, p.of)
    const again = await cache.listFiles('g1', files.slice(), p.version, p.of) // a store hands out a fresh array
    assert.equal(again.json, first.json)
    assert.equal(p.calls, 1) // nobody's presence changed (the same version): not asked again

    online.z9 = 'zed' // someone else connects: asked once, and the reply still holds
    p.version++
    assert.equal((await cache.listFiles('g1', files, p.version, p.of)).json, first.json)
    assert.equal((await cache.listFiles('g1', files, p.version, p.of)).json, first.json)
    assert.equal(p.calls, 2)

    online.b1 = 'bob' // bob connects
    p.version++
    const bobOnline = await cache.listFiles('g1', files, p.version, p.of)
    assert.notEqual(bobOnline.json, first.json)
    assert.deepEqual((parse(bobOnline) as { files: Array<{ sharersOnline: number }> }).files.map((f) => f.sharersOnline), [1, 1])

    online.b1 = 'mallory' // the same client, logged in as someone else: bob is not online
    p.version++
    assert.deepEqual((parse(await cache.listFiles('g1', files, p.version, p.of)) as { files: Array<{ sharersOnline: number }> }).files.map((f) => f.sharersOnline), [1, 0])

    const changed = [files[0]!, file('b.bin', [['bob', 'b1', true], ['cat', 'c1', true]])] // a new record for b.bin
    const after = parse(await cache.listFiles('g1', changed, p.version, p.of)) as { files: Array<{ sharers: string[] }> }
    assert.deepEqual(after.files[1]!.sharers, ['bob', 'cat'])
    assert.deepEqual(parse(await cache.listFiles('g1', [files[0]!], p.version, p.of)), { groupId: 'g1', files: [{ name: 'a.bin', fileId: files[0]!.fileId, size: 10, sharers: ['amy'], sharersOnline: 1 }] })
  })

  it('keeps groups apart, asks no presence when no share is active, and stays bounded', async () => {
    const cache = new ReplyCache()
    const p = presence({})
    assert.deepEqual(parse(await cache.listFiles('g1', [], p.version, p.of)), { groupId: 'g1', files: [] })
    assert.deepEqual(parse(await cache.listFiles('g2', [file('x.bin', [['amy', 'a1', false]])], p.version, p.of)),
      { groupId: 'g2', files: [{ name: 'x.bin', fileId: file('x.bin', []).fileId, size: 10, sharers: ['amy'], sharersOnline: 0 }] })
    assert.equal(p.calls, 0)
    for (let i = 0; i < MAX_CACHED_GROUPS + 10; i++) await cache.listFiles(`g${i}`, [], p.version, p.of)
    assert.ok(cache.size <= MAX_CACHED_GROUPS)
  })
})

describe('ReplyCache.listGroups', () => {
  const g = (groupId: string, owner: string, memberCount: number): GroupSummary => Object.freeze({ groupId, owner, memberCount })

  it('gives every group sorted by id with the caller\'s role, the group parts shared between callers', () => {
    const cache = new ReplyCache()
    const groups = [g('zeta', 'amy', 3), g('alpha', 'bob', 1), g('mid "q"', 'cat', 2), g('pend', 'cat', 1)]
    const mine = { member: ['zeta', 'mid "q"'], pending: ['pend'] }
    assert.equal(cache.listGroups(groups, 'amy', mine).json.toString('utf8'), JSON.stringify({
      groups: [
        { groupId: 'alpha', owner: 'bob', members: 1, role: 'none' },
        { groupId: 'mid "q"', owner: 'cat', members: 2, role: 'member' },
        { groupId: 'pend', owner: 'cat', members: 1, role: 'pending' },
        { groupId: 'zeta', owner: 'amy', members: 3, role: 'owner' },
      ],
    }))
    assert.deepEqual(parse(cache.listGroups(groups.slice(), 'bob', { member: ['alpha'], pending: [] })), { groups: [
      { groupId: 'alpha', owner: 'bob', members: 1, role: 'owner' },
      { groupId: 'mid "q"', owner: 'cat', members: 2, role: 'none' },
      { groupId: 'pend', owner: 'cat', members: 1, role: 'none' },
      { groupId: 'zeta', owner: 'amy', members: 3, role: 'none' },
    ] })
    // a changed list (a group gone, a count changed) is seen at once
    const changed = [g('zeta', 'amy', 4), groups[1]!]
    assert.deepEqual(parse(cache.listGroups(changed, 'amy', mine)), { groups: [
      { groupId: 'alpha', owner: 'bob', members: 1, role: 'none' },
      { groupId: 'zeta', owner: 'amy', members: 4, role: 'owner' },
    ] })
    assert.deepEqual(parse(cache.listGroups([], 'amy', mine)), { groups: [] })
  })
})

describe('ReplyCache.listGroups against the plain encoding', () => {
  it('gives the same bytes for every user, whatever their roles, ids with escapes and non-ASCII included', () => {
    const ids = ['a', 'b"c', 'dé', 'z\\', 'ünï', 'm1', 'm2', 'm3']
    const users = ['amy', 'bob', 'cé', 'dan']
    const cache = new ReplyCache()
    for (let round = 0; round < 30; round++) {
      const groups = ids.filter((_id, i) => (round + i) % 3 !== 0).map((id, i): GroupSummary => Object.freeze({ groupId: id, owner: users[(round + i) % users.length]!, memberCount: i + 1 }))
      for (const u of users) {
        const member = groups.filter((_g, i) => (i + round + u.length) % 2 === 0).map((g) => g.groupId)
        const pending = groups.filter((g, i) => !member.includes(g.groupId) && (i + round) % 5 === 0).map((g) => g.groupId)
        const want = {
          groups: groups.map((g) => ({
            groupId: g.groupId,
            owner: g.owner,
            members: g.memberCount,
            role: g.owner === u ? 'owner' : member.includes(g.groupId) ? 'member' : pending.includes(g.groupId) ? 'pending' : 'none',
          })).sort((a, b) => (a.groupId < b.groupId ? -1 : a.groupId > b.groupId ? 1 : 0)),
        }
        assert.equal(cache.listGroups(groups, u, { member, pending }).json.toString('utf8'), JSON.stringify(want))
      }
    }
  })
})

describe('encodeResultFrame', () => {
  it('gives the bytes of the encoded reply frame', () => {
    const result = { groups: [{ groupId: 'é', owner: 'x', members: 1, role: 'none' }] }
    for (const id of [0, 7, 2 ** 31 - 1]) {
      const frame = Buffer.concat(encodeResultFrame(id, new EncodedResult(Buffer.from(JSON.stringify(result)))))
      assert.deepEqual(frame, encodeFrame(encodeMessage({ id, ok: true, result })))
    }
  })
})

describe('shared reply bytes', () => {
  const many = Array.from({ length: 2000 }, (_, i): GroupSummary => Object.freeze({ groupId: `group-${String(i).padStart(5, '0')}`, owner: `u${i % 500}`, memberCount: 1 + (i % 5) }))

  it('a list_groups reply with roles is slices of the one shared list, only the roles its own', () => {
    const cache = new ReplyCache()
    const plain = cache.listGroups(many, 'nobody', { member: [], pending: [] })
    const a = cache.listGroups(many, 'u1', { member: ['group-00003'], pending: ['group-01999'] })
    const b = cache.listGroups(many, 'u2', { member: ['group-00010'], pending: [] })
    const shared = plain.parts[0]!.buffer
    for (const r of [a, b]) {
      const own = r.parts.filter((p) => p.buffer !== shared).reduce((n, p) => n + p.length, 0)
      assert.ok(own < 100, `${own} bytes of its own in a ${r.length}-byte reply`)
      assert.equal(r.json.length, r.length)
    }
    assert.equal((JSON.parse(a.json.toString('utf8')) as { groups: Array<{ role: string }> }).groups.filter((g) => g.role !== 'none').length, 2 + 2000 / 500)
  })

  it('a big reply frame references the result\'s bytes; a small one is one buffer', () => {
    const big = new EncodedResult(Buffer.from(JSON.stringify({ x: 'y'.repeat(COPY_REPLY_BELOW) })))
    const parts = encodeResultFrame(42, big)
    assert.ok(parts.length > 1)
    assert.ok(parts.includes(big.parts[0]!))
    assert.deepEqual(Buffer.concat(parts), encodeFrame(encodeMessage({ id: 42, ok: true, result: { x: 'y'.repeat(COPY_REPLY_BELOW) } })))
    assert.equal(encodeResultFrame(42, new EncodedResult(Buffer.from('{}'))).length, 1)
  })
})
