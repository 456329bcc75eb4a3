// WAL checkpoints in a worker thread: they happen while the store writes, the writer rewinds the
// WAL after them (it does not grow with every write, even when writes never stop), and closing
// leaves a complete database.

import assert from 'node:assert/strict'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, it } from 'node:test'
import { openSqliteStore } from '../../src/store/sqlite.ts'
import { defer } from '../helpers/cleanup.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { waitFor } from '../helpers/wait.ts'

const HASH = 'x'.repeat(2000) // about half a page per user row

describe('sqlite store checkpoints', () => {
  it('are run by the worker while the store writes, and keep the WAL from growing with every write', async (t) => {
    const path = join(await tmpDir(t), 'tracker.db')
    const store = await openSqliteStore(path)
    let n = 0
    const writeBatch = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++, n++) await store.createUser({ userId: `u${n}`, passwordHash: HASH, createdAt: n })
    }
    await writeBatch(200)
    await waitFor(() => (store.checkpointStats?.checkpoints ?? 0) > 0 ? true : undefined, 'a checkpoint by the worker')
    // frames in the WAL (a second connection's PASSIVE checkpoint reports them): one batch is
    // ~1000 frames, so without checkpoints and rewinds they would add up to ~10,000
    const spy = new DatabaseSync(path)
    let largest = 0
    for (let b = 0; b < 10; b++) {
      const seen = store.checkpointStats!.checkpoints
      await writeBatch(200)
      largest = Math.max(largest, (spy.prepare('PRAGMA wal_checkpoint(PASSIVE)').get() as { log: number }).log)
      await waitFor(() => store.checkpointStats!.checkpoints > seen ? true : undefined, 'the next checkpoint')
    }
    spy.close()
    await store.close()
    assert.ok(largest < 3000, `the WAL grew to ${largest} frames`)

    const db = new DatabaseSync(path, { readOnly: true })
    defer(t, () => db.close())
    assert.equal((db.prepare('SELECT count(*) AS n FROM users').get() as { n: number }).n, n)
  })

  it('hold writes while a checkpoint catches up, so a stream of writes with no gap still rewinds the WAL', async (t) => {
    const path = join(await tmpDir(t), 'tracker.db')
    const store = await openSqliteStore(path, { checkpoints: { intervalMs: 20, resetFrames: 64 } })
    defer(t, () => store.close())
    await store.createUser({ userId: 'first', passwordHash: HASH, createdAt: 0 })
    await waitFor(() => (store.checkpointStats?.checkpoints ?? 0) > 0 ? true : undefined, 'the worker running')
    // a few writes every event-loop turn, none waiting for the last: the WAL never has a moment
    // without a writer, so only a pause lets a checkpoint copy every frame
    const total = 3000
    const acks: Array<Promise<void>> = []
    let largest = 0
    await new Promise<void>((resolve) => {
      const turn = (): void => {
        for (let k = 0; k < 5 && acks.length < total; k++) {
          const i = acks.length
          acks.push(store.createUser({ userId: `u${i}`, passwordHash: HASH, createdAt: i }))
        }
        largest = Math.max(largest, statSync(`${path}-wal`).size)
        if (acks.length < total) setImmediate(turn)
        else resolve()
      }
      turn()
    })
    await Promise.all(acks)
    const stats = store.checkpointStats!
    assert.ok(stats.pauses > 0 && stats.caughtUp > 0, `writes paused for a catch-up (${JSON.stringify(stats)})`)
    // without the pauses this stream never rewinds: ~58 MB of WAL for its 3,000 rows
    assert.ok(largest < 32 * 1024 * 1024, `the WAL grew to ${largest} bytes`)
    await store.close()
    const db = new DatabaseSync(path, { readOnly: true })
    defer(t, () => db.close())
    assert.equal((db.prepare('SELECT count(*) AS n FROM users').get() as { n: number }).n, total + 1, 'no write held back was lost')
  })

  it('stop with the store: close() returns and a reopened store has every write', async (t) => {
    const path = join(await tmpDir(t), 'tracker.db')
    const store = await openSqliteStore(path)
    for (let i = 0; i < 50; i++) await store.createUser({ userId: `u${i}`, passwordHash: HASH, createdAt: i })
    await store.close()
    await store.close() // idempotent
    const again = await openSqliteStore(path)
    try {
      assert.equal((await again.getUser('u49'))?.createdAt, 49)
    } finally {
      await again.close() // before tmpDir's cleanup removes the directory under its worker
    }
  })
})
