// WAL checkpoints for the SQLite store, off the tracker's JS thread. SQLite's automatic checkpoint
// runs inside the COMMIT that crosses 1000 WAL pages: it copies the pages back into the database
// and fsyncs both files on the one JS thread, up to ~5 ms measured under the tracker bench, which
// every request queued behind it waits for. Instead the store's connection runs with
// wal_autocheckpoint=0 and a worker thread, with its own connection, runs PASSIVE checkpoints on
// a timer. A PASSIVE checkpoint takes no lock a writer needs, so the store's connection never
// waits for it. The writer then only rewinds the WAL after a checkpoint caught up
// (SQLite does that at the next BEGIN, without waiting). If the worker fails, the store's
// connection gets automatic checkpoints back, so the WAL never grows without bound.
//
// Catching up: the writer rewinds the WAL only when a checkpoint copied every frame, and under a
// steady stream of writes (the tracker bench: ~2,000 a second) new frames arrive while the worker
// copies, so it never quite catches up. The WAL then grew to ~100 MB, until a write found it caught
// up by chance, and SQLite truncated it back to journal_size_limit on the writer's thread: with the
// file system mounted with `discard`, 8-25 ms in do_truncate on the JS thread (perf sched), which
// every request waited for. So once the WAL holds RESET_FRAMES, the worker asks the store to hold
// new writes (a write is one synchronous transaction: none is half done when the message is
// handled), copies the few frames left, and lets them go: the next write rewinds the WAL to its
// start, and the file keeps its size (below journal_size_limit), so nothing is truncated. Writes
// wait one checkpoint of ~100 ms of frames, once per RESET_FRAMES; reads never wait.

import type { DatabaseSync } from 'node:sqlite'
import { Worker } from 'node:worker_threads'
import { createLog } from '../common/log.ts'

interface CheckpointInit {
  path: string
  intervalMs: number
  resetFrames: number
  /** One Int32: 1 once the catch-up checkpoint ran (writes read it before its message arrives). */
  catchUpRan: SharedArrayBuffer
}
type FromWorker =
  /** After each checkpoint that copied frames: how many, and how long it took (on the worker's thread). */
  | { t: 'done', frames: number, ms: number }
  /** The WAL holds resetFrames: hold writes and answer 'paused'. */
  | { t: 'pause' }
  /** The catch-up checkpoint ran: writes may go on (caughtUp: it copied every frame). */
  | { t: 'resume', caughtUp: boolean, ms: number }

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
const catchUpRan = new Int32Array(workerData.catchUpRan)
let last = -1
let pausing = false
const timer = setInterval(() => {
  if (pausing) return
  const t0 = performance.now()
  // log: frames in the WAL; checkpointed: frames copied back (both restart from 0 when the writer rewinds the WAL)
  const r = checkpoint.get()
  if (r === undefined || r.checkpointed === last) return // nothing new: an idle store costs one cheap statement a tick
  last = r.checkpointed
  if (r.checkpointed > 0) parentPort.postMessage({ t: 'done', frames: r.checkpointed, ms: performance.now() - t0 })
  if (r.log >= workerData.resetFrames) {
    pausing = true
    parentPort.postMessage({ t: 'pause' })
  }
}, workerData.intervalMs)
parentPort.on('message', (msg) => {
  if (msg === 'paused') {
    const t0 = performance.now()
    const r = checkpoint.get() // no writer now: it copies every frame left
    pausing = false
    Atomics.store(catchUpRan, 0, 1)
    parentPort.postMessage({ t: 'resume', caughtUp: r !== undefined && r.checkpointed === r.log, ms: performance.now() - t0 })
    return
  }
  if (msg !== 'stop') return
  clearInterval(timer)
  db.close()
  parentPort.close()
})
`

const log = createLog('store:checkpoint')

/** How often the worker checkpoints: ~100 ms of writes is at most a few MB of WAL under load. */
export const CHECKPOINT_INTERVAL_MS = 100
/** WAL frames (4 KiB pages) at which writes pause for a checkpoint to catch up: ~16 MiB of WAL. */
export const RESET_FRAMES = 4096
/** Writes never wait longer than this for a catch-up, whatever happens to the worker. */
const MAX_PAUSE_MS = 100
/** SQLite's default, restored when the worker is gone. */
const AUTO_CHECKPOINT_PAGES = 1000

export interface CheckpointStats {
  /** Checkpoints that found frames to copy. */
  checkpoints: number
  /** The longest of them, ms (on the worker's thread). */
  maxMs: number
  /** Times writes paused for a catch-up checkpoint, and how many of those copied every frame. */
  pauses: number
  caughtUp: number
}

export interface CheckpointerOptions {
  intervalMs?: number
  resetFrames?: number
}

export class Checkpointer {
  readonly #db: DatabaseSync
  readonly #worker: Worker
  readonly #stats: CheckpointStats = { checkpoints: 0, maxMs: 0, pauses: 0, caughtUp: 0 }
  /** Set while writes are held for a catch-up: resolved when they may go. */
  #pause: PromiseWithResolvers<void> | undefined
  #pauseTimer: NodeJS.Timeout | undefined
  readonly #catchUpRan = new Int32Array(new SharedArrayBuffer(4))
  #stopped: Promise<void> | undefined
  #running = true

  /** Starts checkpointing `path`, whose writing connection is `db`. */
  constructor (db: DatabaseSync, path: string, opts: CheckpointerOptions = {}) {
    this.#db = db
    db.exec('PRAGMA wal_autocheckpoint = 0')
    const init: CheckpointInit = {
      path,
      intervalMs: opts.intervalMs ?? CHECKPOINT_INTERVAL_MS,
      resetFrames: opts.resetFrames ?? RESET_FRAMES,
      catchUpRan: this.#catchUpRan.buffer as SharedArrayBuffer,
    }
    this.#worker = new Worker(WORKER_CODE, { eval: true, workerData: init })
    this.#worker.unref() // the store's close() stops it; it must not keep a process alive by itself
    this.#worker.on('message', (msg: FromWorker) => this.#onMessage(msg))
    this.#worker.on('error', (err) => {
      log.warn('checkpoint worker failed: back to automatic checkpoints', { err })
      this.#fallBack()
    })
    this.#worker.on('exit', () => this.#fallBack())
  }

  get stats (): CheckpointStats {
    return { ...this.#stats }
  }

  /**
   * While the store's writes are held for a catch-up: what a write waits for before its transaction
   * (writes already waiting go first, in order). undefined: write now. The catch-up's message reaches
   * this thread only at the next poll of the event loop, up to a whole turn later (hundreds of ms with
   * 2,000 busy connections), so a write arriving in between ends the pause itself once it ran.
   */
  writesHeld (): Promise<void> | undefined {
    const pause = this.#pause
    if (pause !== undefined && Atomics.load(this.#catchUpRan, 0) === 1) this.#endPause()
    return pause?.promise
  }

  /** Stops the worker and closes its connection; call before closing the store's connection. Idempotent. */
  stop (): Promise<void> {
    this.#stopped ??= new Promise<void>((resolve) => {
      if (!this.#running) { resolve(); return }
      this.#running = false // its exit is expected now: no fallback
      this.#endPause()
      this.#worker.once('exit', () => resolve())
      this.#worker.ref() // a close() awaiting it must keep the process alive until it is done
      this.#worker.postMessage('stop')
    })
    return this.#stopped
  }

  #onMessage (msg: FromWorker): void {
    switch (msg.t) {
      case 'done':
        this.#stats.checkpoints++
        this.#stats.maxMs = Math.max(this.#stats.maxMs, msg.ms)
        break
      case 'pause':
        if (!this.#running || this.#pause !== undefined) break
        this.#stats.pauses++
        Atomics.store(this.#catchUpRan, 0, 0)
        this.#pause = Promise.withResolvers<void>()
        this.#pauseTimer = setTimeout(() => this.#endPause(), MAX_PAUSE_MS)
        this.#worker.postMessage('paused')
        break
      case 'resume':
        if (msg.caughtUp) this.#stats.caughtUp++
        this.#stats.maxMs = Math.max(this.#stats.maxMs, msg.ms)
        this.#endPause()
        break
    }
  }

  #endPause (): void {
    clearTimeout(this.#pauseTimer)
    this.#pause?.resolve()
    this.#pause = undefined
  }

  #fallBack (): void {
    this.#endPause()
    if (!this.#running) return
    this.#running = false
    try {
      this.#db.exec(`PRAGMA wal_autocheckpoint = ${AUTO_CHECKPOINT_PAGES}`)
    } catch (err) {
      log.warn('cannot restore automatic checkpoints', { err })
    }
  }
}
