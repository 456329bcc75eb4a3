// Group commit for the SQLite store: one fdatasync of the WAL file covers every write committed
// before it started. Owns the WAL file handle and the durability state; knows nothing of SQL
// (sqlite.ts commits, then waits here before acknowledging).
//
// Why: node:sqlite is synchronous, so `synchronous=FULL` would fsync on the one JS thread at every
// commit. Instead SQLite runs with `synchronous=NORMAL` (a commit is a write() into the -wal file,
// no fsync) and acknowledgements wait here. Every write of one event-loop turn shares one fdatasync,
// run when the turn's I/O callbacks are done (setImmediate):
// - on the JS thread while the disk answers fast, as Redis does with `appendfsync always` (before
//   its loop sleeps): the turn's writes are acknowledged in the same turn. Through the threadpool
//   instead, the completion is only seen two turns later (the fsync finishes while the next turn
//   handles its sockets), and with a hundred busy connections a turn is ~4 ms: writes then took 3x
//   as long as reads and made the whole p99 (bench:tracker).
// - in libuv's threadpool (FileHandle.datasync) for SLOW_BACKOFF_MS after one took longer than
//   SLOW_SYNC_MS: a stalling disk then delays writes only, not every read as well. At most one such
//   fsync is in flight and one queued: writes that commit while one is in flight cannot know whether
//   the kernel saw their bytes before the syscall began, so they wait for the next one.

import { fdatasyncSync } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { PeershareError } from '../common/errors.ts'

/** An fsync on the JS thread taking longer than this sends the next ones to the threadpool... */
export const SLOW_SYNC_MS = 10
/** ...for this long; then the JS thread tries again. */
export const SLOW_BACKOFF_MS = 1_000

export interface GroupCommitStats {
  /** fdatasync calls completed. */
  syncs: number
  /** durable() calls (acknowledged writes). */
  waits: number
  /** Of the syncs, those run in the threadpool because the disk had been slow. */
  offloaded: number
}

export interface GroupCommitOptions {
  /** The time base for SLOW_* (tests); defaults to performance.now. */
  now?: () => number
  /** Overrides SLOW_SYNC_MS (tests: 0 sends every fsync after the first to the threadpool). */
  slowSyncMs?: number
}

export class GroupCommit {
  readonly #fh: FileHandle
  readonly #now: () => number
  readonly #slowSyncMs: number
  /** Writes of this turn, waiting for the fsync that setImmediate runs. */
  #turn: PromiseWithResolvers<void> | undefined
  #inFlight: Promise<void> | undefined
  #next: PromiseWithResolvers<void> | undefined
  #failed: PeershareError | undefined
  #offloadUntil = -Infinity
  #syncs = 0
  #waits = 0
  #offloaded = 0

  constructor (walHandle: FileHandle, opts: GroupCommitOptions = {}) {
    this.#fh = walHandle
    this.#now = opts.now ?? (() => performance.now())
    this.#slowSyncMs = opts.slowSyncMs ?? SLOW_SYNC_MS
  }

  get stats (): GroupCommitStats {
    return { syncs: this.#syncs, waits: this.#waits, offloaded: this.#offloaded }
  }

  /**
   * Resolves once everything committed before this call is on stable storage. The signal only
   * stops the waiting: the write itself is committed and will most likely become durable.
   */
  async durable (signal?: AbortSignal): Promise<void> {
    if (this.#failed !== undefined) throw this.#failed
    this.#waits++
    if (this.#turn === undefined) {
      this.#turn = Promise.withResolvers<void>()
      setImmediate(() => this.#endOfTurn())
    }
    const done = this.#turn.promise
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

  /** Waits for every scheduled, started or queued fsync (used before closing the WAL handle). */
  async drain (): Promise<void> {
    while (this.#turn !== undefined || this.#inFlight !== undefined || this.#next !== undefined) {
      // errors already reached the writers that waited for these syncs
      await (this.#turn?.promise ?? this.#inFlight ?? this.#next?.promise)?.catch(() => undefined)
    }
  }

  #endOfTurn (): void {
    const turn = this.#turn!
    this.#turn = undefined
    if (this.#failed !== undefined) {
      turn.reject(this.#failed)
      return
    }
    if (this.#now() < this.#offloadUntil || this.#inFlight !== undefined) {
      // the threadpool's fsync still running would overlap ours: queue behind it instead
      this.#offload().then(turn.resolve, turn.reject)
      return
    }
    const start = this.#now()
    try {
      fdatasyncSync(this.#fh.fd)
    } catch (err) {
      turn.reject(this.#fail(err))
      return
    }
    this.#syncs++
    if (this.#now() - start > this.#slowSyncMs) this.#offloadUntil = this.#now() + SLOW_BACKOFF_MS
    turn.resolve()
  }

  /** An fsync in the threadpool: started now, or queued behind the one in flight. */
  #offload (): Promise<void> {
    if (this.#inFlight === undefined) return this.#start()
    this.#next ??= Promise.withResolvers<void>()
    return this.#next.promise
  }

  #start (): Promise<void> {
    const run = this.#fh.datasync().then(
      () => {
        this.#syncs++
        this.#offloaded++
        this.#finish(undefined)
      },
      (err: unknown) => {
        const failed = this.#fail(err)
        this.#finish(failed)
        throw failed
      })
    this.#inFlight = run
    return run
  }

  /**
   * After a failed fsync the kernel may have dropped the dirty pages (Linux "fsyncgate"): nothing
   * written since can be trusted, so the store refuses every later write.
   */
  #fail (err: unknown): PeershareError {
    this.#failed ??= new PeershareError('STORE_UNAVAILABLE', 'the tracker could not write its database to disk', { cause: err })
    return this.#failed
  }

  #finish (err: PeershareError | undefined): void {
    this.#inFlight = undefined
    const next = this.#next
    this.#next = undefined
    if (next === undefined) return
    if (err !== undefined) next.reject(err)
    else this.#start().then(next.resolve, next.reject)
  }
}
