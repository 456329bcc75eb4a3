// One Store call against etcd, bounded in time: every etcd request and every wait it makes shares
// one absolute deadline, and the caller's signal ends it early. Owns the deadline arithmetic, the
// retry of transient etcd failures and their mapping to STORE_UNAVAILABLE; what to send is etcd.ts's.
//
// Why both a call budget and a per-attempt cap: with quorum lost etcd waits rather than fails (a put
// without deadline failed only after ~6-7 s here), and the first write after a leader dies stalls
// ~6 s before etcd itself gives up on it, then succeeds on retry. Capping one attempt at
// ATTEMPT_MS and retrying within the budget turns that stall into a slower success, not an error.
// A retried write may have applied the first time: etcd.ts recognises its own writes by nonce.

import { isRecoverableError } from 'etcd3'
import { setTimeout as sleep } from 'node:timers/promises'
import { PeershareError } from '../common/errors.ts'

/** A whole Store call; below the tracker's own 5 s (tracker/deadline.ts), so ours answers first. */
export const CALL_BUDGET_MS = 4_000
/** One etcd request; a stalled one is abandoned and sent again while the budget lasts. */
export const ATTEMPT_MS = 1_500
/** No new attempt with less than this left: it could not finish anyway. */
const MIN_ATTEMPT_MS = 100
/** Pause before attempt k+1 (doubling up to the cap): with every member down, a refused connection fails at once. */
const RETRY_PAUSE_MS = 25
const MAX_RETRY_PAUSE_MS = 400

export interface EtcdCallOptions {
  signal?: AbortSignal
}

export class Call {
  /** Absolute time (Date.now() scale) after which the call has failed. */
  readonly deadline: number
  readonly signal: AbortSignal | undefined
  readonly #what: string

  constructor (what: string, opts: EtcdCallOptions | undefined, budgetMs: number = CALL_BUDGET_MS) {
    this.#what = what
    this.signal = opts?.signal
    this.deadline = Date.now() + budgetMs
  }

  /** Throws when the caller gave up or the budget is spent. */
  check (): void {
    this.signal?.throwIfAborted()
    if (Date.now() >= this.deadline) throw this.timeout()
  }

  timeout (cause?: unknown): PeershareError {
    return new PeershareError('STORE_UNAVAILABLE',
      `the etcd cluster did not answer in time (${this.#what}): try again shortly`, cause === undefined ? undefined : { cause })
  }

  /** grpc options of one attempt: its absolute deadline (etcd3's own retry shares it). */
  attempt (): { deadline: number } {
    return { deadline: Math.min(this.deadline, Date.now() + ATTEMPT_MS) }
  }

  /** Awaits `work`, but no longer than the deadline or the caller's signal; the loser is dropped. */
  async race<T> (work: Promise<T>): Promise<T> {
    this.check()
    work.catch(() => {}) // abandoned on timeout: its late rejection must not go unhandled
    let timer: NodeJS.Timeout | undefined
    let onAbort: (() => void) | undefined
    const stop = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(this.timeout()), this.deadline - Date.now())
      if (this.signal !== undefined) {
        const signal = this.signal
        onAbort = () => reject(signal.reason)
        signal.addEventListener('abort', onAbort, { once: true })
      }
    })
    stop.catch(() => {})
    try {
      return await Promise.race([work, stop])
    } finally {
      clearTimeout(timer)
      if (onAbort !== undefined) this.signal?.removeEventListener('abort', onAbort)
    }
  }

  /**
   * Sends one etcd request (built afresh by `send` for each attempt), retrying transient failures
   * while the budget lasts. Errors come out as PeershareError.
   */
  async request<T> (send: (options: { deadline: number }) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      this.check()
      try {
        return await this.race(send(this.attempt()))
      } catch (err) {
        if (err instanceof PeershareError || this.signal?.aborted === true) throw err
        if (!transient(err)) throw storeError(err, this.#what)
        if (this.deadline - Date.now() < MIN_ATTEMPT_MS) throw this.timeout(err)
        await this.race(sleep(Math.min(RETRY_PAUSE_MS * 2 ** attempt, MAX_RETRY_PAUSE_MS)))
      }
    }
  }
}

/** Network trouble, timeouts, a leader change: worth another attempt. */
function transient (err: unknown): boolean {
  return err instanceof Error && isRecoverableError(err)
}

/** Anything etcd or its client threw, as the one error a tracker passes on. */
export function storeError (err: unknown, what: string): PeershareError {
  if (err instanceof PeershareError) return err
  const detail = err instanceof Error ? err.message : String(err)
  return new PeershareError('STORE_UNAVAILABLE', `the etcd store failed (${what}): ${detail}`, { cause: err })
}
