// Every store call the tracker makes is bounded in time: a store that hangs (etcd without quorum
// waits rather than fails) must turn into a STORE_UNAVAILABLE reply, not a request stuck forever.

import { PeershareError } from '../common/errors.ts'
import type { CallOptions } from '../store/store.ts'

/** Measured: the first write after an etcd leader dies can stall ~7 s; 5 s answers before clients give up. */
export const STORE_DEADLINE_MS = 5_000

/**
 * Runs `fn` with an abort signal that fires after `ms`, and stops waiting at that moment even if
 * the store ignores the signal (its late result is dropped). Timeout → STORE_UNAVAILABLE.
 */
export async function withDeadline<T> (fn: (opts: CallOptions) => Promise<T>, ms: number = STORE_DEADLINE_MS): Promise<T> {
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const err = new PeershareError('STORE_UNAVAILABLE', 'the tracker\'s store is not answering: try again shortly')
      controller.abort(err)
      reject(err)
    }, ms)
  })
  const work = fn({ signal: controller.signal })
  // the loser of the race must not surface as an unhandled rejection
  work.catch(() => {})
  expired.catch(() => {})
  try {
    return await Promise.race([work, expired])
  } catch (err) {
    if (controller.signal.aborted) throw controller.signal.reason
    throw err
  } finally {
    clearTimeout(timer)
  }
}
