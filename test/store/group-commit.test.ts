// Group commit on a real file, with the sync thread and without it: coalescing, failure, a caller
// giving up on the wait, and (with the thread) an acknowledgement that needs no event-loop turn.

import assert from 'node:assert/strict'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { GroupCommit } from '../../src/store/group-commit.ts'
import { defer } from '../helpers/cleanup.ts'
import { tmpDir } from '../helpers/tmp.ts'

async function walFile (t: Parameters<typeof tmpDir>[0]) {
  const fh = await open(join(await tmpDir(t), 'x.db-wal'), 'w+')
  defer(t, () => fh.close().catch(() => undefined)) // some tests close it themselves
  return fh
}

for (const syncThread of [true, false]) {
  describe(`GroupCommit ${syncThread ? 'with its sync thread' : 'on the threadpool'}`, () => {
    async function groupCommit (t: Parameters<typeof tmpDir>[0]): Promise<GroupCommit> {
      const gc = new GroupCommit(await walFile(t), { syncThread })
      defer(t, () => gc.drain())
      return gc
    }

    it('covers every write of an event-loop turn with one fsync', async (t) => {
      const gc = await groupCommit(t)
      await Promise.all(Array.from({ length: 50 }, () => gc.durable()))
      assert.deepEqual(gc.stats, { syncs: 1, waits: 50 })
      await gc.durable()
      assert.deepEqual(gc.stats, { syncs: 2, waits: 51 })
    })

    it('serves a write committed after its turn\'s fsync was asked for, with at most one more fsync', async (t) => {
      const gc = await groupCommit(t)
      const first = gc.durable()
      await new Promise((resolve) => setImmediate(resolve)) // the first fsync is asked for
      const second = gc.durable()
      await Promise.all([first, second])
      // the thread may not have started the first one yet: then one fsync covers both
      const { syncs, waits } = gc.stats
      assert.equal(waits, 2)
      assert.ok(syncs === 2 || (syncThread && syncs === 1), `${syncs} fsyncs`)
    })

    it('fails every waiter, and every later call, once an fsync fails', async (t) => {
      const fh = await walFile(t)
      const gc = new GroupCommit(fh, { syncThread })
      await fh.close() // the next fdatasync gets EBADF, standing in for EIO
      const results = await Promise.allSettled([gc.durable(), gc.durable(), gc.durable()])
      for (const r of results) {
        assert.equal(r.status, 'rejected')
        assert.equal((r.reason as { code?: unknown }).code, 'STORE_UNAVAILABLE')
      }
      await assert.rejects(gc.durable(), { code: 'STORE_UNAVAILABLE', message: /could not write its database to disk/ })
      await gc.drain()
    })

    it('lets a caller stop waiting through its signal, and drain still waits for the fsyncs', async (t) => {
      const gc = await groupCommit(t)
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
}

it('with the sync thread, a busy event loop acknowledges a write as soon as it looks (poll), without a turn', async (t) => {
  const gc = new GroupCommit(await walFile(t))
  defer(t, () => gc.drain())
  let acked = false
  void gc.durable().then(() => { acked = true })
  await new Promise((resolve) => setImmediate(resolve)) // the end of the turn: the fsync is asked for
  // a long turn: this thread never yields while the sync thread works
  const deadline = performance.now() + 10_000
  while (gc.stats.syncs === 0) if (performance.now() > deadline) assert.fail('no fsync within 10 s')
  assert.equal(acked, false)
  gc.poll()
  for (let i = 0; i < 10 && !acked; i++) await null // microtasks only: no event-loop phase runs here
  assert.equal(acked, true)
})

it('with the sync thread, a write in a turn that never ends has its fsync asked for after a few ms', async (t) => {
  const gc = new GroupCommit(await walFile(t))
  defer(t, () => gc.drain())
  let acked = false
  void gc.durable().then(() => { acked = true })
  // one long turn from here to the end: setImmediate never runs, only the store's calls (poll) do
  const deadline = performance.now() + 10_000
  while (gc.stats.syncs === 0) {
    gc.poll()
    if (performance.now() > deadline) assert.fail('no fsync within 10 s')
  }
  gc.poll()
  for (let i = 0; i < 10 && !acked; i++) await null // microtasks only
  assert.equal(acked, true)
})

it('with the sync thread, drain() right after an fsync is reported always stops the thread', async (t) => {
  // The thread goes back to waiting right after it reports an fsync. A stop asked for in that window
  // (the store closing right after its last write) once reached a thread not yet waiting, and was lost:
  // close() then waited for the thread forever. Spinning on poll() puts the stop right in that window.
  const fh = await walFile(t)
  for (let i = 0; i < 200; i++) {
    const gc = new GroupCommit(fh)
    const acked = gc.durable()
    while (gc.stats.syncs === 0) gc.poll() // one long turn: sees the fsync the moment it is reported
    gc.poll()
    const stopped = gc.drain().then(() => true) // no fsync pending: asks the thread to stop at once
    await acked
    const timeout = new Promise<boolean>((resolve) => { const timer = setTimeout(resolve, 10_000, false); void stopped.then(() => clearTimeout(timer)) })
    assert.equal(await Promise.race([stopped, timeout]), true, `drain ${i} did not return within 10 s`)
  }
})
