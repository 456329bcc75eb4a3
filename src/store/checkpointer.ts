// WAL checkpoints for the SQLite store, off the tracker's JS thread. SQLite's automatic checkpoint
// runs inside the COMMIT that crosses 1000 WAL pages: it copies the pages back into the database
// and fsyncs both files on the one JS thread, up to ~5 ms measured under the tracker bench, which
// every request queued behind it waits for. Instead the store's connection runs with
// wal_autocheckpoint=0 and a worker thread, with its own connection, runs PASSIVE checkpoints on
// a timer. A PASSIVE checkpoint takes no lock a writer needs, so the store's connection never
// waits for it. The writer then only rewinds the WAL after a checkpoint caught up
// (SQLite does that at the next BEGIN, without waiting). If the worker fails, the store's
// connection gets automatic checkpoints back, so the WAL never grows without bound.

import type { DatabaseSync } from 'node:sqlite'
import { Worker } from 'node:worker_threads'
import { createLog } from '../common/log.ts'

interface CheckpointInit { path: string, intervalMs: number }
/** After each checkpoint that copied frames: how many, and how long it took (on the worker's thread). */
interface CheckpointReport { frames: number, ms: number }

// The worker's code, plain JavaScript run with `eval`: a .ts worker would load its own TypeScript
// stripper, ~11 MB more RSS for a dozen lines (measured: 28 MB for the .ts worker, 17.5 MB this way).
// In: workerData (CheckpointInit), then 'stop'. Out: CheckpointReport. On 'stop' it closes its
// connection (not the last one, the store's is open: the WAL stays) and its port, and so exits.
const WORKER_CODE = `
const { DatabaseSync } = require('node:sqlite')
const { parentPort, workerData } = require('node:worker_threads')
// no busy wait: a PASSIVE checkpoint that meets a lock does what it can and returns
const db = new DatabaseSync(workerData.path, { timeout: 0 })
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)')
let last = -1
const timer = setInterval(() => {
  const t0 = performance.now()
  // log: frames in the WAL; checkpointed: frames copied back (both restart from 0 when the writer rewinds the WAL)
  const r = checkpoint.get()
  if (r === undefined || r.checkpointed === last) return // nothing new: an idle store costs one cheap statement a tick
  last = r.checkpointed
  if (r.checkpointed > 0) parentPort.postMessage({ frames: r.checkpointed, ms: performance.now() - t0 })
}, workerData.intervalMs)
parentPort.on('message', (msg) => {
  if (msg !== 'stop') return
  clearInterval(timer)
  db.close()
  parentPort.close()
})
`

const log = createLog('store:checkpoint')

/** How often the worker checkpoints: ~100 ms of writes is at most a few MB of WAL under load. */
export const CHECKPOINT_INTERVAL_MS = 100
/** SQLite's default, restored when the worker is gone. */
const AUTO_CHECKPOINT_PAGES = 1000

export interface CheckpointStats {
  /** Checkpoints that found frames to copy. */
  checkpoints: number
  /** The longest of them, ms (on the worker's thread). */
  maxMs: number
}

export class Checkpointer {
  readonly #db: DatabaseSync
  readonly #worker: Worker
  readonly #stats: CheckpointStats = { checkpoints: 0, maxMs: 0 }
  #stopped: Promise<void> | undefined
  #running = true

  /** Starts checkpointing `path`, whose writing connection is `db`. */
  constructor (db: DatabaseSync, path: string, intervalMs = CHECKPOINT_INTERVAL_MS) {
    this.#db = db
    db.exec('PRAGMA wal_autocheckpoint = 0')
    this.#worker = new Worker(WORKER_CODE, { eval: true, workerData: { path, intervalMs } satisfies CheckpointInit })
    this.#worker.unref() // the store's close() stops it; it must not keep a process alive by itself
    this.#worker.on('message', (msg: CheckpointReport) => {
      this.#stats.checkpoints++
      this.#stats.maxMs = Math.max(this.#stats.maxMs, msg.ms)
    })
    this.#worker.on('error', (err) => {
      log.warn('checkpoint worker failed: back to automatic checkpoints', { err })
      this.#fallBack()
    })
    this.#worker.on('exit', () => this.#fallBack())
  }

  get stats (): CheckpointStats {
    return { ...this.#stats }
  }

  /** Stops the worker and closes its connection; call before closing the store's connection. Idempotent. */
  stop (): Promise<void> {
    this.#stopped ??= new Promise<void>((resolve) => {
      if (!this.#running) { resolve(); return }
      this.#running = false // its exit is expected now: no fallback
      this.#worker.once('exit', () => resolve())
      this.#worker.ref() // a close() awaiting it must keep the process alive until it is done
      this.#worker.postMessage('stop')
    })
    return this.#stopped
  }

  #fallBack (): void {
    if (!this.#running) return
    this.#running = false
    try {
      this.#db.exec(`PRAGMA wal_autocheckpoint = ${AUTO_CHECKPOINT_PAGES}`)
    } catch (err) {
      log.warn('cannot restore automatic checkpoints', { err })
    }
  }
}
