// Signed download tickets, reused: signing an Ed25519 ticket on every get_file was about a tenth of
// the tracker's CPU (bench/tracker.ts), and a downloader asks for the same file again and again
// (renewal, retries, several files of one group). A ticket names the requester's certificate, the
// file and the group, so for one (signing key, requester, fileId, groupId) any unexpired ticket is
// as good as a new one — except that it lives shorter.
//
// Reuse stops once half of a ticket's lifetime is gone, so a client is always handed a ticket valid
// for at least ttl/2 and its renewal logic (which renews before expiresAt) keeps working.
// Authorization is not cached: the caller checks membership on every request BEFORE asking here, so
// a user who left the group never gets a ticket, cached or not.
//
// Pure (no clock: `now` comes in), bounded (MAX_CACHED_TICKETS, oldest dropped first).

/** Tickets kept at once: ~250 bytes each, so the bound is a few MB; past it the oldest go first. */
export const MAX_CACHED_TICKETS = 10_000

export interface CachedTicket {
  /** The signed ticket as get_file sends it (base64). */
  ticket: string
  /** ms since the epoch, as signed into the ticket. */
  expiresAt: number
}

export interface TicketKey {
  /** The signing key's id: a tracker with a new key must not hand out tickets of the old one. */
  keyId: string
  /** "SHA256:<hex>" of the requester's certificate. */
  requester: string
  fileId: string
  groupId: string
}

export class TicketCache {
  readonly #max: number
  // insertion order = signing order: with one ttl per tracker the first entry expires first
  readonly #entries = new Map<string, CachedTicket>()

  constructor (maxEntries: number = MAX_CACHED_TICKETS) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be a positive integer')
    this.#max = maxEntries
  }

  get size (): number {
    return this.#entries.size
  }

  /**
   * The cached ticket for `key` if it still has more than half of `ttlMs` to live at `now`;
   * otherwise calls `sign(expiresAt)` with expiresAt = now + ttlMs, keeps the result and returns it.
   */
  getOrSign (key: TicketKey, now: number, ttlMs: number, sign: (expiresAt: number) => string): CachedTicket {
    // the parts cannot contain NUL (fingerprint, hex, validated group id), so the join is unambiguous
    const k = `${key.keyId}\0${key.requester}\0${key.fileId}\0${key.groupId}`
    const cached = this.#entries.get(k)
    if (cached !== undefined && cached.expiresAt - now > ttlMs / 2) return cached
    const expiresAt = now + ttlMs
    const fresh: CachedTicket = { ticket: sign(expiresAt), expiresAt }
    this.#entries.delete(k) // re-inserted at the end: it is now the newest
    this.#entries.set(k, fresh)
    this.#evict(now)
    return fresh
  }

  /** Drops expired entries from the front, then the oldest while over the bound. */
  #evict (now: number): void {
    for (const [k, entry] of this.#entries) {
      if (this.#entries.size <= this.#max && entry.expiresAt > now) break
      this.#entries.delete(k)
    }
  }
}
