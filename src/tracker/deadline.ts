// Every store call the tracker makes is bounded in time: a store that hangs (etcd without quorum
// waits rather than fails) must turn into a STORE_UNAVAILABLE reply, not a request stuck forever.
//
// A tracker makes two or three store calls per request, tens of thousands a second, and almost all
// answer within microseconds: one timer per call (set, then cleared) was a visible part of the
// tracker's profile. Calls whose deadlines fall in the same slice of time (1/20 of the deadline)
// share one timer instead, which is cleared when the last of them answers.

import { PeershareError } from '../common/errors.ts'
import type { CallOptions } from '../store/store.ts'

/** Measured: the first write after an etcd leader dies can stall ~7 s; 5 s answers before clients give up. */
export const STORE_DEADLINE_MS = 5_000
/** A deadline of `ms` fires between `ms` and `ms + ms / SLICES` after the call. */
const SLICES = 20

interface Pending {
  controller: AbortController
  reject: (err: unknown) => void
}

interface Slice {
  readonly pending: Set<Pending>
  readonly timer: NodeJS.Timeout
}

/** Deadline (ms since the epoch, rounded up to its slice) → the calls that expire then. */
const slices = new Map<number, Slice>()

function expire (at: number): void {
  const slice = slices.get(at)
  if (slice === undefined) return
  slices.delete(at)
  for (const p of slice.pending) {
    const err = new PeershareError('STORE_UNAVAILABLE', 'the tracker\'s store is not answering: try again shortly')
    p.controller.abort(err)
    p.reject(err)
  }
}

function enter (at: number, p: Pending): Slice {
  let slice = slices.get(at)
  if (slice === undefined) {
    slice = { pending: new Set(), timer: setTimeout(expire, Math.max(0, at - Date.now()), at) }
    slices.set(at, slice)
  }
  slice.pending.add(p)
  return slice
}

function leave (at: number, slice: Slice, p: Pending): void {
  slice.pending.delete(p)
  if (slice.pending.size === 0 && slices.get(at) === slice) {
    clearTimeout(slice.timer)
    slices.delete(at)
  }
}

/**
 * Runs `fn` with an abort signal that fires after `ms` (at most ms/20 later), and stops waiting at
 * that moment even if the store ignores the signal (its late result is dropped). Timeout → STORE_UNAVAILABLE.
 */
export function withDeadline<T> (fn: (opts: CallOptions) => Promise<T>, ms: number = STORE_DEADLINE_MS): Promise<T> {
  const slice = Math.max(1, Math.ceil(ms / SLICES))
  const at = Math.ceil((Date.now() + ms) / slice) * slice
  const controller = new AbortController()
  let work: Promise<T>
  try {
    work = fn({ signal: controller.signal })
  } catch (err) {
    return Promise.reject(err)
  }
  return new Promise<T>((resolve, reject) => {
    const p: Pending = { controller, reject }
    const s = enter(at, p)
    // after the deadline, reject/resolve do nothing: the late result (or failure) is dropped here
    work.then((value) => {
      leave(at, s, p)
      resolve(value)
    }, (err: unknown) => {
      leave(at, s, p)
      reject(controller.signal.aborted ? controller.signal.reason : err)
    })
  })
}
