// The etcd store when etcd or a tracker fails: a member killed (kill -9) mid-stream of writes, quorum
// lost and regained, a watch whose member died (re-list), and a killed tracker's presences expiring
// with its lease. Real etcd clusters on loopback; each test starts its own.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { describe, it } from 'node:test'
import { Etcd3 } from 'etcd3'
import { PRESENCE_TTL_S } from '../../src/store/etcd-presence.ts'
import { openEtcdStore } from '../../src/store/etcd.ts'
import type { EtcdStore, EtcdStoreOptions } from '../../src/store/etcd.ts'
import { startEtcdCluster } from '../helpers/etcd.ts'
import type { EtcdCluster, EtcdMember } from '../helpers/etcd.ts'
import { waitFor } from '../helpers/wait.ts'
import type { TestContext } from 'node:test'

const freshPrefix = (): string => `/peershare-test/${randomBytes(6).toString('hex')}`
const user = (userId: string) => ({ userId, passwordHash: `scrypt$${userId}`, createdAt: 1 })
const codeOf = (err: unknown): unknown => (err as { code?: unknown }).code

type Cleanups = Pick<TestContext, 'after'>

/** Cleanups run last in, first out: stores close before their cluster stops (t.after runs in order). */
function lifo (t: TestContext): Cleanups {
  const fns: Array<() => unknown> = []
  t.after(async () => {
    for (const fn of fns.reverse()) await fn()
  })
  return { after: (fn) => { if (fn !== undefined) fns.push(fn as () => unknown) } }
}

async function open (c: Cleanups, opts: EtcdStoreOptions): Promise<EtcdStore> {
  const store = await openEtcdStore(opts)
  c.after(() => store.close())
  return store
}

/** The member that leads the Raft group now. */
async function leaderOf (cluster: EtcdCluster): Promise<EtcdMember> {
  for (const m of cluster.members.filter((x) => x.running)) {
    const client = new Etcd3({ hosts: m.clientUrl })
    try {
      const status = await client.maintenance.status({ deadline: Date.now() + 2_000 })
      if (status.leader === status.header.member_id) return m
    } finally {
      client.close()
    }
  }
  throw new Error('no member says it leads')
}

describe('etcd store failures', () => {
  it('kill -9 of the leader mid-stream loses no acknowledged write, and writes go on', async (t) => {
    const c = lifo(t)
    const cluster = await startEtcdCluster(c, { members: 3 })
    const prefix = freshPrefix()
    const store = await open(c, { endpoints: cluster.endpoints, prefix })
    const WRITERS = 4
    const MAX_WRITES = 20_000 // a bound, should the waits below misbehave
    const acked: string[] = []
    const failed: string[] = []
    const ackTimes: number[] = []
    let next = 0
    let stop = false
    const writer = async (): Promise<void> => {
      while (!stop && next < MAX_WRITES) {
        const id = `u${next++}`
        try {
          await store.createUser(user(id))
          acked.push(id)
          ackTimes.push(performance.now())
        } catch (err) {
          assert.equal(codeOf(err), 'STORE_UNAVAILABLE', String(err))
          failed.push(id)
        }
      }
    }
    const writers = Array.from({ length: WRITERS }, writer)
    try {
      await waitFor(() => (acked.length >= 200 ? true : undefined), '200 writes before the kill')
      const leader = await leaderOf(cluster)
      const killedAt = performance.now()
      const before = acked.length
      await leader.kill()
      await waitFor(() => (acked.length >= before + 200 ? true : undefined), '200 writes after the kill', 30_000)
      const gap = Math.max(...ackTimes.map((at, i) => (i === 0 ? 0 : at - (ackTimes[i - 1] as number))))
      const firstAfter = (ackTimes.find((at) => at > killedAt) ?? NaN) - killedAt
      t.diagnostic(`killed leader ${leader.name}: ${acked.length} writes acknowledged, ${failed.length} failed; ` +
        `longest pause between acknowledgements ${gap.toFixed(0)} ms, first after the kill at +${firstAfter.toFixed(0)} ms`)
    } finally {
      stop = true
      await Promise.all(writers)
    }
    // read back through a store that lists everything afresh from the surviving members
    const check = await open(c, { endpoints: cluster.members.filter((m) => m.running).map((m) => m.clientUrl), prefix })
    for (const id of acked) assert.ok(await check.getUser(id), `acknowledged ${id} is missing`)
  })

  it('with two of three members down, writes fail with STORE_UNAVAILABLE in time, and recover', async (t) => {
    const c = lifo(t)
    const cluster = await startEtcdCluster(c, { members: 3 })
    const BUDGET_MS = 2_000
    const store = await open(c, { endpoints: cluster.endpoints, prefix: freshPrefix(), callTimeoutMs: BUDGET_MS })
    await store.createUser(user('before'))
    await store.createGroup('g', 'before', 1)
    const [, m2, m3] = cluster.members as [EtcdMember, EtcdMember, EtcdMember]
    await m2.kill()
    await m3.kill()

    for (const [what, write] of [
      ['createUser', () => store.createUser(user('during'))],
      ['addRequest', () => store.addRequest('g', 'during', 2)],
      ['presenceUp', () => store.presenceUp({ clientId: 'c1', userId: 'before', peerAddr: '127.0.0.1:9' })],
    ] as const) {
      const started = performance.now()
      await assert.rejects(write(), (err) => codeOf(err) === 'STORE_UNAVAILABLE', what)
      const took = performance.now() - started
      t.diagnostic(`${what} without quorum: STORE_UNAVAILABLE after ${took.toFixed(0)} ms (budget ${BUDGET_MS} ms)`)
      // no hang: the call's own deadline ended it (the slack is for a loaded machine's timers)
      assert.ok(took < BUDGET_MS + 2_000, `${what} took ${took.toFixed(0)} ms`)
    }
    // reads go on from the replica
    assert.ok(await store.getUser('before'))

    await m2.start()
    // the same store writes again by itself once quorum is back (a retried create may meet its
    // own earlier, ambiguous attempt: EXISTS then means it applied)
    await waitFor(async () => {
      try {
        await store.createUser(user('after'))
        return true
      } catch (err) {
        return codeOf(err) === 'EXISTS' ? true : undefined
      }
    }, 'a write once a member is back', 30_000)
    await store.addRequest('g', 'after', 3)
    assert.deepEqual((await store.listRequests('g')).map((r) => r.userId).filter((u) => u === 'after'), ['after'])
  })

  it('a store whose member died re-lists on another and catches up on what it missed', async (t) => {
    const c = lifo(t)
    const cluster = await startEtcdCluster(c, { members: 3 })
    const prefix = freshPrefix()
    const [m1, m2, m3] = cluster.members as [EtcdMember, EtcdMember, EtcdMember]
    const writer = await open(c, { endpoints: [m1.clientUrl, m2.clientUrl], prefix })
    // this one's watch can only be on m3
    const reader = await open(c, { endpoints: [m3.clientUrl], prefix })
    await writer.createGroup('doomed', 'alice', 1)
    await writer.createUser(user('early'))
    await waitFor(async () => await reader.getGroup('doomed'), 'the group through the reader')

    await m3.kill()
    await writer.createUser(user('missed'))
    await writer.leaveGroup('doomed', 'alice') // deleted: a delete event the reader must not miss
    await m3.start()
    await waitFor(async () => await reader.getUser('missed'), 'the reader to re-list', 20_000)
    assert.equal(await reader.getGroup('doomed'), undefined)
    assert.ok(await reader.getUser('early'))
    assert.ok(reader.replicaState.resyncs >= 1)
    // and it follows new changes again
    await writer.createUser(user('later'))
    await waitFor(async () => await reader.getUser('later'), 'a change after the re-list')
  })

  it('a killed tracker\'s clients go offline within a few seconds; a live one\'s stay', async (t) => {
    const c = lifo(t)
    const cluster = await startEtcdCluster(c, { members: 1 })
    const prefix = freshPrefix()
    const observer = await open(c, { endpoints: cluster.endpoints, prefix })
    const live = await open(c, { endpoints: cluster.endpoints, prefix })
    await live.presenceUp({ clientId: 'stays', userId: 'bob', peerAddr: '127.0.0.1:8' })

    const child = spawn(process.execPath, [join(import.meta.dirname, 'fixtures', 'etcd-presence-holder.ts'),
      cluster.endpoints.join(','), prefix, 'goes'], { stdio: ['ignore', 'pipe', 'inherit'] })
    t.after(() => { child.kill('SIGKILL') })
    const exited = once(child, 'exit')
    for await (const line of createInterface({ input: child.stdout })) if (line === 'up') break
    await waitFor(async () => (await observer.getPresence(['goes'])).get('goes'), 'the child\'s presence')

    // alive past its TTL: the lease is kept alive (keepalives every TTL/3)
    const upAt = performance.now()
    await waitFor(async () => {
      assert.ok((await observer.getPresence(['goes'])).has('goes'), 'a live tracker\'s presence expired')
      return performance.now() - upAt > (PRESENCE_TTL_S + 1) * 1_000 ? true : undefined
    }, 'the presence to outlive its TTL', (PRESENCE_TTL_S + 5) * 1_000)

    child.kill('SIGKILL')
    await exited
    const killedAt = performance.now()
    await waitFor(async () => ((await observer.getPresence(['goes'])).has('goes') ? undefined : true),
      'the killed tracker\'s presence to expire', (PRESENCE_TTL_S + 5) * 1_000)
    const took = performance.now() - killedAt
    t.diagnostic(`presence of a kill -9'd tracker gone after ${took.toFixed(0)} ms (lease TTL ${PRESENCE_TTL_S} s)`)
    assert.ok(took < (PRESENCE_TTL_S + 2) * 1_000)
    assert.ok((await observer.getPresence(['stays'])).has('stays'))
  })

  it('a tracker whose lease is revoked under it takes a new one and announces its clients again', async (t) => {
    const c = lifo(t)
    const cluster = await startEtcdCluster(c, { members: 1 })
    const prefix = freshPrefix()
    const tracker = await open(c, { endpoints: cluster.endpoints, prefix })
    await tracker.presenceUp({ clientId: 'c1', userId: 'alice', peerAddr: '127.0.0.1:9' })
    const raw = new Etcd3({ hosts: cluster.endpoints })
    c.after(() => raw.close())
    const leaseOf = async (): Promise<string | undefined> => (await raw.get(`${prefix}/presence/c1`).exec()).kvs[0]?.lease
    const first = await leaseOf()
    assert.ok(first !== undefined && first !== '0')
    // as if etcd had expired it (say, the tracker was cut off for longer than the TTL)
    await raw.leaseClient.leaseRevoke({ ID: first })
    const second = await waitFor(async () => {
      const now = await leaseOf()
      return now !== undefined && now !== first ? now : undefined
    }, 'the presence written again under a new lease', (PRESENCE_TTL_S + 5) * 1_000)
    assert.notEqual(second, '0')
    assert.equal(tracker.replicaState.leaseGrants, 2)
    await tracker.presenceUp({ clientId: 'c2', userId: 'bob', peerAddr: '127.0.0.1:8' })
    assert.equal((await raw.get(`${prefix}/presence/c2`).exec()).kvs[0]?.lease, second)
  })
})
