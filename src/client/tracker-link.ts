// The control connection to the trackers: request ids, answers matched to requests, per-request
// deadlines, pushed events, and failover. It tries the trackers of the trackers file in order, says
// `hello` first on every connection, `resume`s the session when it has a token, and when a connection
// drops moves on to the next tracker (wrapping, with a capped backoff after a full round). A tracker
// that keeps the connection open but stops answering (stopped, wedged) is caught by a ping heartbeat
// and treated as a drop.
// What a session or a share means is core.ts's business; this file only moves requests.

import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { PeershareError } from '../common/errors.ts'
import type { ErrorCode } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import type { TrackerAddress } from '../common/tracker-info.ts'
import { MAX_REQUEST_ID, PROTOCOL_VERSION } from '../protocol/control.ts'
import type { Op, OpArgs, OpResults } from '../protocol/control.ts'
import type { Identity } from '../security/identity.ts'
import { trackerTrust } from '../security/tls.ts'
import type { KnownTrackers } from '../security/tls.ts'
import { connect } from '../security/transport.ts'
import type { ConnectOptions } from '../security/transport.ts'
import { Conn, abortError } from './control-conn.ts'

const log = createLog('client:link')

/** How long a command waits for a tracker, reconnection included, before it gives up. */
export const REQUEST_TIMEOUT_MS = 10_000
const HANDSHAKE_TIMEOUT_MS = 5_000
const CONNECT_TIMEOUT_MS = 3_000
const BACKOFF_FIRST_MS = 100
// a restarted tracker is found again within ~2 s, without hammering a dead one
const BACKOFF_MAX_MS = 2_000
// a connection that dies sooner than this counts as a failed attempt (no tight reconnect loop)
const MIN_HEALTHY_MS = 1_000
/**
 * Heartbeat: after this long without a byte from the tracker we ping it, and a ping unanswered
 * within HEARTBEAT_TIMEOUT_MS drops the connection. TCP keep-alive cannot see a tracker whose
 * kernel still acknowledges (SIGSTOP, a blocked event loop): failover within ~4 s instead.
 */
export const HEARTBEAT_IDLE_MS = 1_500
export const HEARTBEAT_TIMEOUT_MS = 2_500
/** Requests waiting for a connection or an answer: front ends send one at a time, so this is slack. */
export const MAX_PENDING = 64
/** Read-only operations are re-sent after a reconnection; others might have been applied already. */
const RETRY_AFTER_DROP: ReadonlySet<Op> = new Set(['ping', 'list_groups', 'list_files', 'list_requests', 'get_file', 'hold'])
/** resume errors that say nothing about the session itself: try another tracker instead. */
const TRANSIENT: ReadonlySet<ErrorCode> = new Set(['STORE_UNAVAILABLE', 'UNAVAILABLE', 'TIMEOUT', 'BUSY', 'INTERNAL', 'PROTOCOL'])

/** How the link secures its connections: TLS 1.3 (the default of the client), or plaintext on purpose. */
export type LinkSecurity =
  /** Our identity; trackers are pinned by the trackers file, else trusted on first use (`known`). */
  | { identity: Identity, known: KnownTrackers, trackersFile: string }
  /** --insecure-plaintext: benchmarking only. */
  | { insecurePlaintext: true }

export interface LinkOptions {
  trackers: readonly TrackerAddress[]
  clientId: string
  peerAddr: string
  security: LinkSecurity
  /** Session token to resume on every connection. */
  token?: string
}

export interface ConnectedInfo {
  address: string
  trackerNo: number
  /** The session token was accepted again (no new login needed). */
  resumed: boolean
  /**
   * The tracker's ticket public key (64 hex) from hello, only when its certificate was verified
   * (pinned or trusted): the peer server accepts tickets signed by it.
   */
  ticketKey?: string
}

export interface LinkEvents {
  connected: [info: ConnectedInfo]
  /** A reconnection (after a drop), possibly to another tracker. */
  switched: [info: ConnectedInfo]
  disconnected: [address: string]
  /** A tracker presented a certificate we do not trust (pin mismatch, changed since first use): refused. */
  untrusted: [address: string, error: PeershareError]
  /** The tracker refused the saved token: the user must log in again. */
  sessionLost: [error: PeershareError]
  /** A message the tracker pushed without being asked. */
  event: [name: string, data: unknown]
}

export interface RequestOptions {
  timeoutMs?: number
  signal?: AbortSignal
}

export class TrackerLink extends EventEmitter<LinkEvents> {
  readonly #trackers: readonly TrackerAddress[]
  readonly #clientId: string
  readonly #peerAddr: string
  readonly #security: LinkSecurity
  /** address → why its certificate was refused, until it presents a trusted one: said, not hidden by failover. */
  readonly #untrusted = new Map<string, PeershareError>()
  #token: string | undefined
  #conn: Conn | undefined
  #waiters = new Set<{ resolve: (c: Conn) => void }>()
  #inflight = 0
  #nextId = 1
  readonly #stop = new AbortController()
  #running: Promise<void> | undefined
  #firstRound: Promise<void>
  #firstRoundDone!: () => void

  constructor (opts: LinkOptions) {
    super()
    if (opts.trackers.length === 0) throw new PeershareError('BAD_REQUEST', 'no tracker to connect to')
    this.#trackers = opts.trackers
    this.#clientId = opts.clientId
    this.#peerAddr = opts.peerAddr
    this.#security = opts.security
    this.#token = opts.token
    this.#firstRound = new Promise((resolve) => { this.#firstRoundDone = resolve })
  }

  /** Starts connecting; resolves once connected, or once every tracker was tried once. */
  async start (): Promise<void> {
    this.#running ??= this.#run()
    await this.#firstRound
  }

  /** The tracker currently connected and ready, if any. */
  get connected (): ConnectedInfo | undefined {
    return this.#conn?.info
  }

  get token (): string | undefined {
    return this.#token
  }

  setToken (token: string | undefined): void {
    this.#token = token
  }

  /** Trackers refused for their certificate (address → error), until they present a trusted one. */
  get untrusted (): ReadonlyMap<string, PeershareError> {
    return this.#untrusted
  }

  /** Every tracker address, for messages. */
  get addresses (): string[] {
    return this.#trackers.map(addressOf)
  }

  /**
   * Sends one request and returns the tracker's result. While no tracker is connected the request
   * waits for the reconnection, up to its timeout: then UNAVAILABLE. A tracker's error answer is
   * thrown as a PeershareError with the tracker's code and message.
   */
  async request<O extends Op> (op: O, args: OpArgs[O], opts: RequestOptions = {}): Promise<OpResults[O]> {
    if (this.#stop.signal.aborted) throw new PeershareError('UNAVAILABLE', 'the client is closing')
    if (this.#inflight >= MAX_PENDING) throw new PeershareError('BUSY', `more than ${MAX_PENDING} requests are waiting for the tracker`)
    const timeoutMs = opts.timeoutMs ?? REQUEST_TIMEOUT_MS
    let phase: 'waiting' | 'sent' = 'waiting'
    let conn: Conn | undefined
    const ctl = new AbortController()
    const timer = setTimeout(() => {
      ctl.abort(phase === 'waiting'
        ? this.#unreachable()
        : new PeershareError('TIMEOUT', `the tracker at ${conn?.info.address ?? '?'} did not answer ${op} within ${timeoutMs / 1000} s: try again`))
    }, timeoutMs)
    const signal = AbortSignal.any([ctl.signal, this.#stop.signal, ...(opts.signal === undefined ? [] : [opts.signal])])
    this.#inflight++
    try {
      for (;;) {
        phase = 'waiting'
        conn = await this.#ready(signal)
        phase = 'sent'
        try {
          return await conn.call(op, args, this.#takeId(), signal) as OpResults[O]
        } catch (err) {
          // the answer was lost with the connection: safe to ask again only when asking changes nothing
          if (conn.closed && !signal.aborted && RETRY_AFTER_DROP.has(op)) continue
          throw err
        }
      }
    } finally {
      clearTimeout(timer)
      this.#inflight--
    }
  }

  /** Closes the connection and stops reconnecting. Idempotent. */
  async close (): Promise<void> {
    this.#stop.abort(new PeershareError('UNAVAILABLE', 'the client is closing'))
    this.#conn?.destroy()
    this.#firstRoundDone()
    await this.#running
  }

  #unreachable (): PeershareError {
    if (this.#untrusted.size > 0) {
      // the reason the user must act on: a connection refusal elsewhere would only hide it
      const why = [...this.#untrusted.values()].map((e) => e.message).join('; ')
      return new PeershareError('UNTRUSTED', `no trusted tracker reachable: ${why}`)
    }
    return new PeershareError('UNAVAILABLE', `no tracker reachable (tried ${this.addresses.join(', ')}): start one with npm start`)
  }

  #takeId (): number {
    const id = this.#nextId
    this.#nextId = id >= MAX_REQUEST_ID ? 1 : id + 1
    return id
  }

  #ready (signal: AbortSignal): Promise<Conn> {
    const conn = this.#conn
    if (conn?.ready === true) return Promise.resolve(conn)
    return new Promise<Conn>((resolve, reject) => {
      const waiter = {
        resolve: (c: Conn) => {
          signal.removeEventListener('abort', onAbort)
          resolve(c)
        },
      }
      const onAbort = (): void => {
        this.#waiters.delete(waiter)
        reject(abortError(signal))
      }
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      this.#waiters.add(waiter)
    })
  }

  async #run (): Promise<void> {
    const stop = this.#stop.signal
    let index = 0
    let failedInRound = 0
    let backoffMs = BACKOFF_FIRST_MS
    let everConnected = false
    while (!stop.aborted) {
      const tracker = this.#trackers[index]!
      const address = addressOf(tracker)
      let healthy = false
      try {
        const socket = await this.#dial(tracker, stop)
        this.#untrusted.delete(address)
        const conn = new Conn(socket, (name, data) => this.emit('event', name, data))
        this.#conn = conn
        try {
          const info = await this.#handshake(conn, tracker)
          const since = Date.now()
          conn.markReady(info)
          log.info('connected to tracker', { address, resumed: info.resumed })
          failedInRound = 0
          backoffMs = BACKOFF_FIRST_MS
          this.emit('connected', info)
          if (everConnected) this.emit('switched', info)
          everConnected = true
          this.#firstRoundDone()
          for (const w of this.#waiters) w.resolve(conn)
          this.#waiters.clear()
          const beat = this.#heartbeat(conn)
          await conn.whenClosed
          clearInterval(beat)
          healthy = Date.now() - since >= MIN_HEALTHY_MS
          if (!stop.aborted) {
            log.info('lost the tracker connection', { address })
            this.emit('disconnected', address)
          }
        } finally {
          conn.destroy()
          this.#conn = undefined
        }
      } catch (err) {
        if (stop.aborted) break
        if (err instanceof PeershareError && err.code === 'UNTRUSTED') {
          const known = this.#untrusted.get(address)
          this.#untrusted.set(address, err)
          // said once per certificate: the failover loop retries every round
          if (known?.message !== err.message) {
            log.info('refused a tracker certificate', { address, error: err }) // the front end shows the event
            this.emit('untrusted', address, err)
          }
        } else {
          log.info('cannot use tracker', { address, error: err as Error })
        }
      }
      if (!healthy) failedInRound++
      index = (index + 1) % this.#trackers.length
      if (failedInRound >= this.#trackers.length) {
        this.#firstRoundDone()
        failedInRound = 0
        try {
          await sleep(backoffMs, undefined, { signal: stop })
        } catch {
          break // closing
        }
        backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS)
      }
    }
  }

  /** Pings an idle connection; one unanswered ping closes it (the run loop then fails over). */
  #heartbeat (conn: Conn): NodeJS.Timeout {
    let pinging = false
    const beat = setInterval(() => {
      if (pinging || conn.closed || Date.now() - conn.lastHeardAt < HEARTBEAT_IDLE_MS) return
      pinging = true
      const signal = AbortSignal.any([AbortSignal.timeout(HEARTBEAT_TIMEOUT_MS), this.#stop.signal])
      conn.call('ping', {}, this.#takeId(), signal).then(() => { pinging = false }, (err: unknown) => {
        pinging = false
        if (conn.closed || this.#stop.signal.aborted) return
        // an error answer is still an answer: only silence means the tracker is gone
        if (err instanceof PeershareError && err.code !== 'TIMEOUT') return
        log.info('the tracker stopped answering: dropping its connection', { address: conn.info.address })
        conn.destroy()
      })
    }, HEARTBEAT_IDLE_MS / 3)
    beat.unref()
    return beat
  }

  async #dial (tracker: TrackerAddress, signal: AbortSignal): Promise<Socket> {
    const sec = this.#security
    const base = { signal, timeoutMs: CONNECT_TIMEOUT_MS }
    const opts: ConnectOptions = 'insecurePlaintext' in sec
      ? { ...base, insecurePlaintext: true }
      : { ...base, tls: { identity: sec.identity, trust: trackerTrust(tracker, sec.known, sec.trackersFile), label: `tracker ${tracker.no} (${addressOf(tracker)})` } }
    return (await connect(tracker.host, tracker.port, opts)).socket
  }

  /** hello, then resume when there is a token. Throws when this tracker cannot be used. */
  async #handshake (conn: Conn, tracker: TrackerAddress): Promise<ConnectedInfo> {
    const signal = AbortSignal.any([AbortSignal.timeout(HANDSHAKE_TIMEOUT_MS), this.#stop.signal])
    const hello = await conn.call('hello', { version: PROTOCOL_VERSION, clientId: this.#clientId, peerAddr: this.#peerAddr },
      this.#takeId(), signal) as Partial<OpResults['hello']> | null
    const trackerNo = typeof hello?.trackerNo === 'number' ? hello.trackerNo : tracker.no
    const info: ConnectedInfo = { address: addressOf(tracker), trackerNo, resumed: false }
    // only a verified tracker may tell us which ticket key to trust (the connection passed its trust check)
    if (!('insecurePlaintext' in this.#security) && typeof hello?.ticketKey === 'string') info.ticketKey = hello.ticketKey
    const token = this.#token
    if (token === undefined) return info
    try {
      await conn.call('resume', { token }, this.#takeId(), signal)
      info.resumed = true
    } catch (err) {
      if (!(err instanceof PeershareError) || TRANSIENT.has(err.code) || conn.closed) throw err
      if (this.#token === token) this.#token = undefined
      log.info('the tracker refused the saved session', { code: err.code })
      this.emit('sessionLost', err)
    }
    return info
  }
}

function addressOf (t: TrackerAddress): string {
  return t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`
}
