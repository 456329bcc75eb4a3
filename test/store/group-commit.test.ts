// Group commit on a real file: one fsync per event-loop turn, the threadpool after a slow one,
// failure, and a caller giving up on the wait.

import assert from 'node:assert/strict'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { GroupCommit, SLOW_BACKOFF_MS } from '../../src/store/group-commit.ts'
import { tmpDir } from '../helpers/tmp.ts'

async function walFile (t: Parameters<typeof tmpDir>[0]) {
  const fh = await open(join(await tmpDir(t), 'x.db-wal'), 'w+')
  t.after(() => fh.close().catch(() => undefined)) // some tests close it themselves
  return fh
}

describe('GroupCommit', () => {
  it('covers every write of one turn with one fsync on the JS thread, and a later turn with its own', async (t) => {
    const gc = new GroupCommit(await walFile(t))
    const turn = Array.from({ length: 50 }, () => gc.durable())
    assert.equal(gc.stats.syncs, 0, 'nothing synced before the turn ends')
    await Promise.all(turn)
    assert.deepEqual(gc.stats, { syncs: 1, waits: 50, offloaded: 0 })
    await gc.durable()
    assert.deepEqual(gc.stats, { syncs: 2, waits: 51, offloaded: 0 })
  })

  it('sends fsyncs to the threadpool for a while after a slow one, then back', async (t) => {
    let clock = 0
    // every fsync counts as slow: the first one on the JS thread, the ones after it offloaded
    const gc = new GroupCommit(await walFile(t), { now: () => clock, slowSyncMs: -1 })
    await gc.durable()
    assert.deepEqual(gc.stats, { syncs: 1, waits: 1, offloaded: 0 })
    // writes of three turns while offloaded: each turn's fsync in the threadpool (queued behind one in flight)
    const first = gc.durable()
    await nextTurn()
    const second = gc.durable()
    await nextTurn()
    const third = gc.durable()
    await Promise.all([first, second, third])
    assert.ok(gc.stats.syncs >= 3 && gc.stats.syncs <= 4, `${gc.stats.syncs} fsyncs`)
    assert.equal(gc.stats.offloaded, gc.stats.syncs - 1, 'every fsync after the slow one ran in the threadpool')
    clock += SLOW_BACKOFF_MS + 1
    const offloaded = gc.stats.offloaded
    await gc.durable()
    assert.equal(gc.stats.offloaded, offloaded, 'after the back-off the JS thread syncs again')
  })

  it('fails every waiter, and every later call, once an fsync fails', async (t) => {
    const fh = await walFile(t)
    const gc = new GroupCommit(fh)
    await fh.close() // the next datasync gets EBADF, standing in for EIO
    const results = await Promise.allSettled([gc.durable(), gc.durable(), gc.durable()])
    for (const r of results) {
      assert.equal(r.status, 'rejected')
      assert.equal((r.reason as { code?: unknown }).code, 'STORE_UNAVAILABLE')
    }
    await assert.rejects(gc.durable(), { code: 'STORE_UNAVAILABLE', message: /could not write its database to disk/ })
  })

  it('lets a caller stop waiting through its signal, and drain still waits for the fsyncs', async (t) => {
    const gc = new GroupCommit(await walFile(t))
    const first = gc.durable()
    const ac = new AbortController()
    const second = gc.durable(ac.signal)
    ac.abort(new Error('deadline'))
    await assert.rejects(second, /deadline/)
    await first
    await gc.drain()
    assert.equal(gc.stats.syncs, 1)
  })
})
