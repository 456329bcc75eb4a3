// The rows of a list_files reply, built from the store's file records and who is connected now.
// Half of the tracker's requests are list_files, so what does not depend on presence (the distinct
// sorted sharers, the active shares) is worked out once per record: a StoredFile a store hands out
// is never changed (store.ts), and a changed file comes back as a new record, so a WeakMap keyed
// by the record is always current and lets the old facts go with the old record.

import type { FileListing } from '../protocol/control.ts'
import type { Presence, Sharer, StoredFile } from '../store/store.ts'

export interface FileFacts {
  name: string
  fileId: string
  size: number
  /** Distinct users sharing the file, sorted; shared by every reply (never changed). */
  sharers: readonly string[]
  /** The shares that count when online (active ones). */
  active: readonly Sharer[]
}

const factsOf = new WeakMap<StoredFile, FileFacts>()

/** What a list_files row needs of a file record, worked out once per record. */
export function fileFacts (f: StoredFile): FileFacts {
  let x = factsOf.get(f)
  if (x === undefined) {
    x = {
      name: f.meta.name,
      fileId: f.fileId,
      size: f.meta.size,
      sharers: Object.freeze([...new Set(f.sharers.map((s) => s.userId))].sort()),
      active: f.sharers.filter((s) => s.active),
    }
    factsOf.set(f, x)
  }
  return x
}

/**
 * One row per file, by name. A sharer is online when its share is active and its client is
 * connected now, logged in as that same user; `presenceOf` answers for the clients it is given.
 */
export async function fileListings (files: readonly StoredFile[],
  presenceOf: (clientIds: string[]) => Promise<Map<string, Presence>>): Promise<FileListing[]> {
  const all = files.map(fileFacts)
  const clientIds = new Set<string>()
  for (const f of all) for (const s of f.active) clientIds.add(s.clientId)
  const presence = clientIds.size === 0 ? new Map<string, Presence>() : await presenceOf([...clientIds])
  const out: FileListing[] = all.map((f) => {
    let online = 0
    let counted: Set<string> | undefined // a user sharing from two clients counts once
    for (const s of f.active) {
      if (presence.get(s.clientId)?.userId !== s.userId) continue
      if (f.active.length === 1) online = 1
      else (counted ??= new Set()).add(s.userId)
    }
    return { name: f.name, fileId: f.fileId, size: f.size, sharers: f.sharers as string[], sharersOnline: counted?.size ?? online }
  })
  out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  return out
}
