// Group commit for the SQLite store: one asynchronous fdatasync of the WAL file covers every write
// committed before it started. Owns the WAL file handle and the durability state; knows nothing of
// SQL (sqlite.ts commits, then waits here before acknowledging).
//
// Why: node:sqlite is synchronous, so `synchronous=FULL` would fsync on the one JS thread at every
// commit. Instead SQLite runs with `synchronous=NORMAL` (a commit is a write() into the -wal file,
// no fsync) and acknowledgements wait for FileHandle.datasync(), which runs in libuv's threadpool.
// One fsync starts at the end of each event-loop turn that committed writes (setImmediate), covering
// all of them, without waiting for fsyncs still in flight: a write committed while one runs cannot
// know whether the kernel saw its bytes before that syscall began, but it needs only the next one,
// not the end of the current one. Under the tracker bench an fdatasync takes 3-12 ms (perf trace),
// and with one fsync at a time a write waited for up to two of them. At most MAX_IN_FLIGHT at once
// (libuv's threadpool has four threads; more would only queue there).

import type { FileHandle } from 'node:fs/promises'
import { PeershareError } from '../common/errors.ts'

export interface GroupCommitStats {
  /** fdatasync calls completed. */
  syncs: number
  /** durable() calls (acknowledged writes). */
  waits: number
}

const MAX_IN_FLIGHT = 4

export class GroupCommit {
  readonly #fh: FileHandle
  /** Fsyncs running, each with the writes it covers. */
  readonly #running = new Set<Promise<void>>()
  /** Writes committed since the last fsync started: the next one covers them. */
  #next: PromiseWithResolvers<void> | undefined
  #scheduled = false
  #failed: PeershareError | undefined
  #syncs = 0
  #waits = 0

  constructor (walHandle: FileHandle) {
    this.#fh = walHandle
  }

  get stats (): GroupCommitStats {
    return { syncs: this.#syncs, waits: this.#waits }
  }

  /**
   * Resolves once everything committed before this call is on stable storage. The signal only
   * stops the waiting: the write itself is committed and will most likely become durable.
   */
  async durable (signal?: AbortSignal): Promise<void> {
    if (this.#failed !== undefined) throw this.#failed
    this.#waits++
    this.#next ??= Promise.withResolvers<void>()
    const done = this.#next.promise
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(() => {
        this.#scheduled = false
        this.#start()
      })
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

  /** Waits for every started or queued fsync (used before closing the WAL handle). */
  async drain (): Promise<void> {
    while (this.#running.size > 0 || this.#next !== undefined) {
      // errors already reached the writers that waited for these syncs
      await Promise.allSettled([...this.#running, this.#next?.promise])
    }
  }

  #start (): void {
    const covered = this.#next
    if (covered === undefined || this.#running.size >= MAX_IN_FLIGHT) return // a finishing fsync starts it
    this.#next = undefined
    covered.promise.catch(() => {}) // a writer that stopped waiting (signal) leaves it unobserved
    const run: Promise<void> = this.#fh.datasync().then(
      () => {
        this.#syncs++
        // a later fsync can succeed after an earlier one failed: the pages that one lost stay lost
        if (this.#failed !== undefined) covered.reject(this.#failed)
        else covered.resolve()
      },
      (err: unknown) => {
        // After a failed fsync the kernel may have dropped the dirty pages (Linux "fsyncgate"):
        // nothing written since can be trusted, so the store refuses every later write.
        this.#failed ??= new PeershareError('STORE_UNAVAILABLE', 'the tracker could not write its database to disk', { cause: err })
        covered.reject(this.#failed)
        this.#next?.reject(this.#failed)
        this.#next = undefined
      }).finally(() => {
      this.#running.delete(run)
      this.#start()
    })
    this.#running.add(run)
  }
}
