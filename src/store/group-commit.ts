// Group commit for the SQLite store: one fdatasync of the WAL file covers every write committed
// before it started. Owns the durability state; knows nothing of SQL (sqlite.ts commits, then waits
// here before acknowledging).
//
// Why: node:sqlite is synchronous, so `synchronous=FULL` would fsync on the one JS thread at every
// commit. Instead SQLite runs with `synchronous=NORMAL` (a commit is a write() into the -wal file,
// no fsync) and acknowledgements wait for an fdatasync on another thread. One is asked for at the end
// of each event-loop turn that committed writes (setImmediate) and covers all of them; in a turn
// that runs long, also once the oldest write not yet covered has waited MAX_UNASKED_MS.
//
// Why a sync thread of its own rather than libuv's threadpool (FileHandle.datasync()): under the
// tracker bench the syscall takes 0.35 ms (median, perf trace), but its completion reached JS 2 ms
// later (median; 5 ms at p90). A threadpool completion waits for the event loop's next poll, behind
// the hundreds of socket events of a busy turn. The sync thread publishes how far it got in shared
// memory, and the store looks there at every call (poll()), so a busy tracker acknowledges a write
// during the turn its fsync finished in; a message from the thread wakes an idle one. Starting an
// fsync at every commit instead of once per turn was tried: 4-5 times the fsyncs, ~15% fewer
// requests/s on 2 cores (the fsyncs' CPU, and a wake-up message each).
//
// The thread is plain JavaScript run with `eval` (~10 MB less than a .ts worker, checkpointer.ts).
// If it fails, or cannot start, the store goes on with FileHandle.datasync().

import type { FileHandle } from 'node:fs/promises'
import { getSystemErrorName } from 'node:util'
import { Worker } from 'node:worker_threads'
import { PeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'

export interface GroupCommitStats {
  /** fdatasync calls completed. */
  syncs: number
  /** durable() calls (acknowledged writes). */
  waits: number
}

const log = createLog('store:sync')

// The shared Int32Array's slots. Sequence numbers wrap around: they are compared by difference.
/** The last commit an fsync was asked for (main thread writes). */
const WANTED = 0
/** The last commit covered by a completed fsync (sync thread writes). */
const SYNCED = 1
/** 0, or the errno (positive) of a failed fdatasync (sync thread writes). */
const FAILED = 2
/** 1: the sync thread ends (main thread writes, then moves WANTED to wake it). */
const STOP = 3
/** fdatasync calls completed (sync thread writes). */
const SYNCS = 4
const SLOTS = 5

const SYNC_THREAD_CODE = `
const { parentPort, workerData } = require('node:worker_threads')
const { fdatasyncSync } = require('node:fs')
const s = new Int32Array(workerData.shared)
let synced = 0
for (;;) {
  // WANTED first, then STOP: a stop moves WANTED too (drain), so a stop that comes after this check
  // makes the wait below return at once instead of being lost
  const wanted = Atomics.load(s, ${WANTED})
  if (Atomics.load(s, ${STOP}) === 1) break
  if (wanted === synced) { Atomics.wait(s, ${WANTED}, wanted); continue }
  try {
    fdatasyncSync(workerData.fd)
  } catch (err) {
    Atomics.store(s, ${FAILED}, typeof err.errno === 'number' && err.errno !== 0 ? Math.abs(err.errno) : 5)
    parentPort.postMessage(0)
    break
  }
  synced = wanted
  Atomics.add(s, ${SYNCS}, 1)
  Atomics.store(s, ${SYNCED}, synced)
  parentPort.postMessage(0) // wakes an idle event loop; a busy one has looked at SYNCED already
}
`

/** libuv's threadpool has four threads: more fsyncs at once would only queue there. */
const MAX_THREADPOOL_SYNCS = 4
/**
 * A write waits at most this long for its fsync to be asked for, whether or not its turn has ended.
 * With 2,000 busy connections libuv's poll phase can run for hundreds of milliseconds (it polls again
 * while epoll returns full batches) before setImmediate runs.
 */
const MAX_UNASKED_MS = 5

/** Writes covered by one asked-for fsync: done once the sync thread reports `seq` synced. */
interface Asked {
  seq: number
  writes: PromiseWithResolvers<void>
}

export class GroupCommit {
  readonly #fh: FileHandle
  readonly #s = new Int32Array(new SharedArrayBuffer(SLOTS * 4))
  #thread: Worker | undefined
  /** Writes committed since the last fsync was asked for (or started, without the thread): the next one covers them. */
  #next: PromiseWithResolvers<void> | undefined
  /** When the first of them committed. */
  #nextSince = 0
  /** Asked-for fsyncs not reported done yet, oldest first (sequence numbers wrap around). */
  #asked: Asked[] = []
  #seq = 0
  /** A sync is due at the end of this turn. */
  #scheduled = false
  #failed: PeershareError | undefined
  #waits = 0
  /** Without the thread (it failed): fsyncs running in the threadpool. */
  readonly #running = new Set<Promise<void>>()
  #threadpoolSyncs = 0

  /** `syncThread: false`: FileHandle.datasync() only (tests run both ways). */
  constructor (walHandle: FileHandle, opts: { syncThread?: boolean } = {}) {
    this.#fh = walHandle
    if (opts.syncThread === false) return
    try {
      this.#thread = new Worker(SYNC_THREAD_CODE, { eval: true, workerData: { fd: walHandle.fd, shared: this.#s.buffer } })
    } catch (err) {
      log.warn('cannot start the sync thread: fsyncs go to the threadpool', { err })
      return
    }
    this.#thread.unref() // ref'd only while writes wait; close() stops it
    this.#thread.on('message', () => this.poll())
    this.#thread.on('error', (err) => log.warn('the sync thread failed: fsyncs go to the threadpool', { err }))
    this.#thread.on('exit', () => this.#threadGone())
  }

  get stats (): GroupCommitStats {
    return { syncs: Atomics.load(this.#s, SYNCS) + this.#threadpoolSyncs, waits: this.#waits }
  }

  /**
   * Resolves once everything committed before this call is on stable storage. The signal only
   * stops the waiting: the write itself is committed and will most likely become durable.
   */
  async durable (signal?: AbortSignal): Promise<void> {
    if (this.#failed !== undefined) throw this.#failed
    this.#waits++
    if (this.#next === undefined) {
      if (this.#asked.length === 0) this.#thread?.ref() // its message must be able to wake this thread
      this.#next = Promise.withResolvers<void>()
      this.#next.promise.catch(() => {}) // writers that stopped waiting (signal) leave it unobserved
      this.#nextSince = performance.now()
    }
    const done = this.#next.promise
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(() => this.#sync())
    }
    if (signal === undefined) return await done
    signal.throwIfAborted()
    const aborted = Promise.withResolvers<never>()
    const onAbort = (): void => aborted.reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      await Promise.race([done, aborted.promise])
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  }

  /**
   * Acknowledges the writes whose fsync has completed, and asks for one for writes that waited
   * MAX_UNASKED_MS. A clock read and two atomic loads while writes wait, nothing otherwise: the store
   * calls it at every call (a write's included, just before its durable()), which is how a busy
   * event loop learns of an fsync without a turn.
   */
  poll (): void {
    if (this.#thread === undefined) return
    if (this.#next !== undefined && performance.now() - this.#nextSince > MAX_UNASKED_MS) this.#ask()
    if (this.#asked.length === 0) return
    const failed = Atomics.load(this.#s, FAILED)
    if (failed !== 0) {
      const code = errnoName(failed)
      this.#fail(Object.assign(new Error(`fdatasync failed: ${code}`), { code }))
      return
    }
    const synced = Atomics.load(this.#s, SYNCED)
    let n = 0
    while (n < this.#asked.length && ((synced - this.#asked[n]!.seq) | 0) >= 0) this.#asked[n++]!.writes.resolve()
    if (n > 0) this.#asked.splice(0, n)
    if (this.#asked.length === 0 && this.#next === undefined) this.#thread.unref()
  }

  /** Waits for every write's fsync, then stops the sync thread (before the WAL handle is closed). */
  async drain (): Promise<void> {
    while (this.#asked.length > 0 || this.#running.size > 0 || this.#next !== undefined) {
      // errors already reached the writers that waited for these syncs
      await Promise.allSettled([...this.#asked.map((a) => a.writes.promise), ...this.#running, this.#next?.promise])
    }
    const thread = this.#thread
    if (thread === undefined) return
    this.#thread = undefined
    const exited = new Promise<void>((resolve) => thread.once('exit', () => resolve()))
    thread.ref() // a close() awaiting it must keep the process alive until it is done
    // STOP, then a move of WANTED: a thread between its checks and its wait would sleep through a
    // notify alone (a lost wake-up that once hung close() for good); the move makes its wait return
    Atomics.store(this.#s, STOP, 1)
    Atomics.add(this.#s, WANTED, 1)
    Atomics.notify(this.#s, WANTED)
    await exited
  }

  /** The end of a turn that committed writes: one fsync for all of them. */
  #sync (): void {
    this.#scheduled = false
    if (this.#thread !== undefined) this.#ask()
    else this.#threadpoolSync()
  }

  /** Hands the writes committed so far to the sync thread's next fsync. */
  #ask (): void {
    const writes = this.#next
    if (writes === undefined) return
    this.#next = undefined
    this.#seq = (this.#seq + 1) | 0
    this.#asked.push({ seq: this.#seq, writes })
    Atomics.store(this.#s, WANTED, this.#seq)
    Atomics.notify(this.#s, WANTED)
  }

  #fail (cause: unknown): void {
    // After a failed fsync the kernel may have dropped the dirty pages (Linux "fsyncgate"): nothing
    // written since can be trusted, so the store refuses every later write.
    this.#failed ??= new PeershareError('STORE_UNAVAILABLE', 'the tracker could not write its database to disk', { cause })
    const asked = this.#asked
    this.#asked = []
    this.#thread?.unref()
    for (const a of asked) a.writes.reject(this.#failed)
    this.#next?.reject(this.#failed)
    this.#next = undefined
  }

  /** The thread ended unasked (it failed, or could not start): the writes waiting for it go on without it. */
  #threadGone (): void {
    if (this.#thread === undefined) return // drain() stopped it
    this.poll()
    this.#thread = undefined
    if (this.#failed !== undefined || this.#asked.length === 0) return
    const asked = this.#asked
    this.#asked = []
    this.#next ??= Promise.withResolvers<void>()
    this.#next.promise.then(() => { for (const a of asked) a.writes.resolve() }, (err: unknown) => { for (const a of asked) a.writes.reject(err) })
    this.#threadpoolSync()
  }

  /** Without the thread: FileHandle.datasync(), without waiting for the ones in flight. */
  #threadpoolSync (): void {
    const covered = this.#next
    if (covered === undefined || this.#running.size >= MAX_THREADPOOL_SYNCS) return // a finishing fsync starts it
    this.#next = undefined
    const run: Promise<void> = this.#fh.datasync().then(
      () => {
        this.#threadpoolSyncs++
        // a later fsync can succeed after an earlier one failed: the pages that one lost stay lost
        if (this.#failed !== undefined) covered.reject(this.#failed)
        else covered.resolve()
      },
      (err: unknown) => {
        this.#fail(err)
        covered.reject(this.#failed)
      }).finally(() => {
      this.#running.delete(run)
      this.#threadpoolSync()
    })
    this.#running.add(run)
  }
}

function errnoName (errno: number): string {
  try {
    return getSystemErrorName(-errno)
  } catch {
    return `errno ${errno}`
  }
}
