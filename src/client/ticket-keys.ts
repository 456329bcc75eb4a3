// The tracker ticket keys this client's peer server accepts: the key each tracker named in hello over
// a connection whose certificate was verified (pinned or trusted on first use), by tracker address,
// kept in the data dir so that a restarted client serves before it reconnects. A tracker that
// changes its key replaces its old one (tickets signed by the old key then stop verifying here).

import type { KeyObject } from 'node:crypto'
import { createLog } from '../common/log.ts'
import { ticketPublicKeyFromRaw, trustedTicketKeys } from '../security/tickets.ts'
import type { TrustedTicketKeys } from '../security/tickets.ts'
import { readJson, writeJsonAtomic } from './data-dir.ts'

const log = createLog('client:ticket-keys')

export const TICKET_KEYS_FILE = 'ticket_keys.json'
const KEY_RE = /^[0-9a-f]{64}$/
/** A client knows a handful of trackers; the cap keeps a damaged file from filling memory. */
const MAX_TRACKERS = 1_000

export class TicketKeyBook {
  readonly path: string
  /** tracker address → raw Ed25519 public key (64 hex). */
  readonly #keys: Map<string, string>
  #trusted: TrustedTicketKeys
  #writing: Promise<void> = Promise.resolve()

  private constructor (path: string, keys: Map<string, string>) {
    this.path = path
    this.#keys = keys
    this.#trusted = build(keys)
  }

  /** Reads the file; a missing or damaged one (set aside by readJson) is an empty book. */
  static async open (path: string): Promise<TicketKeyBook> {
    const keys = await readJson(path, (v) => {
      const list = (v as { keys?: unknown } | null)?.keys
      if (!Array.isArray(list) || list.length > MAX_TRACKERS) return undefined
      const out = new Map<string, string>()
      for (const e of list) {
        const { tracker, key } = (e ?? {}) as { tracker?: unknown, key?: unknown }
        if (typeof tracker !== 'string' || tracker.length > 300 || typeof key !== 'string' || !KEY_RE.test(key)) return undefined
        out.set(tracker, key)
      }
      return out
    })
    return new TicketKeyBook(path, keys ?? new Map())
  }

  /** The keys to verify tickets against (a snapshot, rebuilt when a key is learnt). */
  trusted (): TrustedTicketKeys {
    return this.#trusted
  }

  /** Whether a key is known for that tracker address. */
  has (tracker: string): boolean {
    return this.#keys.has(tracker)
  }

  /** Records the key a verified tracker named; saved before it resolves. Bad keys are ignored (logged). */
  async learn (tracker: string, keyHex: string): Promise<void> {
    if (!KEY_RE.test(keyHex)) {
      log.warn('a tracker named an unusable ticket key', { tracker })
      return
    }
    if (this.#keys.get(tracker) === keyHex) return
    if (!this.#keys.has(tracker) && this.#keys.size >= MAX_TRACKERS) return
    this.#keys.set(tracker, keyHex)
    this.#trusted = build(this.#keys)
    const text = { keys: [...this.#keys].map(([t, key]) => ({ tracker: t, key })) }
    const next = this.#writing.then(() => writeJsonAtomic(this.path, text, 0o600))
    this.#writing = next.catch(() => {})
    await next
  }
}

function build (keys: Map<string, string>): TrustedTicketKeys {
  const objects: KeyObject[] = []
  for (const hex of new Set(keys.values())) objects.push(ticketPublicKeyFromRaw(hex))
  return trustedTicketKeys(objects)
}
