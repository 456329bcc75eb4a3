// Partial holders: clients that are downloading a file and already serve its verified pieces.
// Kept in memory only, by the tracker the client is connected to (not in the Store): a hold lives
// as long as the client's presence on this tracker, so server.ts releases every hold of a client
// when its presence goes (logout, disconnect), and handlers.ts releases one when the client becomes
// a full sharer of the file or leaves the group. A client that fails over says `hold` again there.

import { PeershareError } from '../common/errors.ts'

// a client runs a handful of downloads at once; this caps what one client can make us keep
export const MAX_HOLDS_PER_CLIENT = 1024

export interface PartialHolder {
  clientId: string
  userId: string
  peerAddr: string
}

export class HolderRegistry {
  /** "groupId\0fileId" → clientId → holder. */
  readonly #byFile = new Map<string, Map<string, PartialHolder>>()
  /** clientId → the file keys it holds (for release on presence down). */
  readonly #byClient = new Map<string, Set<string>>()

  /** Records the hold (idempotent; a newer peer address replaces the old one). BUSY past the cap. */
  hold (groupId: string, fileId: string, holder: PartialHolder): void {
    const key = keyOf(groupId, fileId)
    let keys = this.#byClient.get(holder.clientId)
    if (keys === undefined) {
      keys = new Set()
      this.#byClient.set(holder.clientId, keys)
    }
    if (!keys.has(key) && keys.size >= MAX_HOLDS_PER_CLIENT) {
      throw new PeershareError('BUSY', `this client already holds ${MAX_HOLDS_PER_CLIENT} partial files: finish some downloads first`)
    }
    keys.add(key)
    let holders = this.#byFile.get(key)
    if (holders === undefined) {
      holders = new Map()
      this.#byFile.set(key, holders)
    }
    holders.set(holder.clientId, { ...holder })
  }

  /** The partial holders of a file, in the order they said hold. */
  holdersOf (groupId: string, fileId: string): PartialHolder[] {
    return [...(this.#byFile.get(keyOf(groupId, fileId))?.values() ?? [])]
  }

  /** Drops one hold of a client. */
  release (clientId: string, groupId: string, fileId: string): void {
    this.#drop(clientId, keyOf(groupId, fileId))
  }

  /** Drops every hold of a client in one group (it left the group). */
  releaseGroup (clientId: string, groupId: string): void {
    const keys = this.#byClient.get(clientId)
    if (keys === undefined) return
    for (const key of [...keys]) if (key.startsWith(groupId + '\0')) this.#drop(clientId, key)
  }

  /** Drops every hold of a client (its presence went). */
  releaseAll (clientId: string): void {
    const keys = this.#byClient.get(clientId)
    if (keys === undefined) return
    for (const key of [...keys]) this.#drop(clientId, key)
  }

  /** Number of (client, file) holds: for tests and logs. */
  get size (): number {
    let n = 0
    for (const keys of this.#byClient.values()) n += keys.size
    return n
  }

  #drop (clientId: string, key: string): void {
    const keys = this.#byClient.get(clientId)
    if (keys === undefined || !keys.delete(key)) return
    if (keys.size === 0) this.#byClient.delete(clientId)
    const holders = this.#byFile.get(key)
    holders?.delete(clientId)
    if (holders?.size === 0) this.#byFile.delete(key)
  }
}

// group ids cannot contain NUL (names.ts), so the key is unambiguous
function keyOf (groupId: string, fileId: string): string {
  return `${groupId}\0${fileId}`
}
