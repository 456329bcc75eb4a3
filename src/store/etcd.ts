// The Store over etcd, for several trackers sharing one cluster (ARCHITECTURE.md "State"). Owns what
// each Store method writes and the rules it checks first; the key layout is etcd-keys.ts, reads come
// from the watch-fed replica (etcd-replica.ts), atomic and retry-safe writes from etcd-txn.ts,
// deadlines from etcd-call.ts, presence leases from etcd-presence.ts, the group rules from
// tracker/groups.ts.
//
// Consistency: a write is linearizable (an etcd transaction) and returns once this tracker's
// replica holds it; reads are served from the replica, so another tracker's change shows here after
// the watch delivers it (milliseconds on one machine). Every call has a deadline (CALL_BUDGET_MS):
// with etcd unreachable or without quorum it fails with STORE_UNAVAILABLE instead of hanging, and
// such a failure is ambiguous (the write may still apply), like any timeout.

import { Etcd3, isRecoverableError } from 'etcd3'
import type { IOperation } from 'etcd3'
import type { IBackoff } from 'cockatiel'
import { ExponentialBackoff, handleWhen, noop, retry } from 'cockatiel'
import { PeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import type { FileMeta } from '../protocol/file-meta.ts'
import { decideLeave } from '../tracker/groups.ts'
import { Call, CALL_BUDGET_MS } from './etcd-call.ts'
import type { EtcdCallOptions } from './etcd-call.ts'
import { encodeFile, encodeValue, Keys } from './etcd-keys.ts'
import { PresenceLeases, PRESENCE_TTL_S } from './etcd-presence.ts'
import { Replica } from './etcd-replica.ts'
import { MAX_TXN_OPS, Writer } from './etcd-txn.ts'
import type { Compare } from './etcd-txn.ts'
import type { MemoryModel } from './memory-model.ts'
import type {
  CallOptions, GroupAccess, GroupRecord, GroupSummary, JoinRequest, LeaveOutcome, Presence, SessionRecord, Store,
  StoredFile, UserRecord,
} from './store.ts'
import { ReplicaReads } from './replica-reads.ts'

const log = createLog('store:etcd')

/** How long openEtcdStore waits for the first listing of the state. */
const OPEN_TIMEOUT_MS = 10_000
/** etcd refuses requests over 1.5 MiB by default (--max-request-bytes); a file record must fit in one. */
export const MAX_FILE_RECORD_BYTES = 1_400_000
/** Listing pages can carry many file records: well above gRPC's 4 MiB default. */
const MAX_RECEIVE_BYTES = 64 * 1024 * 1024

export interface EtcdStoreOptions {
  /** Client URLs of the members, e.g. ['http://127.0.0.1:2379']. */
  endpoints: string[]
  /** Every key lives under it (default /peershare/v1). */
  prefix?: string
  /** Budget of one Store call, every etcd round trip and wait included (default CALL_BUDGET_MS). */
  callTimeoutMs?: number
  /** TTL of this tracker's presence lease (default PRESENCE_TTL_S). */
  presenceTtlS?: number
  /** How long to wait for etcd at open (default 10 s). */
  openTimeoutMs?: number
}

type SharerId = { userId: string, clientId: string }

export async function openEtcdStore (opts: EtcdStoreOptions): Promise<EtcdStore> {
  if (opts.endpoints.length === 0) throw new PeershareError('BAD_REQUEST', 'the etcd store needs at least one endpoint')
  const client = new Etcd3({
    hosts: opts.endpoints,
    grpcOptions: { 'grpc.max_receive_message_length': MAX_RECEIVE_BYTES },
    faultHandling: {
      // etcd3's default breaker refuses every call to a host for 5 s after 3 failures, so the store
      // would stay "unavailable" after etcd is back; one retry on another member instead
      host: () => noop,
      global: retry(handleWhen(isRecoverableError), { maxAttempts: 2 }),
      // the default backs off to 30 s; a lost watch must come back in about a second. etcd3 calls
      // next() on what it is given, as on its own default (a factory, despite its typings)
      watchBackoff: new ExponentialBackoff({ initialDelay: 50, maxDelay: 1_000 }) as unknown as IBackoff<unknown>,
    },
  })
  const keys = new Keys(opts.prefix)
  const replica = new Replica(client, keys)
  try {
    await replica.start(opts.openTimeoutMs ?? OPEN_TIMEOUT_MS)
  } catch (err) {
    await replica.close()
    client.close()
    throw err
  }
  log.info('etcd store open', { endpoints: opts.endpoints, prefix: keys.root, revision: replica.revision })
  return new EtcdStore(client, keys, replica, opts.callTimeoutMs ?? CALL_BUDGET_MS, opts.presenceTtlS ?? PRESENCE_TTL_S)
}

export class EtcdStore extends ReplicaReads implements Store {
  readonly #client: Etcd3
  readonly #keys: Keys
  readonly #replica: Replica
  readonly #w: Writer
  readonly #presence: PresenceLeases
  readonly #budgetMs: number
  #closing: Promise<void> | undefined

  /** Use openEtcdStore. */
  constructor (client: Etcd3, keys: Keys, replica: Replica, budgetMs: number, presenceTtlS: number) {
    super()
    this.#client = client
    this.#keys = keys
    this.#replica = replica
    this.#budgetMs = budgetMs
    this.#w = new Writer(client, keys, replica)
    this.#presence = new PresenceLeases(client, keys, replica, presenceTtlS)
  }

  /** The etcd revision the replica has applied, and how often it was rebuilt (tests, logs). */
  get replicaState (): { revision: number, resyncs: number, leaseGrants: number } {
    return { revision: this.#replica.revision, resyncs: this.#replica.resyncs, leaseGrants: this.#presence.grants }
  }

  close (): Promise<void> {
    this.#closing ??= (async () => {
      // the lease first: client.close() would leave its keepalives running
      await this.#presence.close()
      await this.#replica.close()
      this.#client.close()
    })()
    return this.#closing
  }

  // ---------------------------------------------------------------------------------------------
  // Users and sessions: create-if-absent; never updated.

  async createUser (user: UserRecord, opts?: CallOptions): Promise<void> {
    const call = this.#call('create user', opts)
    const exists = (): PeershareError => new PeershareError('EXISTS', `user ${user.userId} already exists: choose another user id`)
    if (this.#model.getUser(user.userId) !== undefined) throw exists() // users are never deleted: the replica suffices
    const n = this.#w.nonce()
    const value = encodeValue({ passwordHash: user.passwordHash, createdAt: user.createdAt, n })
    if (!await this.#w.create(call, this.#keys.user(user.userId), value, n)) throw exists()
  }


  async createSession (s: SessionRecord, opts?: CallOptions): Promise<void> {
    const call = this.#call('create session', opts)
    const n = this.#w.nonce()
    const value = encodeValue({ userId: s.userId, clientId: s.clientId, createdAt: s.createdAt, n })
    if (!await this.#w.create(call, this.#keys.session(s.tokenHash), value, n)) {
      throw new PeershareError('EXISTS', 'that session already exists')
    }
  }


  async deleteSession (tokenHash: string, opts?: CallOptions): Promise<boolean> {
    const call = this.#call('delete session', opts)
    const key = this.#keys.session(tokenHash)
    const res = await this.#w.txn(call, [[key, 'Version', '>', 0]], [this.#w.delete(key)])
    if (res.succeeded) await this.#w.caughtUp(res, call)
    return res.succeeded
  }

  // ---------------------------------------------------------------------------------------------
  // Groups

  async createGroup (groupId: string, owner: string, now: number, opts?: CallOptions): Promise<void> {
    const call = this.#call('create group', opts)
    const n = this.#w.nonce()
    const head = encodeValue({ owner, createdAt: now, n })
    const member = this.#w.put(this.#keys.member(groupId, owner), encodeValue({ joinedAt: now }))
    if (!await this.#w.create(call, this.#keys.group(groupId), head, n, [member])) {
      throw new PeershareError('EXISTS', `group ${groupId} already exists: choose another name, or join_group ${groupId}`)
    }
  }





  async addRequest (groupId: string, userId: string, now: number, opts?: CallOptions): Promise<void> {
    const call = this.#call('add join request', opts)
    const k = this.#keys
    await this.#w.group(call, groupId, (model, _head, n) => {
      requireGroup(model, groupId)
      if (model.isMember(groupId, userId)) throw new PeershareError('ALREADY_MEMBER', `you are already a member of ${groupId}`)
      if (model.hasRequest(groupId, userId)) {
        throw new PeershareError('EXISTS', `you already asked to join ${groupId}: wait for its owner to accept`)
      }
      const request = k.request(groupId, userId)
      return {
        result: undefined,
        keepHead: true, // requests do not change what leave, accept or share decide on
        cmps: [[k.member(groupId, userId), 'Version', '==', 0], [request, 'Create', '==', 0]],
        ops: [this.#w.put(request, encodeValue({ requestedAt: now, n }))],
        created: request,
      }
    })
  }


  async acceptRequest (groupId: string, userId: string, now: number, opts?: CallOptions): Promise<void> {
    const call = this.#call('accept join request', opts)
    const k = this.#keys
    await this.#w.group(call, groupId, (model) => {
      requireRequest(model, groupId, userId)
      const request = k.request(groupId, userId)
      return {
        result: undefined,
        cmps: [[request, 'Version', '>', 0]], // requests do not rewrite the head: compare it by itself
        ops: [this.#w.delete(request), this.#w.put(k.member(groupId, userId), encodeValue({ joinedAt: now }))],
      }
    })
  }

  async rejectRequest (groupId: string, userId: string, opts?: CallOptions): Promise<void> {
    const call = this.#call('reject join request', opts)
    const request = this.#keys.request(groupId, userId)
    await this.#w.group(call, groupId, (model) => {
      requireRequest(model, groupId, userId)
      return { result: undefined, cmps: [[request, 'Version', '>', 0]], ops: [this.#w.delete(request)] }
    })
  }

  async leaveGroup (groupId: string, userId: string, opts?: CallOptions): Promise<LeaveOutcome> {
    const call = this.#call('leave group', opts)
    const k = this.#keys
    return await this.#w.group(call, groupId, (model) => {
      const group = model.getGroup(groupId)
      if (group === undefined) throw new PeershareError('NOT_FOUND', `group ${groupId} does not exist`)
      const outcome = decideLeave(group, userId)
      if (outcome.groupDeleted) {
        return {
          result: outcome,
          deletesGroup: true,
          ops: [this.#w.delete(k.group(groupId)), this.#w.deletePrefix(k.groupChildren(groupId)),
            this.#w.deletePrefix(k.groupFiles(groupId)), this.#w.deletePrefix(k.groupShares(groupId))],
        }
      }
      // the leaver stops sharing into the group; a file no one else shares goes with it
      const ops: IOperation[] = []
      for (const f of model.listFiles(groupId)) {
        const mine = f.sharers.filter((s) => s.userId === userId).length
        if (mine === 0) continue
        if (ops.length + 2 > MAX_TXN_OPS - 2) {
          // more than one transaction can hold: stop sharing in this one, leave in a later one
          return { result: outcome, ops, partial: true }
        }
        ops.push(this.#w.deletePrefix(k.userFileShares(groupId, f.fileId, userId)))
        if (mine === f.sharers.length) ops.push(this.#w.delete(k.file(groupId, f.fileId)))
      }
      ops.push(this.#w.delete(k.member(groupId, userId)))
      return { result: outcome, ops, owner: outcome.newOwner ?? group.owner }
    })
  }

  // ---------------------------------------------------------------------------------------------
  // Files and shares

  async addShare (groupId: string, fileId: string, meta: FileMeta, sharer: SharerId, now: number,
    opts?: CallOptions): Promise<{ newFile: boolean }> {
    const call = this.#call('add share', opts)
    const k = this.#keys
    let record: string | undefined
    return await this.#w.group<{ newFile: boolean }>(call, groupId, (model) => {
      requireGroup(model, groupId)
      if (!model.isMember(groupId, sharer.userId)) {
        throw new PeershareError('NOT_MEMBER', `you are not a member of ${groupId}: join_group ${groupId} first`)
      }
      const existing = model.getFile(groupId, meta.name)
      if (existing !== undefined && existing.fileId !== fileId) {
        throw new PeershareError('EXISTS', `a different file named ${meta.name} is already shared in ${groupId}: rename yours`)
      }
      const share = encodeValue({ active: true })
      if (existing !== undefined) {
        const mine = existing.sharers.find((s) => s.userId === sharer.userId && s.clientId === sharer.clientId)
        if (mine?.active === true) return { done: { newFile: false } }
        return { result: { newFile: false }, ops: [this.#w.put(k.share(groupId, fileId, sharer.userId, sharer.clientId), share)] }
      }
      record ??= encodeFile(meta)
      if (Buffer.byteLength(record) > MAX_FILE_RECORD_BYTES) {
        throw new PeershareError('BAD_REQUEST', `${meta.name} has too many pieces for the etcd store (its record would exceed etcd's request limit)`)
      }
      return {
        result: { newFile: true },
        ops: [this.#w.put(k.file(groupId, fileId), record), this.#w.put(k.share(groupId, fileId, sharer.userId, sharer.clientId), share)],
      }
    })
  }

  async removeShare (groupId: string, fileName: string, sharer: SharerId, opts?: CallOptions): Promise<{ fileRemoved: boolean }> {
    const call = this.#call('remove share', opts)
    const k = this.#keys
    return await this.#w.group(call, groupId, (model) => {
      const file = model.getFile(groupId, fileName)
      if (file === undefined || !model.isSharing(groupId, file.fileId, sharer)) {
        throw new PeershareError('NOT_FOUND', `you do not share ${fileName} in ${groupId}`)
      }
      const fileRemoved = file.sharers.length === 1 // that one sharer is this one
      const ops = [this.#w.delete(k.share(groupId, file.fileId, sharer.userId, sharer.clientId))]
      if (fileRemoved) ops.push(this.#w.delete(k.file(groupId, file.fileId)))
      return { result: { fileRemoved }, ops }
    })
  }

  async setSharesActive (sharer: SharerId, active: boolean, opts?: CallOptions): Promise<void> {
    const call = this.#call(active ? 'activate shares' : 'deactivate shares', opts)
    await this.#setActive(call, sharer, active, (model) => {
      const all: Array<{ groupId: string, fileId: string, active: boolean }> = []
      for (const groupId of model.membershipsOf(sharer.userId).member) {
        for (const f of model.listFiles(groupId)) {
          const s = f.sharers.find((x) => x.userId === sharer.userId && x.clientId === sharer.clientId)
          if (s !== undefined) all.push({ groupId, fileId: f.fileId, active: s.active })
        }
      }
      return all
    })
  }

  async reactivateShares (sharer: SharerId, shares: Array<{ groupId: string, fileId: string }>,
    opts?: CallOptions): Promise<{ restored: number, gone: Array<{ groupId: string, fileId: string }> }> {
    const call = this.#call('reactivate shares', opts)
    let restored = 0
    let gone: Array<{ groupId: string, fileId: string }> = []
    await this.#setActive(call, sharer, true, (model) => {
      const present: Array<{ groupId: string, fileId: string, active: boolean }> = []
      gone = []
      for (const s of shares) {
        const file = model.isSharing(s.groupId, s.fileId, sharer) ? model.getFileById(s.groupId, s.fileId) : undefined
        const mine = file?.sharers.find((x) => x.userId === sharer.userId && x.clientId === sharer.clientId)
        if (mine === undefined) gone.push({ groupId: s.groupId, fileId: s.fileId })
        else present.push({ groupId: s.groupId, fileId: s.fileId, active: mine.active })
      }
      restored = present.length
      return present
    })
    return { restored, gone }
  }



  // ---------------------------------------------------------------------------------------------
  // Presence

  async presenceUp (presence: Presence, opts?: CallOptions): Promise<void> {
    await this.#presence.up(presence, this.#call('announce presence', opts))
  }

  async presenceDown (clientId: string, opts?: CallOptions): Promise<void> {
    await this.#presence.down(clientId, this.#call('withdraw presence', opts))
  }

  async getPresence (clientIds: readonly string[], opts?: CallOptions): Promise<Map<string, Presence>> {
    this.enter(opts)
    return this.#presence.get(clientIds)
  }

  presenceVersion (): number {
    return this.#replica.presenceVersion
  }

  // ---------------------------------------------------------------------------------------------

  get #model (): MemoryModel {
    return this.#replica.model
  }

  protected replica (): MemoryModel {
    return this.#model
  }

  protected isClosing (): boolean {
    return this.#closing !== undefined
  }

  #call (what: string, opts: EtcdCallOptions | undefined): Call {
    this.enter(opts)
    return new Call(what, opts, this.#budgetMs)
  }

  /**
   * Sets the listed shares' active flag, MAX_TXN_OPS at a time, each only if it still exists (a
   * share removed meanwhile must not come back). `list` is evaluated again after every
   * transaction, on the replica as it then is.
   */
  async #setActive (call: Call, sharer: SharerId, active: boolean,
    list: (model: MemoryModel) => Array<{ groupId: string, fileId: string, active: boolean }>): Promise<void> {
    const k = this.#keys
    const value = encodeValue({ active })
    for (let conflicts = 0; conflicts < 8;) {
      const todo = list(this.#model).filter((s) => s.active !== active).slice(0, MAX_TXN_OPS)
      if (todo.length === 0) return
      const keys = todo.map((s) => k.share(s.groupId, s.fileId, sharer.userId, sharer.clientId))
      const cmps = keys.map((key): Compare => [key, 'Version', '>', 0])
      const res = await this.#w.txn(call, cmps, keys.map((key) => this.#w.put(key, value)))
      if (res.succeeded) {
        await this.#w.caughtUp(res, call)
      } else {
        conflicts++
        await this.#w.sync(call)
      }
    }
    throw new PeershareError('STORE_UNAVAILABLE', 'shares are changing too fast to update them: try again')
  }
}

function requireGroup (model: MemoryModel, groupId: string): void {
  if (!model.hasGroup(groupId)) throw new PeershareError('NOT_FOUND', `group ${groupId} does not exist`)
}

function requireRequest (model: MemoryModel, groupId: string, userId: string): void {
  requireGroup(model, groupId)
  if (!model.hasRequest(groupId, userId)) throw new PeershareError('NOT_FOUND', `${userId} has not asked to join ${groupId}`)
}
