// Group commit on a real file: coalescing, failure, and a caller giving up on the wait.

import assert from 'node:assert/strict'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { GroupCommit } from '../../src/store/group-commit.ts'
import { tmpDir } from '../helpers/tmp.ts'

async function walFile (t: Parameters<typeof tmpDir>[0]) {
  const fh = await open(join(await tmpDir(t), 'x.db-wal'), 'w+')
  t.after(() => fh.close().catch(() => undefined)) // some tests close it themselves
  return fh
}

describe('GroupCommit', () => {
  it('covers every write of an event-loop turn with one fsync', async (t) => {
    const gc = new GroupCommit(await walFile(t))
    await Promise.all(Array.from({ length: 50 }, () => gc.durable()))
    assert.deepEqual(gc.stats, { syncs: 1, waits: 50 })
    await gc.durable()
    assert.deepEqual(gc.stats, { syncs: 2, waits: 51 })
  })

  it('starts the next turn\'s fsync without waiting for the one in flight, and both writes are served', async (t) => {
    const gc = new GroupCommit(await walFile(t))
    const first = gc.durable()
    await new Promise((resolve) => setImmediate(resolve)) // the first fsync has started
    const second = gc.durable()
    await Promise.all([first, second])
    assert.deepEqual(gc.stats, { syncs: 2, waits: 2 })
    await gc.drain()
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
    assert.equal(gc.stats.syncs, 1, 'one fsync covered both, whether or not the second still waits')
  })
})
