// A token bucket in bytes/s shared by every connection of a peer server (--upload-limit). Each caller
// reserves its bytes in turn and may drive the balance negative; it then waits until the debt is paid,
// so concurrent callers are served in call order without a queue of their own.

import { setTimeout as sleep } from 'node:timers/promises'

/** Burst allowance: this much time's worth of bytes may go out at once after an idle spell. */
const BURST_MS = 100

export class TokenBucket {
  #rate: number // bytes/s; 0 = unlimited
  #tokens: number
  #at: number

  constructor (bytesPerSecond: number) {
    this.#rate = checkRate(bytesPerSecond)
    this.#tokens = this.#burst()
    this.#at = performance.now()
  }

  get rate (): number {
    return this.#rate
  }

  set rate (bytesPerSecond: number) {
    this.#refill()
    this.#rate = checkRate(bytesPerSecond)
    this.#tokens = Math.min(this.#tokens, this.#burst())
  }

  /** Resolves when `bytes` may be sent; rejects with the signal's reason when aborted meanwhile. */
  async take (bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.#rate === 0) return
    this.#refill()
    this.#tokens -= bytes
    if (this.#tokens >= 0) return
    await sleep(-this.#tokens * 1000 / this.#rate, undefined, { signal })
  }

  #refill (): void {
    const now = performance.now()
    if (this.#rate > 0) this.#tokens = Math.min(this.#burst(), this.#tokens + (now - this.#at) * this.#rate / 1000)
    this.#at = now
  }

  #burst (): number {
    return this.#rate * BURST_MS / 1000
  }
}

function checkRate (bytesPerSecond: number): number {
  if (!(Number.isFinite(bytesPerSecond) && bytesPerSecond >= 0)) throw new RangeError(`upload limit ${bytesPerSecond} is not a rate`)
  return bytesPerSecond
}
