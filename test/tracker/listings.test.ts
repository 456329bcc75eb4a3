// list_files rows: distinct sharers, who counts as online, order, and facts kept per file record.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { fileListings } from '../../src/tracker/listings.ts'
import type { Presence, Sharer, StoredFile } from '../../src/store/store.ts'
import { makeMeta } from '../store/contract.ts'

function file (name: string, sharers: Array<[string, string, boolean]>): StoredFile {
  return Object.freeze({
    fileId: name.padEnd(64, '0'),
    meta: makeMeta(name, 10),
    sharers: sharers.map(([userId, clientId, active]): Sharer => ({ userId, clientId, active })),
  })
}

/** Presence as a store reports it, recording which client ids it was asked about. */
function presence (online: Record<string, string>): { asked: string[][], of: (ids: string[]) => Promise<Map<string, Presence>> } {
  const asked: string[][] = []
  return {
    asked,
    of: async (ids) => {
      asked.push(ids)
      const out = new Map<string, Presence>()
      for (const id of ids) {
        const userId = online[id]
        if (userId !== undefined) out.set(id, { clientId: id, userId, peerAddr: '127.0.0.1:1' })
      }
      return out
    },
  }
}

describe('fileListings', () => {
  it('lists distinct sharers sorted, and counts online users once each', async () => {
    const files = [
      file('b.bin', [['zed', 'z1', true], ['amy', 'a1', true], ['amy', 'a2', true], ['bob', 'b1', false]]),
      file('a.bin', [['amy', 'a1', false], ['cat', 'c1', true]]),
    ]
    const p = presence({ a1: 'amy', a2: 'amy', b1: 'bob', c1: 'someone-else' })
    assert.deepEqual(await fileListings(files, p.of), [
      // amy's share is inactive; c1 is connected, but logged in as another user
      { name: 'a.bin', fileId: files[1]!.fileId, size: 10, sharers: ['amy', 'cat'], sharersOnline: 0 },
      // amy online from two clients counts once; zed is not connected; bob's share is inactive
      { name: 'b.bin', fileId: files[0]!.fileId, size: 10, sharers: ['amy', 'bob', 'zed'], sharersOnline: 1 },
    ])
    assert.deepEqual(p.asked.map((ids) => [...ids].sort()), [['a1', 'a2', 'c1', 'z1']]) // active shares only
  })

  it('asks for no presence when no share is active', async () => {
    const p = presence({})
    const rows = await fileListings([file('a.bin', [['amy', 'a1', false]])], p.of)
    assert.equal(rows[0]?.sharersOnline, 0)
    assert.deepEqual(p.asked, [])
    assert.deepEqual(await fileListings([], p.of), [])
  })

  it('works out the sharers once per file record, and afresh for a new record', async () => {
    const p = presence({ a1: 'amy' })
    const first = file('a.bin', [['amy', 'a1', true]])
    const [one] = await fileListings([first], p.of)
    const [two] = await fileListings([first], p.of)
    assert.equal(one?.sharers, two?.sharers)
    const changed = file('a.bin', [['amy', 'a1', true], ['bob', 'b1', true]])
    const [three] = await fileListings([changed], p.of)
    assert.deepEqual(three?.sharers, ['amy', 'bob'])
  })
})
