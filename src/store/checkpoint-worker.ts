// Worker thread (node:worker_threads) of checkpointer.ts: its own connection to the tracker's
// database, running PASSIVE checkpoints on a timer. A PASSIVE checkpoint takes no lock a writer
// needs, so the store's connection never waits for it. Messages in: 'stop'. Out: CheckpointReport
// after each checkpoint that moved pages, and once after 'stop' when its connection is closed.

import { DatabaseSync } from 'node:sqlite'
import { parentPort, workerData } from 'node:worker_threads'

export interface CheckpointInit { path: string, intervalMs: number }

export type CheckpointReport =
  | { kind: 'checkpoint', frames: number, ms: number }
  | { kind: 'stopped' }

const port = parentPort
if (port === null) throw new Error('checkpoint-worker.ts runs as a worker thread')
const init = workerData as CheckpointInit
// no busy wait: a PASSIVE checkpoint that meets a lock does what it can and returns
const db = new DatabaseSync(init.path, { timeout: 0 })
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)')

let last = -1
const timer = setInterval(() => {
  const t0 = performance.now()
  // log: frames in the WAL; checkpointed: frames copied back by now (both restart from 0 when the writer rewinds the WAL)
  const r = checkpoint.get() as { busy: number, log: number, checkpointed: number } | undefined
  if (r === undefined || r.checkpointed === last) return // nothing new: an idle store costs one cheap statement per tick
  last = r.checkpointed
  if (r.checkpointed > 0) port.postMessage({ kind: 'checkpoint', frames: r.checkpointed, ms: performance.now() - t0 } satisfies CheckpointReport)
}, init.intervalMs)

port.on('message', (msg: unknown) => {
  if (msg !== 'stop') return
  clearInterval(timer)
  db.close() // not the last connection (the store's is open): the WAL is left as it is
  port.postMessage({ kind: 'stopped' } satisfies CheckpointReport)
  port.close()
})
