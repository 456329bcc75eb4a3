// Group commit for the SQLite store: one asynchronous fdatasync of the WAL file covers every write
// committed before it started. Owns the WAL file handle and the durability state; knows nothing of
// SQL (sqlite.ts commits, then waits here before acknowledging).
//
// Why: node:sqlite is synchronous, so `synchronous=FULL` would fsync on the one JS thread at every
// commit. Instead SQLite runs with `synchronous=NORMAL` (a commit is a write() into the -wal file,
// no fsync) and acknowledgements wait for FileHandle.datasync(), which runs in libuv's threadpool.
// At most one fsync is in flight and one queued: writes that commit while one is in flight cannot
// know whether the kernel saw their bytes before the syscall began, so they wait for the next one.

import type { FileHandle } from 'node:fs/promises'
import { PeershareError } from '../common/errors.ts'

export interface GroupCommitStats {
  /** fdatasync calls completed. */
  syncs: number
  /** durable() calls (acknowledged writes). */
  waits: number
}

export class GroupCommit {
  readonly #fh: FileHandle
  #inFlight: Promise<void> | undefined
  #next: PromiseWithResolvers<void> | undefined
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
    let done: Promise<void>
    if (this.#inFlight === undefined) {
      done = this.#start()
    } else {
      this.#next ??= Promise.withResolvers<void>()
      done = this.#next.promise
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
    while (this.#inFlight !== undefined || this.#next !== undefined) {
      // errors already reached the writers that waited for these syncs
      await (this.#inFlight ?? this.#next?.promise)?.catch(() => undefined)
    }
  }

  #start (): Promise<void> {
    const run = this.#fh.datasync().then(
      () => {
        this.#syncs++
        this.#finish(undefined)
      },
      (err: unknown) => {
        // After a failed fsync the kernel may have dropped the dirty pages (Linux "fsyncgate"):
        // nothing written since can be trusted, so the store refuses every later write.
        this.#failed = new PeershareError('STORE_UNAVAILABLE', 'the tracker could not write its database to disk', { cause: err })
        this.#finish(this.#failed)
        throw this.#failed
      })
    this.#inFlight = run
    return run
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
