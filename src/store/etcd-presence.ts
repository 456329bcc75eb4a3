// Presence over etcd: each tracker holds one lease (TTL PRESENCE_TTL_S, kept alive by the etcd3
// client) and writes `presence/<clientId>` for the clients connected to it under that lease. If the
// tracker dies, etcd drops the lease and with it those keys within the TTL, so its clients read as
// offline everywhere until they reconnect to another tracker (which writes them under its own lease).
// Reads come from the replica, which the watch keeps current.
//
// The etcd3 client reports a lost lease late (after 2×TTL without a keepalive), so this module keeps
// the time of the last successful keepalive itself: past one TTL the lease may be gone on the
// server, and a new lease is granted and every presence of this tracker written again under it.

import { EtcdLeaseInvalidError } from 'etcd3'
import type { Etcd3, Lease } from 'etcd3'
import { createLog } from '../common/log.ts'
import { Call, storeError } from './etcd-call.ts'
import { encodeValue } from './etcd-keys.ts'
import type { Keys } from './etcd-keys.ts'
import type { Replica } from './etcd-replica.ts'
import type { Presence } from './store.ts'

const log = createLog('store:etcd:presence')

/** A dead tracker's clients go offline within this (plus the watch's delivery, milliseconds). */
export const PRESENCE_TTL_S = 3
/** Presences written again at once after a new lease is granted. */
const REPUT_BATCH = 32
/** Closing: revoking the lease removes our presences at once rather than after the TTL. */
const REVOKE_MS = 1_000

export class PresenceLeases {
  readonly #client: Etcd3
  readonly #keys: Keys
  readonly #replica: Replica
  readonly #ttlS: number
  #lease: { lease: Lease, id: string } | undefined
  #granting: Promise<{ lease: Lease, id: string }> | undefined
  #lastKeepalive = 0
  /** What this tracker has announced, to write again under a new lease. */
  readonly #own = new Map<string, Presence>()
  readonly #timer: NodeJS.Timeout
  #closed = false

  constructor (client: Etcd3, keys: Keys, replica: Replica, ttlS: number = PRESENCE_TTL_S) {
    this.#client = client
    this.#keys = keys
    this.#replica = replica
    this.#ttlS = ttlS
    this.#timer = setInterval(() => this.#check(), (ttlS * 1000) / 3)
    this.#timer.unref()
  }

  /** How many leases were granted (1 in a quiet life; more after etcd trouble). For tests. */
  grants = 0

  async up (p: Presence, call: Call): Promise<void> {
    this.#own.set(p.clientId, Object.freeze({ ...p }))
    const current = await this.#current(call)
    let res
    try {
      res = await call.request((o) => current.lease.put(this.#keys.presence(p.clientId))
        .value(encodeValue({ userId: p.userId, peerAddr: p.peerAddr })).options(o).exec())
    } catch (err) {
      if (!(err instanceof EtcdLeaseInvalidError || (err as Error).cause instanceof EtcdLeaseInvalidError)) throw err
      // etcd says the lease is gone (expired or revoked) before the keepalives noticed: take another
      if (this.#lease === current) this.#lastKeepalive = 0
      return await this.up(p, call)
    }
    // a renewal that ran meanwhile may have missed this write: it then sits on the old lease
    if (this.#lease !== current && this.#own.get(p.clientId) !== undefined) return await this.up(p, call)
    await this.#replica.caughtUp(Number(res.header.revision), call)
  }

  async down (clientId: string, call: Call): Promise<void> {
    this.#own.delete(clientId)
    const current = this.#lease
    if (current === undefined) return
    // only our own key: the client may already have announced itself through another tracker
    const key = this.#keys.presence(clientId)
    const res = await call.request((o) => this.#client.if(key, 'Lease', '==', current.id)
      .then(this.#client.delete().key(key)).options(o).commit())
    if (res.succeeded) await this.#replica.caughtUp(Number(res.header.revision), call)
  }

  get (clientIds: readonly string[]): Map<string, Presence> {
    const out = new Map<string, Presence>()
    for (const id of clientIds) {
      const p = this.#replica.presence.get(id)
      if (p !== undefined) out.set(id, p)
    }
    return out
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    this.#own.clear()
    const current = this.#lease ?? await this.#granting?.catch(() => undefined)
    this.#lease = undefined
    if (current === undefined) return
    // revoke stops the keepalives too; etcd3's client.close() would not
    try {
      await current.lease.revoke({ deadline: Date.now() + REVOKE_MS })
    } catch (err) {
      log.debug('lease revoke failed: it will expire by itself', { err: err as Error })
      current.lease.release()
    }
  }

  #fresh (): boolean {
    return this.#lease !== undefined && Date.now() - this.#lastKeepalive <= this.#ttlS * 1000
  }

  async #current (call: Call): Promise<{ lease: Lease, id: string }> {
    if (this.#fresh() && this.#lease !== undefined) return this.#lease
    this.#granting ??= this.#grant(call.deadline).finally(() => { this.#granting = undefined })
    try {
      return await call.race(this.#granting)
    } catch (err) {
      // a grant that failed (quorum lost: DEADLINE_EXCEEDED) is the store being unavailable, not a bug
      if (call.signal?.aborted === true) throw err
      throw storeError(err, 'granting a presence lease')
    }
  }

  /** Grants a new lease, moves every presence of ours onto it, then lets the old one go. */
  async #grant (deadline: number): Promise<{ lease: Lease, id: string }> {
    const lease = this.#client.lease(this.#ttlS, { deadline })
    lease.on('keepaliveSucceeded', () => {
      if (this.#lease?.lease === lease) this.#lastKeepalive = Date.now()
    })
    lease.on('lost', (err) => {
      if (this.#lease?.lease !== lease) return
      log.warn('presence lease lost', { err })
      this.#lastKeepalive = 0 // stale: the next write or check grants another
      setImmediate(() => this.#check()) // our clients are offline until then: do not wait for the tick
    })
    let id: string
    try {
      id = await lease.grant()
    } catch (err) {
      lease.release()
      throw err
    }
    if (this.#closed) {
      await lease.revoke({ deadline: Date.now() + REVOKE_MS }).catch(() => lease.release())
      throw new Error('the store is closed')
    }
    this.grants++
    const old = this.#lease
    this.#lease = { lease, id }
    this.#lastKeepalive = Date.now()
    if (old !== undefined) void this.#moveOnto(this.#lease, old.lease)
    return this.#lease
  }

  async #moveOnto (current: { lease: Lease, id: string }, old: Lease): Promise<void> {
    const call = new Call('moving presences onto a new lease', undefined)
    let moved = true
    const own = [...this.#own.values()]
    log.info('writing presences under a new lease', { count: own.length })
    for (let i = 0; i < own.length; i += REPUT_BATCH) {
      const results = await Promise.allSettled(own.slice(i, i + REPUT_BATCH).map((p) =>
        call.request((o) => current.lease.put(this.#keys.presence(p.clientId))
          .value(encodeValue({ userId: p.userId, peerAddr: p.peerAddr })).options(o).exec())))
      if (results.some((r) => r.status === 'rejected')) moved = false
    }
    // revoking deletes what is still on the old lease: only once everything is on the new one
    if (moved) await old.revoke({ deadline: Date.now() + REVOKE_MS }).catch(() => old.release())
    else old.release()
  }

  /** Periodic: a lease without a keepalive for a whole TTL is replaced while presences depend on it. */
  #check (): void {
    if (this.#closed || this.#own.size === 0 || this.#fresh() || this.#granting !== undefined) return
    log.warn('presence lease stale: granting a new one',
      { sinceKeepaliveMs: this.#lastKeepalive === 0 ? 'lost' : Date.now() - this.#lastKeepalive })
    this.#granting = this.#grant(Date.now() + this.#ttlS * 1000).finally(() => { this.#granting = undefined })
    this.#granting.catch((err: unknown) => log.debug('lease grant failed; will try again', { err: err as Error }))
  }
}
