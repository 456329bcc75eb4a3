// Group commit for the SQLite store: one asynchronous fdatasync of the WAL file covers every write
// committed before it started. Owns the WAL file handles and the durability state; knows nothing
// of SQL (sqlite.ts commits, then waits here before acknowledging).
//
// Why: node:sqlite is synchronous, so `synchronous=FULL` would fsync on the one JS thread at every
// commit. Instead SQLite runs with `synchronous=NORMAL` (a commit is a write() into the -wal file,
// no fsync) and acknowledgements wait for FileHandle.datasync(), which runs in libuv's threadpool.
// A write that commits while a sync is running cannot know whether the kernel saw its bytes before
// the syscall began, so it needs a sync that starts after it.
//
// Several handles of the same WAL file, at most one sync running on each: a finished sync is only
// seen by JS on the event loop's next turn, so with one handle a write committed during a busy
// turn waited for that turn, the next one and a third (measured under the tracker bench: writes
// took 2.7x as long as reads). With a free handle its sync starts at once and is seen on the next
// turn. Why this is safe: fdatasync flushes the inode's dirty pages whichever descriptor wrote
// them, and Linux (4.13+) reports a writeback error to every open file description that has not
// seen it yet, so concurrent syncs on distinct descriptors cannot hide an error from one another.
// When every handle is busy, the writes that arrive share the next sync to start.

import type { FileHandle } from 'node:fs/promises'
import { PeershareError } from '../common/errors.ts'

export interface GroupCommitStats {
  /** fdatasync calls completed. */
  syncs: number
  /** durable() calls (acknowledged writes). */
  waits: number
}

export class GroupCommit {
  /** Handles with no sync running. */
  readonly #free: FileHandle[]
  readonly #running = new Set<Promise<void>>()
  /** Waiters for the next sync to start (every handle was busy when they came). */
  #next: PromiseWithResolvers<void> | undefined
  #failed: PeershareError | undefined
  #syncs = 0
  #waits = 0

  /** `walHandles`: one or more handles of the same WAL file; one sync may run on each at once. */
  constructor (walHandles: FileHandle | readonly FileHandle[]) {
    this.#free = Array.isArray(walHandles) ? [...walHandles] : [walHandles as FileHandle]
    if (this.#free.length === 0) throw new Error('GroupCommit needs at least one WAL handle')
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
    const fh = this.#free.pop()
    if (fh !== undefined) {
      done = this.#start(fh)
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

  /** Waits for every started or queued fsync (used before closing the WAL handles). */
  async drain (): Promise<void> {
    while (this.#running.size > 0 || this.#next !== undefined) {
      // errors already reached the writers that waited for these syncs
      await Promise.allSettled([...this.#running, this.#next?.promise])
    }
  }

  #start (fh: FileHandle): Promise<void> {
    const run = fh.datasync().then(
      () => {
        this.#syncs++
        this.#finish(run, fh)
        // a sync running when another one failed may have "succeeded" past a lost page: refuse it too
        if (this.#failed !== undefined) throw this.#failed
      },
      (err: unknown) => {
        // After a failed fsync the kernel may have dropped the dirty pages (Linux "fsyncgate"):
        // nothing written since can be trusted, so the store refuses every later write.
        this.#failed ??= new PeershareError('STORE_UNAVAILABLE', 'the tracker could not write its database to disk', { cause: err })
        this.#finish(run, fh)
        throw this.#failed
      })
    this.#running.add(run)
    return run
  }

  #finish (run: Promise<void>, fh: FileHandle): void {
    this.#running.delete(run)
    this.#free.push(fh)
    const next = this.#next
    this.#next = undefined
    if (next === undefined) return
    if (this.#failed !== undefined) next.reject(this.#failed)
    else this.#start(this.#free.pop()!).then(next.resolve, next.reject)
  }
}
