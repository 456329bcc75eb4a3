// A counting semaphore with a bounded waiting line: at most `concurrency` tasks run at once, at most
// `maxWaiting` wait; past that, run() refuses at once (BUSY) instead of queueing without bound.

import { PeershareError } from './errors.ts'

export class Limiter {
  readonly concurrency: number
  readonly maxWaiting: number
  #running = 0
  readonly #waiting: Array<() => void> = []
  readonly #busyMessage: string

  constructor (concurrency: number, maxWaiting: number, busyMessage = 'too busy: try again shortly') {
    this.concurrency = concurrency
    this.maxWaiting = maxWaiting
    this.#busyMessage = busyMessage
  }

  get running (): number { return this.#running }
  get waiting (): number { return this.#waiting.length }

  async run<T> (task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.concurrency) {
      if (this.#waiting.length >= this.maxWaiting) throw new PeershareError('BUSY', this.#busyMessage)
      await new Promise<void>((resolve) => this.#waiting.push(resolve))
    } else {
      this.#running++
    }
    try {
      return await task()
    } finally {
      const next = this.#waiting.shift()
      if (next !== undefined) next() // the slot passes straight to the next waiter
      else this.#running--
    }
  }
}
