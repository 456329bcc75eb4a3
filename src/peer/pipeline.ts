// How many requests to keep outstanding at one peer: its measured throughput × TARGET_QUEUE_MS, in
// blocks, between MIN_DEPTH and MAX_DEPTH (libtorrent's request_queue_time rule). Used by picker.ts.
// Pure: time comes in as `now` (ms).
//
// Why it converges: with depth d and a round trip of r, a peer can deliver at most d blocks per r; the
// next target is rate × T, i.e. d × T / r, which exceeds d whenever T > r. So depth grows geometrically
// until the link (not the pipeline) limits the rate, and settles near T's worth of data. A slow peer
// therefore holds few blocks hostage, and a stalled one is cut back by backOff().

import { MAX_QUEUED_REQUESTS } from '../protocol/wire.ts'

export const START_DEPTH = 4 // before any measurement: one 512 KiB piece of 128 KiB blocks
export const MIN_DEPTH = 2 // one block in transit while the next is queued at the peer
export const MAX_DEPTH = 32 // 4 MiB outstanding per peer (covers 600 MB/s × 6 ms); below the server's cap
export const TARGET_QUEUE_MS = 500 // a LAN or WAN round trip is well under this
export const RATE_WINDOW_MS = 250
const RATE_ALPHA = 0.5 // EWMA weight of the newest window: adapts within ~1 s

if (MAX_DEPTH > MAX_QUEUED_REQUESTS) throw new Error('MAX_DEPTH must not exceed the server queue cap MAX_QUEUED_REQUESTS')

export class PeerPipeline {
  /** Bytes/s (EWMA), undefined before the first measured window. */
  rate: number | undefined = undefined
  #windowStart: number | undefined = undefined
  #windowBytes = 0

  received (bytes: number): void {
    this.#windowBytes += bytes
  }

  /**
   * Closes the measuring window when RATE_WINDOW_MS have passed. `busy`: the peer had requests
   * outstanding; a window in which it had nothing to do and sent nothing is not a sample.
   */
  tick (now: number, busy: boolean): void {
    if (this.#windowStart === undefined) {
      this.#windowStart = now
      return
    }
    const elapsed = now - this.#windowStart
    if (elapsed < RATE_WINDOW_MS) return
    if (this.#windowBytes > 0 || busy) {
      const sample = this.#windowBytes * 1000 / elapsed
      this.rate = this.rate === undefined ? sample : this.rate + RATE_ALPHA * (sample - this.rate)
    }
    this.#windowStart = now
    this.#windowBytes = 0
  }

  /** Target number of outstanding requests. */
  depth (blockBytes: number): number {
    if (this.rate === undefined) return START_DEPTH
    const depth = Math.ceil(this.rate * TARGET_QUEUE_MS / 1000 / blockBytes)
    return Math.min(MAX_DEPTH, Math.max(MIN_DEPTH, depth))
  }

  /** After a timeout or a busy reject: halve the estimate (multiplicative decrease) and measure afresh. */
  backOff (now: number): void {
    this.rate = this.rate === undefined ? 0 : this.rate / 2
    this.#windowStart = now
    this.#windowBytes = 0
  }
}
