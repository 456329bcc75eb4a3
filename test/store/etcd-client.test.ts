// Checks that the `etcd3` npm client does, against the etcd this project installs (Debian's 3.4),
// everything the etcd store is built on: put/get, prefix ranges, compare-and-put transactions,
// leases kept alive (and expiring when not), watches from a past revision, and deadlines that bound
// a write when the cluster has lost quorum (etcd waits rather than fails).

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Etcd3, GRPCDeadlineExceededError, GRPCUnavailableError, isRecoverableError } from 'etcd3'
import type { IKeyValue } from 'etcd3'
import { handleWhen, noop, retry } from 'cockatiel'
import type { TestContext } from 'node:test'
import { startEtcdCluster } from '../helpers/etcd.ts'
import { waitFor } from '../helpers/wait.ts'

/**
 * The client options the store should use: no per-host circuit breaker (the default one refuses
 * every call for 5 s after three failures, so a store would stay "unavailable" after etcd is back)
 * and one retry on another member for connection errors. Deadlines are absolute, so a retry shares
 * the first attempt's deadline.
 */
function connect (t: TestContext, hosts: string[]): Etcd3 {
  const client = new Etcd3({
    hosts,
    faultHandling: { host: () => noop, global: retry(handleWhen(isRecoverableError), { maxAttempts: 2 }) },
  })
  t.after(() => client.close())
  return client
}

const within = (ms: number): { deadline: number } => ({ deadline: Date.now() + ms })

test('the etcd3 client against a real 1-member etcd', async (t) => {
  const cluster = await startEtcdCluster(t, { members: 1 })
  const etcd = connect(t, cluster.endpoints)

  await t.test('put then get returns the value; a missing key reads as null', async () => {
    await etcd.put('users/alice').value('{"v":1}').options(within(2_000))
    assert.equal(await etcd.get('users/alice').options(within(2_000)).string(), '{"v":1}')
    assert.equal(await etcd.get('users/nobody').string(), null)
  })

  await t.test('a prefix range lists exactly the keys under it, with the revision it was read at', async () => {
    await etcd.put('groups/g1').value('a')
    await etcd.put('groups/g2').value('b')
    await etcd.put('groupsX').value('not under groups/')
    assert.deepEqual(await etcd.getAll().prefix('groups/').strings(), { 'groups/g1': 'a', 'groups/g2': 'b' })
    const res = await etcd.getAll().prefix('groups/').exec()
    assert.equal(res.kvs.length, 2)
    assert.ok(BigInt(res.header.revision) > 0n)
  })

  await t.test('create-if-absent transactions: of two racing creates exactly one succeeds', async () => {
    const create = (value: string): Promise<boolean> => etcd.if('users/bob', 'Create', '==', 0)
      .then(etcd.put('users/bob').value(value))
      .options(within(2_000))
      .commit()
      .then((r) => r.succeeded)
    const results = await Promise.all([create('first'), create('second')])
    assert.deepEqual(results.toSorted(), [false, true])
    const winner = results[0] === true ? 'first' : 'second'
    assert.equal(await etcd.get('users/bob').string(), winner)
  })

  await t.test('compare-on-value transactions apply only over the expected value, else run the else branch', async () => {
    await etcd.put('groups/g3').value('owner=alice')
    const stale = await etcd.if('groups/g3', 'Value', '==', 'owner=carol')
      .then(etcd.put('groups/g3').value('owner=dave'))
      .else(etcd.get('groups/g3'))
      .commit()
    assert.equal(stale.succeeded, false)
    assert.equal(stale.responses[0]?.response_range?.kvs[0]?.value.toString(), 'owner=alice')
    const ok = await etcd.if('groups/g3', 'Value', '==', 'owner=alice').then(etcd.put('groups/g3').value('owner=bob')).commit()
    assert.equal(ok.succeeded, true)
    assert.equal(await etcd.get('groups/g3').string(), 'owner=bob')
  })

  await t.test('a lease kept alive outlives its TTL; revoking it deletes its keys', async () => {
    const lease = etcd.lease(1) // the shortest TTL etcd grants with these Raft timings
    t.after(() => lease.revoke().catch(() => {}))
    let keptAlive = 0
    lease.on('keepaliveSucceeded', () => { keptAlive++ })
    await lease.put('presence/alice').value('tracker-1')
    // keepalives go out every TTL/3, the first at once: the fifth comes 1.33 s in, past the 1 s TTL
    await waitFor(() => (keptAlive >= 5 ? true : undefined), 'five lease keepalives')
    assert.equal(await etcd.get('presence/alice').string(), 'tracker-1')
    await lease.revoke()
    assert.equal(await etcd.get('presence/alice').string(), null)
  })

  await t.test('a lease that is not kept alive expires and its keys disappear', async () => {
    const lease = etcd.lease(1, { autoKeepAlive: false })
    await lease.put('presence/bob').value('tracker-2')
    assert.equal(await etcd.get('presence/bob').string(), 'tracker-2')
    await waitFor(async () => ((await etcd.get('presence/bob').string()) === null ? true : undefined), 'the lease to expire', 5_000)
  })

  await t.test('a watch from a past revision replays what happened since, then follows new changes', async () => {
    const first = await etcd.put('files/f1').value('1').exec()
    await etcd.put('files/f2').value('2')
    await etcd.delete().key('files/f1')
    const seen: string[] = []
    const watcher = await etcd.watch().prefix('files/').startRevision(first.header.revision).create()
    t.after(() => watcher.cancel())
    watcher.on('put', (kv: IKeyValue) => seen.push(`put ${kv.key.toString()}=${kv.value.toString()}`))
    watcher.on('delete', (kv: IKeyValue) => seen.push(`delete ${kv.key.toString()}`))
    await waitFor(() => (seen.length >= 3 ? true : undefined), 'the replayed events')
    await etcd.put('files/f3').value('3')
    await waitFor(() => (seen.length >= 4 ? true : undefined), 'the live event')
    assert.deepEqual(seen, ['put files/f1=1', 'put files/f2=2', 'delete files/f1', 'put files/f3=3'])
  })
})

test('with 2 of 3 etcd members down, a write fails at its deadline instead of hanging', async (t) => {
  const cluster = await startEtcdCluster(t, { members: 3 })
  const etcd = connect(t, cluster.endpoints)
  await etcd.put('k').value('before').options(within(2_000))

  const [m1, m2, m3] = cluster.members as [typeof cluster.members[0], typeof cluster.members[0], typeof cluster.members[0]]
  await m2.kill()
  await m3.kill()
  // it fails rather than hangs: at our deadline, or earlier when etcd itself gives up on the proposal
  // ("request timed out", UNAVAILABLE) — which of the two comes first depends on the Raft timers
  await assert.rejects(etcd.put('k').value('without quorum').options(within(1_000)).exec(),
    (err: unknown) => err instanceof GRPCDeadlineExceededError || err instanceof GRPCUnavailableError)
  // a serializable read is answered by the surviving member from its own (possibly stale) data
  assert.equal(await etcd.get('k').serializable(true).options(within(1_000)).string(), 'before')

  // one member back restores quorum, and the same client writes again without being rebuilt
  await m2.start()
  await etcd.put('k').value('after').options(within(5_000))
  assert.equal(await etcd.get('k').string(), 'after')
  assert.equal(m1.running, true)
})
