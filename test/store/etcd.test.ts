// The etcd store: the Store contract against a real 1-member etcd (a fresh key prefix per test),
// then what only several trackers on one cluster can show: propagation between two stores, races
// through two stores, a member killed mid-stream, quorum lost and regained, a dead tracker's presence.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, describe, it } from 'node:test'
import type { TestContext } from 'node:test'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { fileId } from '../../src/protocol/file-meta.ts'
import { openEtcdStore } from '../../src/store/etcd.ts'
import type { EtcdStore } from '../../src/store/etcd.ts'
import { startEtcdCluster } from '../helpers/etcd.ts'
import type { EtcdCluster } from '../helpers/etcd.ts'
import { waitFor } from '../helpers/wait.ts'
import { makeMeta, storeContract } from './contract.ts'

// one cluster for every contract test: starting etcd takes ~1 s, a prefix is free
const cleanups: Array<() => unknown> = []
after(async () => {
  for (const fn of cleanups.reverse()) await fn()
})
let shared: Promise<EtcdCluster> | undefined
function sharedCluster (): Promise<EtcdCluster> {
  // startEtcdCluster registers its cleanup (no arguments used) on what it is given: here, this file's end
  shared ??= startEtcdCluster({ after: (fn) => { if (fn !== undefined) cleanups.push(fn as () => unknown) } }, { members: 1 })
  return shared
}

const freshPrefix = (): string => `/peershare-test/${randomBytes(6).toString('hex')}`

storeContract('etcd', async () => {
  const cluster = await sharedCluster()
  const prefix = freshPrefix()
  const opened: EtcdStore[] = [await openEtcdStore({ endpoints: cluster.endpoints, prefix })]
  return {
    store: opened[0] as EtcdStore,
    reopen: async () => {
      const store = await openEtcdStore({ endpoints: cluster.endpoints, prefix })
      opened.push(store)
      return store
    },
    cleanup: async () => {
      for (const s of opened) await s.close()
    },
  }
})

/** Two stores on one cluster and prefix: two trackers. */
async function twoTrackers (t: TestContext): Promise<{ a: EtcdStore, b: EtcdStore }> {
  const cluster = await sharedCluster()
  const prefix = freshPrefix()
  const a = await openEtcdStore({ endpoints: cluster.endpoints, prefix })
  t.after(() => a.close())
  const b = await openEtcdStore({ endpoints: cluster.endpoints, prefix })
  t.after(() => b.close())
  return { a, b }
}

const user = (userId: string, createdAt = 1) => ({ userId, passwordHash: `scrypt$${userId}`, createdAt })

function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] as number
}

/** Exactly one fulfilled, and every other one rejected with `code`. */
function oneWinner (results: PromiseSettledResult<unknown>[], code: string, what: string): number {
  const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []))
  assert.equal(won.length, 1, `${what}: ${won.length} winners`)
  for (const r of results) {
    if (r.status === 'rejected') assert.equal((r.reason as { code?: unknown }).code, code, `${what}: ${String(r.reason)}`)
  }
  return won[0] as number
}

describe('etcd store: two trackers on one cluster', () => {
  it('a write through one is visible through the other within 1 s (propagation measured)', async (t) => {
    const { a, b } = await twoTrackers(t)
    const ROUNDS = 300
    const write: number[] = []
    const visible: number[] = []
    const afterAck: number[] = []
    for (let i = 0; i < ROUNDS; i++) {
      const [from, to] = i % 2 === 0 ? [a, b] : [b, a]
      const started = performance.now()
      await from.createUser(user(`p${i}`))
      const acked = performance.now()
      // poll by yielding to the event loop (no timer): the replica changes only in I/O callbacks
      while (await to.getUser(`p${i}`) === undefined) {
        assert.ok(performance.now() - started < 1_000, `p${i} not visible through the other store after 1 s`)
        await yieldToLoop()
      }
      const seen = performance.now()
      write.push(acked - started)
      visible.push(seen - started)
      afterAck.push(Math.max(0, seen - acked))
    }
    const fmt = (xs: number[]): string => {
      const s = xs.toSorted((x, y) => x - y)
      return `median ${percentile(s, 50).toFixed(2)} ms, p99 ${percentile(s, 99).toFixed(2)} ms`
    }
    t.diagnostic(`write acknowledged: ${fmt(write)}`)
    t.diagnostic(`visible through the other tracker, from the write's start: ${fmt(visible)}`)
    t.diagnostic(`visible through the other tracker, after the writer's acknowledgement: ${fmt(afterAck)}`)
    assert.ok(percentile(visible.toSorted((x, y) => x - y), 99) < 1_000)
  })

  it('a group made through one is joined, accepted and shared into through the other at once', async (t) => {
    const { a, b } = await twoTrackers(t)
    // no waiting in between: a refusal decided on a lagging replica is checked against etcd first
    await a.createGroup('g1', 'alice', 100)
    await b.addRequest('g1', 'bob', 150)
    await a.acceptRequest('g1', 'bob', 200)
    const meta = makeMeta('movie.mkv')
    assert.deepEqual(await b.addShare('g1', fileId(meta), meta, { userId: 'bob', clientId: 'cb1' }, 300), { newFile: true })
    assert.deepEqual(await a.removeShare('g1', 'movie.mkv', { userId: 'bob', clientId: 'cb1' }), { fileRemoved: true })
    assert.deepEqual(await b.leaveGroup('g1', 'alice'), { newOwner: 'bob', groupDeleted: false })
    // a read through the other tracker follows its watch (a write there would wait for it)
    await waitFor(async () => ((await a.groupAccess('g1', 'bob'))?.owner === 'bob' ? true : undefined), 'the new owner through a')
    const versionBefore = b.presenceVersion()
    await a.presenceUp({ clientId: 'cb1', userId: 'bob', peerAddr: '127.0.0.1:7000' })
    await waitFor(async () => ((await b.getPresence(['cb1'])).get('cb1')), 'the presence through the other store')
    assert.notEqual(b.presenceVersion(), versionBefore, 'a presence seen through the watch moves the version (reply caches rely on it)')
  })

  it('racing createUser and createGroup through both: exactly one winner each round', async (t) => {
    const { a, b } = await twoTrackers(t)
    const ROUNDS = 40
    for (let i = 0; i < ROUNDS; i++) {
      const w = oneWinner(await Promise.allSettled([a.createUser(user(`r${i}`, 1)), b.createUser(user(`r${i}`, 2))]), 'EXISTS', `createUser r${i}`)
      // the loser's own store already shows the winner's record: its refusal waited for it
      assert.equal((await a.getUser(`r${i}`))?.createdAt, w + 1)
      assert.equal((await b.getUser(`r${i}`))?.createdAt, w + 1)
      const g = oneWinner(await Promise.allSettled([a.createGroup(`g${i}`, 'ann', 1), b.createGroup(`g${i}`, 'ben', 2)]), 'EXISTS', `createGroup g${i}`)
      assert.equal((await a.getGroup(`g${i}`))?.owner, g === 0 ? 'ann' : 'ben')
      assert.equal((await b.getGroup(`g${i}`))?.owner, g === 0 ? 'ann' : 'ben')
    }
  })

  it('racing acceptRequest through both: exactly one winner, one membership each round', async (t) => {
    const { a, b } = await twoTrackers(t)
    const ROUNDS = 40
    await a.createGroup('club', 'owner', 1)
    for (let i = 0; i < ROUNDS; i++) await b.addRequest('club', `u${i}`, 10 + i)
    for (let i = 0; i < ROUNDS; i++) {
      oneWinner(await Promise.allSettled([a.acceptRequest('club', `u${i}`, 1000 + i), b.acceptRequest('club', `u${i}`, 2000 + i)]),
        'NOT_FOUND', `acceptRequest u${i}`)
    }
    for (const s of [a, b]) {
      const members = (await s.getGroup('club'))?.members.map((m) => m.userId) ?? []
      assert.equal(members.length, ROUNDS + 1)
      assert.equal(new Set(members).size, ROUNDS + 1)
      assert.deepEqual(await s.listRequests('club'), [])
    }
  })

  it('racing group writes: two last members leave, two files take one name, two last sharers stop', async (t) => {
    const { a, b } = await twoTrackers(t)
    const ROUNDS = 15
    const alice = { userId: 'alice', clientId: 'ca' }
    const bob = { userId: 'bob', clientId: 'cb' }
    for (let i = 0; i < ROUNDS; i++) {
      const g = `race${i}`
      await a.createGroup(g, 'alice', 1)
      await a.addRequest(g, 'bob', 2)
      await a.acceptRequest(g, 'bob', 3)

      // the same name for two different files: one is shared, the other refused
      const one = makeMeta('same.bin', 10, `one${i}`)
      const two = makeMeta('same.bin', 10, `two${i}`)
      const s = oneWinner(await Promise.allSettled([a.addShare(g, fileId(one), one, alice, 4), b.addShare(g, fileId(two), two, bob, 4)]),
        'EXISTS', `addShare ${g}`)
      const shared = s === 0 ? one : two
      // both share it, then both stop at once: the file goes exactly once, with its last sharer
      await a.addShare(g, fileId(shared), shared, alice, 5)
      await b.addShare(g, fileId(shared), shared, bob, 5)
      const removed = await Promise.all([a.removeShare(g, 'same.bin', alice), b.removeShare(g, 'same.bin', bob)])
      assert.deepEqual(removed.map((r) => r.fileRemoved).sort(), [false, true], `removeShare ${g}`)
      // whoever removed it sees it gone at once; the other store once its watch delivers
      await waitFor(async () => ((await a.getFile(g, 'same.bin')) === undefined ? true : undefined), 'the file gone through a')
      await waitFor(async () => ((await b.getFile(g, 'same.bin')) === undefined ? true : undefined), 'the file gone through b')

      // both members leave at once: one hands over or leaves, the other deletes the group
      const left = await Promise.all([a.leaveGroup(g, 'alice'), b.leaveGroup(g, 'bob')])
      assert.equal(left.filter((o) => o.groupDeleted).length, 1, `leaveGroup ${g}: ${JSON.stringify(left)}`)
      await waitFor(async () => ((await a.getGroup(g)) === undefined ? true : undefined), 'the group gone through a')
      await waitFor(async () => ((await b.getGroup(g)) === undefined ? true : undefined), 'the group gone through b')
    }
  })
})
