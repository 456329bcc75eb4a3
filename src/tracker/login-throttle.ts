// Slows down password guessing (issue 5): failed logins are counted per account and per client
// address; past a few free failures each further one locks that account (or address) out for a
// doubling time, capped. A locked-out login is refused at once (BUSY, saying when to retry) without
// checking the password, so guessing costs the attacker time and costs us no scrypt work, while
// other accounts and addresses are served as usual. Pure: the caller passes `now`.
//
// Documented limits:
//   per account: 5 failures free, then locked 1 s, 2 s, 4 s ... up to 5 min per further failure;
//   per address: 20 failures free (one machine, many users), then the same doubling;
//   a success clears the account's count (not the address's); counts are forgotten 15 min after
//   their last failure; at most 100,000 accounts and addresses are tracked (oldest forgotten first).

import { PeershareError } from '../common/errors.ts'

export const ACCOUNT_FREE_FAILURES = 5
export const ADDRESS_FREE_FAILURES = 20
export const FIRST_LOCK_MS = 1_000
export const MAX_LOCK_MS = 5 * 60_000
export const FORGET_AFTER_MS = 15 * 60_000
export const MAX_TRACKED = 100_000

interface Entry {
  failures: number
  lastFailure: number
  lockedUntil: number
}

class Counter {
  readonly #free: number
  readonly #entries = new Map<string, Entry>()

  constructor (free: number) {
    this.#free = free
  }

  /** ms left in the lock of `key`, 0 when it may try. */
  lockedFor (key: string, now: number): number {
    const e = this.#current(key, now)
    return e === undefined ? 0 : Math.max(0, e.lockedUntil - now)
  }

  fail (key: string, now: number): void {
    const e = this.#current(key, now) ?? { failures: 0, lastFailure: now, lockedUntil: 0 }
    e.failures++
    e.lastFailure = now
    const over = e.failures - this.#free
    if (over > 0) e.lockedUntil = now + Math.min(MAX_LOCK_MS, FIRST_LOCK_MS * 2 ** Math.min(over - 1, 30))
    this.#entries.delete(key) // re-inserted last: the Map's order is the eviction order
    this.#entries.set(key, e)
    if (this.#entries.size > MAX_TRACKED) this.#entries.delete(this.#entries.keys().next().value!)
  }

  clear (key: string): void {
    this.#entries.delete(key)
  }

  get size (): number {
    return this.#entries.size
  }

  #current (key: string, now: number): Entry | undefined {
    const e = this.#entries.get(key)
    if (e !== undefined && now - e.lastFailure > FORGET_AFTER_MS && now >= e.lockedUntil) {
      this.#entries.delete(key)
      return undefined
    }
    return e
  }
}

export class LoginThrottle {
  readonly #accounts = new Counter(ACCOUNT_FREE_FAILURES)
  readonly #addresses = new Counter(ADDRESS_FREE_FAILURES)

  /** BUSY when the account or the address is locked out now; says how long to wait. */
  check (userId: string, address: string, now: number): void {
    const account = this.#accounts.lockedFor(userId, now)
    const addr = this.#addresses.lockedFor(address, now)
    if (account === 0 && addr === 0) return
    const seconds = Math.ceil(Math.max(account, addr) / 1000)
    const who = account >= addr ? `for ${userId}` : 'from your address'
    throw new PeershareError('BUSY', `too many failed logins ${who}: try again in ${seconds} s`)
  }

  failed (userId: string, address: string, now: number): void {
    this.#accounts.fail(userId, now)
    this.#addresses.fail(address, now)
  }

  succeeded (userId: string): void {
    this.#accounts.clear(userId)
  }

  /** Accounts and addresses tracked (for tests and logs). */
  get size (): number {
    return this.#accounts.size + this.#addresses.size
  }
}
