// How the etcd store writes: transactions with compares, read-your-writes, and optimistic group
// writes. etcd.ts says what each Store method writes; this module makes it atomic and safe to retry.
//
// A group write is decided from the replica (the same rules as the SQLite store, on the same
// MemoryModel), then committed only if the group's head still has the mod revision the replica
// knows: every write to a group's members, files or shares rewrites the head, so an unchanged head
// proves the decision was taken on the group's current state. If the compare fails, the replica was
// behind or another tracker won a race: sync (see below) and decide again. Writes to one group from
// this tracker queue behind each other, so they do not fail each other's compares.
//
// Every write returns only once the replica holds its revision, so a read through this tracker
// after a write sees it. A refusal decided from the replica (NOT_FOUND, EXISTS, ...) is confirmed
// after a sync, so a change made through another tracker a moment ago is not refused as missing.
// sync = write the `sync` key and wait for its event: the watch delivers in revision order, so the
// replica then holds everything committed before.

import { randomBytes } from 'node:crypto'
import type { Etcd3, IKeyValue, IOperation, ITxnResponse } from 'etcd3'
import { PeershareError } from '../common/errors.ts'
import type { Call } from './etcd-call.ts'
import { encodeValue } from './etcd-keys.ts'
import type { Keys } from './etcd-keys.ts'
import type { GroupHead, Replica } from './etcd-replica.ts'
import type { MemoryModel } from './memory-model.ts'

/** etcd refuses a transaction with more than 128 operations (--max-txn-ops); stay clear of it. */
export const MAX_TXN_OPS = 100
/** Lost compares in a row before a write gives up (each one means another tracker just won). */
const MAX_CONFLICTS = 8

export type Compare = [key: string, column: 'Create' | 'Mod' | 'Version' | 'Lease', cmp: '==' | '>' | '<' | '!=', value: number | string]

/** What a group write decided: extra compares and operations; the head compare and rewrite are added. */
export interface GroupPlan<T> {
  result: T
  cmps?: Compare[]
  ops: IOperation[]
  /** The head's owner after this write (default: unchanged). */
  owner?: string
  /** The operations delete the group, head included: no rewrite. */
  deletesGroup?: boolean
  /** Compare the head's create revision only and leave it alone (adding a join request). */
  keepHead?: boolean
  /**
   * A key this write creates with the nonce given to decide(): when the compare fails, its value is
   * read back in the same transaction, and our nonce there means an earlier attempt applied. (Plans
   * that rewrite the head are recognised by the head's nonce instead.)
   */
  created?: string
  /** More is left to do after this transaction (a leave split for MAX_TXN_OPS): decide again. */
  partial?: boolean
}

/** What decide() returns when there is nothing to write. */
export interface NoWrite<T> { done: T }

export class Writer {
  readonly #client: Etcd3
  readonly #keys: Keys
  readonly #replica: Replica
  readonly #tails = new Map<string, Promise<void>>()
  readonly #instance = randomBytes(6).toString('hex')
  #seq = 0

  constructor (client: Etcd3, keys: Keys, replica: Replica) {
    this.#client = client
    this.#keys = keys
    this.#replica = replica
  }

  /** Unique per write: recognises our own value after an ambiguous failure. */
  nonce (): string {
    return `${this.#instance}.${(++this.#seq).toString(36)}`
  }

  put (key: string, value: string): IOperation {
    return this.#client.put(key).value(value)
  }

  delete (key: string): IOperation {
    return this.#client.delete().key(key)
  }

  deletePrefix (prefix: string): IOperation {
    return this.#client.delete().prefix(prefix)
  }

  async txn (call: Call, cmps: readonly Compare[], ops: readonly IOperation[], orElse: readonly IOperation[] = []): Promise<ITxnResponse> {
    const [first, ...rest] = cmps
    if (first === undefined) throw new Error('etcd store: a transaction without compares')
    return await call.request(async (options) => {
      let b = this.#client.if(...first)
      for (const c of rest) b = b.and(...c)
      return await b.then(...ops).else(...orElse).options(options).commit()
    })
  }

  /** Waits until the replica holds everything committed in etcd before now. */
  async sync (call: Call): Promise<void> {
    const res = await call.request(async (options) => await this.#client.put(this.#keys.sync).value(this.#instance).options(options).exec())
    await this.#replica.caughtUp(Number(res.header.revision), call)
  }

  async caughtUp (res: ITxnResponse, call: Call): Promise<void> {
    await this.#replica.caughtUp(Number(res.header.revision), call)
  }

  /**
   * Creates `key` (and runs `extra`) unless it exists. Returns false when it exists and is not
   * ours (its value's `n` is not `nonce`), once the replica shows it.
   */
  async create (call: Call, key: string, value: string, nonce: string, extra: readonly IOperation[] = []): Promise<boolean> {
    const res = await this.txn(call, [[key, 'Create', '==', 0]], [this.put(key, value), ...extra], [this.#client.get(key)])
    if (res.succeeded) {
      await this.caughtUp(res, call)
      return true
    }
    const kv: IKeyValue | undefined = res.responses[0]?.response_range?.kvs[0]
    if (kv === undefined) return false // created and deleted within the transaction: cannot be
    await this.#replica.caughtUp(Number(kv.mod_revision), call)
    return nonceOf(kv) === nonce // ours when an earlier attempt applied and only its answer was lost
  }

  /**
   * A write to one group, decided from the replica and committed under a compare on its head.
   * `decide` gets the nonce its values must carry (see GroupPlan.created).
   */
  async group<T> (call: Call, groupId: string,
    decide: (model: MemoryModel, head: GroupHead | undefined, nonce: string) => GroupPlan<T> | NoWrite<T>): Promise<T> {
    return await this.#queued(groupId, call, async () => {
      let synced = false
      // every plan sent so far: one whose answer was lost (timeout, dropped connection, or etcd3's
      // own retry meeting it) may have applied, and must then not be decided again
      let tried: Array<{ plan: GroupPlan<T>, nonce: string }> = []
      for (let conflicts = 0; conflicts < MAX_CONFLICTS;) {
        const model = this.#replica.model
        const head = this.#replica.heads.get(groupId)
        const mine = tried.find((t) => appliedByHead(t.plan, t.nonce, head))
        if (mine !== undefined) return mine.plan.result
        const nonce = this.nonce()
        let plan: GroupPlan<T> | NoWrite<T>
        try {
          plan = decide(model, head, nonce)
        } catch (err) {
          if (!(err instanceof PeershareError) || synced) throw err
          await this.sync(call) // a refusal must hold against etcd's latest state, not a lagging replica
          synced = true
          continue
        }
        if ('done' in plan) return plan.done
        if (head === undefined) throw new Error(`etcd store: a plan for group ${groupId} that the replica does not have`)
        const headKey = this.#keys.group(groupId)
        const cmps: Compare[] = [plan.keepHead === true ? [headKey, 'Create', '==', head.create] : [headKey, 'Mod', '==', head.mod], ...plan.cmps ?? []]
        const ops = [...plan.ops]
        if (plan.deletesGroup !== true && plan.keepHead !== true) {
          const group = model.getGroup(groupId)
          if (group === undefined) throw new Error(`etcd store: group ${groupId} has a head but no record`)
          ops.push(this.put(headKey, encodeValue({ owner: plan.owner ?? group.owner, createdAt: group.createdAt, n: nonce })))
        }
        const res = await this.txn(call, cmps, ops, plan.created === undefined ? [] : [this.#client.get(plan.created)])
        if (res.succeeded) {
          await this.caughtUp(res, call)
          if (plan.partial !== true) return plan.result
          tried = [] // that part is done; the rest is decided afresh
          continue
        }
        const kv: IKeyValue | undefined = res.responses[0]?.response_range?.kvs[0]
        if (plan.created !== undefined && kv !== undefined && nonceOf(kv) === nonce) {
          await this.#replica.caughtUp(Number(kv.mod_revision), call)
          return plan.result
        }
        tried.push({ plan, nonce })
        conflicts++
        await this.sync(call)
        synced = true
      }
      throw new PeershareError('STORE_UNAVAILABLE', `group ${groupId} is changing too fast to write to it: try again`)
    })
  }

  /** Runs `fn` after every earlier write to the same group from this tracker has finished. */
  async #queued<T> (key: string, call: Call, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve()
    const { promise: done, resolve: release } = Promise.withResolvers<void>()
    const tail = prev.then(() => done)
    this.#tails.set(key, tail)
    try {
      await call.race(prev)
      return await fn()
    } finally {
      release()
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    }
  }
}

/** Whether the replica shows `plan` (sent with `nonce`) applied, judging by the group's head. */
function appliedByHead<T> (plan: GroupPlan<T>, nonce: string, head: GroupHead | undefined): boolean {
  // only the last member deletes a group, and that member was us: a vanished head is our doing
  if (plan.deletesGroup === true) return head === undefined
  return plan.keepHead !== true && head?.nonce === nonce
}

/** The `n` field of a value we wrote, if any. */
function nonceOf (kv: IKeyValue): string | undefined {
  try {
    const v: unknown = JSON.parse(kv.value.toString())
    return typeof v === 'object' && v !== null && typeof (v as { n?: unknown }).n === 'string' ? (v as { n: string }).n : undefined
  } catch {
    return undefined
  }
}
