// The etcd store's local replica: everything under the prefix, kept in a MemoryModel (plus group
// heads' revisions and presences) by one watch. Start: range-get the prefix (paged, at one revision
// L), load, then watch from L+1. Any watch trouble (disconnect, cancel, compaction, an event that
// does not fit the model) → drop the watch, re-list, rebuild, watch again: the etcd3 client's own
// resume is not trusted (it may skip events when it reconnects). Reads are served from the current
// model meanwhile (possibly stale); writers wait in caughtUp() until the replica has their revision.
//
// `revision` is the newest revision whose events under the prefix have all been applied. Events of
// one etcd revision arrive in one watch response, in the order of the transaction's operations.

import { GRPCResourceExhastedError, Range } from 'etcd3'
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3'
import { setTimeout as sleep } from 'node:timers/promises'
import { createLog } from '../common/log.ts'
import { PeershareError } from '../common/errors.ts'
import type { Presence } from './store.ts'
import {
  decodeFile, decodeHead, decodeMember, decodePresence, decodeRequest, decodeSession, decodeShare, decodeUser,
} from './etcd-keys.ts'
import type { Keys, ParsedKey } from './etcd-keys.ts'
import type { Call } from './etcd-call.ts'
import { MemoryModel } from './memory-model.ts'

const log = createLog('store:etcd:replica')

/** Keys per page of the initial listing: big file records (~55 KB for 1 GiB) stay far below gRPC's limits. */
const LIST_PAGE_KEYS = 256
/** One attempt of a (re)start: list and attach the watch. */
const RESYNC_ATTEMPT_MS = 3_000
const RESYNC_PAUSE_MS = 50
const MAX_RESYNC_PAUSE_MS = 1_000

/** What a group write compares against: the head's revisions and the nonce of its last writer. */
export interface GroupHead {
  create: number
  mod: number
  nonce: string
}

interface Waiter {
  revision: number
  resolve: () => void
  reject: (err: Error) => void
}

interface State {
  model: MemoryModel
  heads: Map<string, GroupHead>
  presence: Map<string, Presence>
  /** Counts the changes to `presence` (Store.presenceVersion); a rebuilt state starts past the old one's. */
  presenceVersion: number
  /** groupId → its file ids: the model's own lookup builds a view, too slow per share event */
  files: Map<string, Set<string>>
}

const emptyState = (): State => ({ model: new MemoryModel(), heads: new Map(), presence: new Map(), presenceVersion: 0, files: new Map() })

/** Load order of a fresh listing: parents before children (the model requires it). */
const LOAD_ORDER: ReadonlyArray<ParsedKey['kind']> = ['user', 'session', 'group', 'member', 'request', 'file', 'share', 'presence', 'sync']

export class Replica {
  readonly #client: Etcd3
  readonly #keys: Keys
  #state: State = emptyState()
  #revision = 0
  #waiters: Waiter[] = []
  #watcher: Watcher | undefined
  #resyncing: Promise<void> | undefined
  readonly #closed = new AbortController()
  /** Times the replica was rebuilt after a watch failure (for tests and logs). */
  resyncs = 0

  constructor (client: Etcd3, keys: Keys) {
    this.#client = client
    this.#keys = keys
  }

  get model (): MemoryModel { return this.#state.model }
  get heads (): ReadonlyMap<string, GroupHead> { return this.#state.heads }
  get presence (): ReadonlyMap<string, Presence> { return this.#state.presence }
  get presenceVersion (): number { return this.#state.presenceVersion }
  get revision (): number { return this.#revision }

  /** The first list and watch; STORE_UNAVAILABLE when etcd does not answer within `ms`. */
  async start (ms: number): Promise<void> {
    const until = Date.now() + ms
    let lastErr: unknown
    for (let attempt = 0; Date.now() < until; attempt++) {
      try {
        await this.#listAndWatch(Math.min(until, Date.now() + RESYNC_ATTEMPT_MS))
        return
      } catch (err) {
        lastErr = err
        log.debug('start attempt failed', { err: err as Error })
      }
      // a refused connection fails at once: pause rather than spin
      await sleep(Math.min(pauseMs(attempt), Math.max(0, until - Date.now())))
    }
    const detail = lastErr instanceof Error ? `: ${lastErr.message}` : ''
    throw new PeershareError('STORE_UNAVAILABLE', `cannot read the tracker state from etcd${detail}`, { cause: lastErr })
  }

  /** Resolves once every change up to `revision` is in the replica; bounded by the call. */
  async caughtUp (revision: number, call: Call): Promise<void> {
    if (this.#revision >= revision) return
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    const waiter = { revision, resolve, reject }
    this.#waiters.push(waiter)
    try {
      await call.race(promise)
    } finally {
      const i = this.#waiters.indexOf(waiter)
      if (i >= 0) this.#waiters.splice(i, 1)
    }
  }

  async close (): Promise<void> {
    this.#closed.abort()
    const closed = new PeershareError('STORE_UNAVAILABLE', 'the tracker store is closed')
    for (const w of this.#waiters.splice(0)) w.reject(closed)
    const w = this.#watcher
    this.#watcher = undefined
    if (w !== undefined) await this.#drop(w)
    await this.#resyncing
  }

  #advance (revision: number): void {
    if (revision <= this.#revision) return
    this.#revision = revision
    if (this.#waiters.length === 0) return
    const ready = this.#waiters.filter((w) => w.revision <= revision)
    this.#waiters = this.#waiters.filter((w) => w.revision > revision)
    for (const w of ready) w.resolve()
  }

  async #listAndWatch (until: number): Promise<void> {
    const { kvs, revision } = await this.#list(until)
    const state = emptyState()
    const parsed: Array<[ParsedKey, IKeyValue]> = []
    for (const kv of kvs) {
      const key = this.#keys.parse(kv.key.toString())
      if (key === undefined) log.warn('ignoring an unknown key', { key: kv.key.toString().slice(0, 200) })
      else parsed.push([key, kv])
    }
    parsed.sort((a, b) => LOAD_ORDER.indexOf(a[0].kind) - LOAD_ORDER.indexOf(b[0].kind))
    for (const [key, kv] of parsed) applyPut(state, key, kv)
    state.presenceVersion += this.#state.presenceVersion + 1 // never a value the old state had
    this.#state = state
    this.#advance(revision)
    log.info('replica loaded', { revision, ...state.model.counts, presences: state.presence.size })
    await this.#watch(revision + 1, until)
  }

  /** Every key under the prefix at one revision, in pages. */
  async #list (until: number): Promise<{ kvs: IKeyValue[], revision: number }> {
    const range = Range.prefix(this.#keys.root)
    const kvs: IKeyValue[] = []
    let start: Buffer = range.start
    let revision: number | undefined
    let pageKeys = LIST_PAGE_KEYS
    for (;;) {
      let b = this.#client.getAll().inRange({ start, end: range.end }).limit(pageKeys)
      if (revision !== undefined) b = b.revision(revision)
      let res
      try {
        res = await b.options({ deadline: until }).exec()
      } catch (err) {
        // a page of very large file records can pass gRPC's message cap: ask for fewer keys
        if (!(err instanceof GRPCResourceExhastedError) || pageKeys === 1) throw err
        pageKeys = Math.max(1, pageKeys >> 2)
        continue
      }
      revision ??= Number(res.header.revision)
      kvs.push(...res.kvs)
      const last = res.kvs.at(-1)
      if (!res.more || last === undefined) return { kvs, revision }
      start = Buffer.concat([last.key, Buffer.from([0])])
    }
  }

  async #watch (fromRevision: number, until: number): Promise<void> {
    const watcher = this.#client.watch().inRange(Range.prefix(this.#keys.root)).startRevision(String(fromRevision)).watcher()
    // an EventEmitter 'error' with no listener throws: keep one for the watcher's whole life,
    // including after it is dropped (the listeners below come and go)
    watcher.on('error', (err: Error) => log.debug('etcd watch error', { err }))
    // listeners first: nothing the stream delivers is missed
    const connected = new Promise<void>((resolve, reject) => {
      watcher.once('connected', () => resolve())
      watcher.once('error', reject)
      watcher.once('disconnected', reject)
    })
    watcher.on('data', (res: IWatchResponse) => this.#onData(watcher, res))
    const timer = setTimeout(() => watcher.emit('disconnected', new Error('the watch did not start in time')), until - Date.now())
    try {
      await connected
    } catch (err) {
      await this.#drop(watcher)
      throw err
    } finally {
      clearTimeout(timer)
    }
    if (this.#closed.signal.aborted) {
      await this.#drop(watcher)
      return
    }
    this.#watcher = watcher
    watcher.on('error', (err: Error) => this.#resync(watcher, err))
    watcher.on('disconnected', (err: Error) => this.#resync(watcher, err))
  }

  #onData (watcher: Watcher, res: IWatchResponse): void {
    try {
      for (const ev of res.events) {
        const key = this.#keys.parse(ev.kv.key.toString())
        if (key !== undefined) {
          if (ev.type === 'Put') applyPut(this.#state, key, ev.kv)
          else applyDelete(this.#state, key)
        }
      }
    } catch (err) {
      // the model refused a change: this replica no longer mirrors etcd, so rebuild it from a listing
      log.error('watch event did not apply: rebuilding the replica', { err: err as Error })
      this.#resync(watcher, err)
      return
    }
    const last = res.events.at(-1)
    // with no events, a progress notification: everything up to the header's revision was sent
    this.#advance(Number(last === undefined ? res.header.revision : last.kv.mod_revision))
  }

  #resync (watcher: Watcher, why: unknown): void {
    if (watcher !== this.#watcher || this.#closed.signal.aborted) return
    this.#watcher = undefined
    this.resyncs++
    log.warn('etcd watch lost: re-listing', { err: why instanceof Error ? why : new Error(String(why)) })
    void this.#drop(watcher)
    this.#resyncing = (async () => {
      for (let attempt = 0; !this.#closed.signal.aborted; attempt++) {
        try {
          await this.#listAndWatch(Date.now() + RESYNC_ATTEMPT_MS)
          return
        } catch (err) {
          log.debug('re-list failed', { err: err as Error, attempt })
          await sleep(pauseMs(attempt), undefined, { signal: this.#closed.signal }).catch(() => {})
        }
      }
    })().finally(() => { this.#resyncing = undefined })
  }

  async #drop (watcher: Watcher): Promise<void> {
    watcher.removeAllListeners('data')
    // the cancel may lose the race and fail later: its rejection must not go unhandled (it crashed
    // a tracker under bench load with "Deadline exceeded")
    const cancelled = watcher.cancel().catch((err: unknown) => log.debug('cancelling a watch failed', { err: err as Error }))
    await Promise.race([cancelled, sleep(500)])
  }
}

function pauseMs (attempt: number): number {
  return Math.min(RESYNC_PAUSE_MS * 2 ** attempt, MAX_RESYNC_PAUSE_MS)
}

function applyPut (s: State, key: ParsedKey, kv: IKeyValue): void {
  const text = kv.value.toString()
  const bad = (): void => log.warn('ignoring a malformed value', { kind: key.kind, key: kv.key.toString().slice(0, 200) })
  const m = s.model
  // a child whose group or file is gone: every write compares its parent, so only a bug or a hand
  // edit leaves one; skipping it keeps the replica usable (rebuilding would find it again)
  const orphan = (): void => log.warn('ignoring a record whose group or file does not exist', { kind: key.kind, key: kv.key.toString().slice(0, 200) })
  switch (key.kind) {
    case 'user': {
      const v = decodeUser(text)
      if (v === undefined) return bad()
      return m.putUser({ userId: key.userId, passwordHash: v.passwordHash, createdAt: v.createdAt })
    }
    case 'session': {
      const v = decodeSession(text)
      if (v === undefined) return bad()
      return m.putSession({ tokenHash: key.tokenHash, userId: v.userId, clientId: v.clientId, createdAt: v.createdAt })
    }
    case 'group': {
      const v = decodeHead(text)
      if (v === undefined) return bad()
      m.putGroup(key.groupId, v.owner, v.createdAt)
      s.heads.set(key.groupId, { create: Number(kv.create_revision), mod: Number(kv.mod_revision), nonce: v.n })
      return
    }
    case 'member': {
      const v = decodeMember(text)
      if (v === undefined) return bad()
      if (!m.hasGroup(key.groupId)) return orphan()
      return m.putMember(key.groupId, key.userId, v.joinedAt)
    }
    case 'request': {
      const v = decodeRequest(text)
      if (v === undefined) return bad()
      if (!m.hasGroup(key.groupId)) return orphan()
      return m.putRequest(key.groupId, key.userId, v.requestedAt)
    }
    case 'file': {
      const meta = decodeFile(text)
      if (meta === undefined) return bad()
      if (!m.hasGroup(key.groupId)) return orphan()
      m.putFile(key.groupId, key.fileId, meta)
      const files = s.files.get(key.groupId)
      if (files === undefined) s.files.set(key.groupId, new Set([key.fileId]))
      else files.add(key.fileId)
      return
    }
    case 'share': {
      const v = decodeShare(text)
      if (v === undefined) return bad()
      if (s.files.get(key.groupId)?.has(key.fileId) !== true) return orphan()
      return m.putShare(key.groupId, key.fileId, { userId: key.userId, clientId: key.clientId }, v.active)
    }
    case 'presence': {
      const v = decodePresence(text)
      if (v === undefined) return bad()
      s.presence.set(key.clientId, Object.freeze({ clientId: key.clientId, userId: v.userId, peerAddr: v.peerAddr }))
      s.presenceVersion++
      return
    }
    case 'sync': return
  }
}

function applyDelete (s: State, key: ParsedKey): void {
  const m = s.model
  switch (key.kind) {
    case 'user': return // users are never deleted
    case 'session': { m.deleteSession(key.tokenHash); return }
    case 'group':
      m.deleteGroup(key.groupId)
      s.heads.delete(key.groupId)
      s.files.delete(key.groupId)
      return
    case 'member': return m.deleteMember(key.groupId, key.userId)
    case 'request': { m.deleteRequest(key.groupId, key.userId); return }
    case 'file':
      m.deleteFile(key.groupId, key.fileId)
      s.files.get(key.groupId)?.delete(key.fileId)
      return
    case 'share': { m.deleteShare(key.groupId, key.fileId, { userId: key.userId, clientId: key.clientId }); return }
    case 'presence': { if (s.presence.delete(key.clientId)) s.presenceVersion++; return }
    case 'sync': return
  }
}
