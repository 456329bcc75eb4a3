// One client's control connection on the tracker: frames → decodeRequest → handlers.ts → replies,
// in completion order. Owns the per-connection limits (frame size, requests in flight, unread
// replies, hello deadline) and the presence bookkeeping of its client (which connection holds a
// client's presence). server.ts accepts the sockets and holds what connections share.

import type net from 'node:net'
import { closeAfterFlush } from '../common/close-after-flush.ts'
import { PeershareError, toPeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import {
  MAX_FRAME_BYTES, MAX_UNAUTH_FRAME_BYTES, UNAUTHENTICATED_OPS, decodeRequest, encodeMessage, errorResponse, peekRequestId,
} from '../protocol/control.ts'
import type { ControlRequest, ControlResponse } from '../protocol/control.ts'
import { FrameDecoder, encodeFrame } from '../protocol/frame.ts'
import type { TicketSigner } from '../security/tickets.ts'
import type { PeerInfo } from '../security/transport.ts'
import type { Store } from '../store/store.ts'
import { withDeadline } from './deadline.ts'
import { SESSION_OPS, handlers } from './handlers.ts'
import type { ConnectionState, HandlerContext } from './handlers.ts'
import type { HolderRegistry } from './holders.ts'
import type { LoginThrottle } from './login-throttle.ts'
import { EncodedResult, encodeResultFrame } from './reply-cache.ts'
import type { ReplyCache } from './reply-cache.ts'
import type { TicketCache } from './ticket-cache.ts'

const log = createLog('tracker:conn')

/** Requests one connection may have running at once; the next ones wait in its queue. */
export const MAX_IN_FLIGHT = 32
// Reading pauses while the queue is not empty, so it only ever holds the frames of one socket chunk
// (a few thousand tiny frames at most); past this cap they get BUSY instead of a queue slot.
export const MAX_QUEUED = 1024
/** Replies the client has not read yet beyond this: stop reading its requests until 'drain'. */
export const MAX_UNREAD_REPLY_BYTES = 1024 * 1024
/** A connection that has not said hello by then is dropped (it holds a socket for nothing). */
export const HELLO_TIMEOUT_MS = 10_000
/** After an error that ends the connection, how long the last reply gets to reach a client that is not reading. */
const LINGER_MS = 2_000
// TCP keep-alive so a client that vanished (cable, crash of its host) loses its presence in minutes
const KEEPALIVE_MS = 30_000

/** What every connection of one server shares (server.ts makes it). */
export interface Shared {
  store: Store
  trackerNo: number
  ticketSigner: TicketSigner | undefined
  ticketTtlMs: number | undefined
  now: () => number
  helloTimeoutMs: number
  maxInFlight: number
  maxQueued: number
  maxUnreadReplyBytes: number
  /** clientId → the connection whose login/resume put the client's presence up. */
  presenceHolders: Map<string, ControlConnection>
  /** Partial holders of files (running downloads): they live and die with the client's presence. */
  holders: HolderRegistry
  /** Encoded list_files / list_groups replies (reply-cache.ts). */
  replies: ReplyCache
  /** Signed download tickets, reused across connections (ticket-cache.ts). */
  tickets: TicketCache
  /** Failed logins per account and address, across connections (a guesser reconnects). */
  loginThrottle: LoginThrottle
  /** Requests running, all connections together (a count, not a set: a Set's churn was old-generation garbage). */
  running: number
  /** Made by close() while requests run: resolved when the last one ends. */
  allDone: PromiseWithResolvers<void> | undefined
  connections: Set<ControlConnection>
  stopping: boolean
}

export class ControlConnection {
  readonly #socket: net.Socket
  readonly #shared: Shared
  readonly #decoder = new FrameDecoder(MAX_UNAUTH_FRAME_BYTES)
  readonly #state: ConnectionState
  readonly #ctx: HandlerContext
  readonly #logFields: Record<string, unknown>
  #inFlight = 0
  readonly #queue: ControlRequest[] = []
  /** A hello was decoded (it may still wait in the queue): the frames after it are not "before hello". */
  #helloSeen = false
  /** login/resume/logout run one at a time, and other ops wait for them: a pipelined request sees the login before it. */
  #sessionChain: Promise<unknown> = Promise.resolve()
  /** Session ops in the chain and not yet settled: while there are none, other ops need not wait on it. */
  #sessionOps = 0
  #paused = false
  #waitingDrain = false
  #ending = false
  #closed = false
  #helloTimer: NodeJS.Timeout | undefined

  constructor (socket: net.Socket, shared: Shared, connNo: number, peer: PeerInfo) {
    this.#socket = socket
    this.#shared = shared
    this.#state = { clientId: undefined, peerAddr: undefined, session: undefined, certFingerprint: peer.fingerprint, remoteAddress: peer.remoteAddress }
    this.#logFields = { conn: connNo, remote: `${peer.remoteAddress}:${peer.remotePort}` }
    this.#ctx = {
      store: shared.store,
      trackerNo: shared.trackerNo,
      ticketSigner: shared.ticketSigner,
      ...(shared.ticketTtlMs === undefined ? {} : { ticketTtlMs: shared.ticketTtlMs }),
      conn: this.#state,
      now: shared.now,
      claimPresence: (userId) => this.#claimPresence(userId),
      releasePresence: () => this.#releasePresence(),
      holders: shared.holders,
      replies: shared.replies,
      tickets: shared.tickets,
      loginThrottle: shared.loginThrottle,
      holdsPresence: () => !this.#closed && this.#state.clientId !== undefined &&
        this.#shared.presenceHolders.get(this.#state.clientId) === this,
    }
    socket.setKeepAlive(true, KEEPALIVE_MS)
    this.#helloTimer = setTimeout(() => {
      log.info('no hello in time: closing', { ...this.#logFields, ms: shared.helloTimeoutMs })
      socket.destroy()
    }, shared.helloTimeoutMs)
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    socket.on('error', (err) => log.debug('socket error', { ...this.#logFields, err }))
    socket.on('close', () => this.#onClose())
    shared.connections.add(this)
    log.debug('connected', this.#logFields)
  }

  get queued (): number { return this.#queue.length }
  get unreadReplyBytes (): number { return this.#closed ? 0 : this.#socket.writableLength }

  /**
   * More reply bytes wait for this client than it may have unread. Never below the socket's
   * highWaterMark: 'drain', which ends the wait, comes only after a write went past it.
   */
  #replyBacklog (): boolean {
    return this.#socket.writableLength > Math.max(this.#shared.maxUnreadReplyBytes, this.#socket.writableHighWaterMark)
  }

  #onData (chunk: Buffer): void {
    if (this.#ending) return
    let frames: Buffer[]
    try {
      frames = this.#decoder.push(chunk)
    } catch (err) {
      this.#drop('bad framing', err)
      return
    }
    for (const body of frames) {
      if (this.#ending) return
      this.#onFrame(body)
    }
    this.#pump()
  }

  #onFrame (body: Buffer): void {
    let req: ControlRequest
    try {
      req = decodeRequest(body)
    } catch (err) {
      const id = peekRequestId(body)
      if (id === undefined) {
        this.#drop('unusable request', err)
      } else {
        // bad op or arguments with a usable id: say so and carry on (before hello: say so and end)
        this.#send(errorResponse(id, toPeershareError(err)))
        if (!this.#helloSeen) this.#end('bad request before hello')
      }
      return
    }
    if (!this.#helloSeen && req.op !== 'hello') {
      this.#send(errorResponse(req.id, new PeershareError('PROTOCOL', 'the first request must be hello')))
      this.#end(`${req.op} before hello`)
      return
    }
    if (req.op === 'hello') this.#helloSeen = true
    if (this.#queue.length >= this.#shared.maxQueued) {
      this.#send(errorResponse(req.id, new PeershareError('BUSY', `more than ${this.#shared.maxQueued} requests waiting: wait for replies`)))
      return
    }
    this.#queue.push(req)
  }

  /**
   * Starts queued requests while there is room, in arrival order. Not while the client leaves
   * replies unread: each started request adds a reply, so a client that pipelines a full queue of
   * big requests and stops reading would otherwise have them all answered into the tracker's memory.
   * What waits is the queued requests (small), and they start again on 'drain' (#updateFlow).
   */
  #pump (): void {
    while (!this.#ending && this.#inFlight < this.#shared.maxInFlight && !this.#replyBacklog()) {
      const req = this.#queue.shift()
      if (req === undefined) break
      this.#run(req)
    }
    this.#updateFlow()
  }

  #run (req: ControlRequest): void {
    const handler = handlers[req.op] as (ctx: HandlerContext, args: unknown) => Promise<unknown>
    let work: Promise<unknown>
    if (SESSION_OPS.has(req.op)) {
      this.#sessionOps++
      work = this.#sessionChain.then(() => handler(this.#ctx, req.args))
      this.#sessionChain = work.then(() => { this.#sessionOps-- }, () => { this.#sessionOps-- })
    } else if (UNAUTHENTICATED_OPS.has(req.op) || this.#sessionOps === 0) {
      // hello changes the state synchronously, before its first await; with no session op
      // pending, waiting for the chain would only cost a promise and a turn of the microtask queue
      work = handler(this.#ctx, req.args)
    } else {
      work = this.#sessionChain.then(() => handler(this.#ctx, req.args))
    }
    if (this.#state.clientId !== undefined) clearTimeout(this.#helloTimer)
    this.#inFlight++
    this.#shared.running++
    work.then((result) => {
      try {
        if (result instanceof EncodedResult) this.#sendParts(encodeResultFrame(req.id, result))
        else this.#send({ id: req.id, ok: true, result })
      } finally {
        this.#done()
      }
    }, (err: unknown) => {
      try {
        this.#fail(req, err)
      } finally {
        this.#done()
      }
    })
  }

  /** A request's reply is written (or the connection is gone): its slot is free. */
  #done (): void {
    this.#inFlight--
    if (--this.#shared.running === 0) this.#shared.allDone?.resolve()
    // authenticated connections may send big frames (upload_file metadata), others only small ones
    this.#decoder.maxFrameBytes = this.#state.session === undefined ? MAX_UNAUTH_FRAME_BYTES : MAX_FRAME_BYTES
    this.#pump()
  }

  #fail (req: ControlRequest, err: unknown): void {
    const e = toPeershareError(err)
    if (e.code === 'INTERNAL') log.error('request failed', { ...this.#logFields, op: req.op, err })
    else log.debug('request refused', { ...this.#logFields, op: req.op, code: e.code })
    this.#send(errorResponse(req.id, e))
    if (e.code === 'PROTOCOL') this.#end(e.message)
  }

  #send (msg: ControlResponse): void {
    this.#sendFrame(encodeFrame(encodeMessage(msg)))
  }

  #sendFrame (frame: Buffer): void {
    if (this.#ending) return // also true once closed
    this.#socket.write(frame)
    this.#updateFlow()
  }

  /** One frame given as buffers in order (shared reply bytes are written, not copied): one writev. */
  #sendParts (parts: Buffer[]): void {
    if (parts.length === 1) return this.#sendFrame(parts[0]!)
    if (this.#ending) return
    this.#socket.cork()
    for (const p of parts) this.#socket.write(p)
    this.#socket.uncork()
    this.#updateFlow()
  }

  /** Reads from the socket only while the connection has room for more work and its client reads its replies. */
  #updateFlow (): void {
    if (this.#closed || this.#ending) return
    const unread = this.#replyBacklog()
    const full = this.#queue.length > 0 || this.#inFlight >= this.#shared.maxInFlight
    if (unread && !this.#waitingDrain) {
      this.#waitingDrain = true
      this.#socket.once('drain', () => {
        this.#waitingDrain = false
        this.#pump() // the queue waited for this too; #pump ends with #updateFlow
      })
    }
    if ((unread || full) && !this.#paused) {
      this.#paused = true
      this.#socket.pause()
      log.debug('paused reading', { ...this.#logFields, unread, full })
    } else if (!unread && !full && this.#paused) {
      this.#paused = false
      this.#socket.resume()
    }
  }

  /** Closes at once: the peer broke the framing, nothing it sends can be answered. */
  #drop (reason: string, err: unknown): void {
    log.info('dropping connection', { ...this.#logFields, reason, detail: err instanceof Error ? err.message : String(err) })
    this.#ending = true
    this.#socket.destroy()
  }

  /** Stops reading, lets the last reply go out, then closes (destroyed after LINGER_MS if the client does not read). */
  #end (reason: string): void {
    if (this.#ending) return
    log.info('ending connection', { ...this.#logFields, reason })
    this.#ending = true
    closeAfterFlush(this.#socket, LINGER_MS)
  }

  #onClose (): void {
    this.#closed = true
    this.#ending = true
    this.#shared.connections.delete(this)
    this.#queue.length = 0 // nobody will read their replies
    clearTimeout(this.#helloTimer)
    log.debug('closed', this.#logFields)
    if (this.#shared.stopping) return
    this.#releasePresence().catch((err: unknown) => log.warn('presence down failed', { ...this.#logFields, err }))
  }

  async #claimPresence (userId: string): Promise<void> {
    const clientId = this.#state.clientId!
    if (this.#closed) return // logged in after the client went away: it is not present
    // the newest connection of a client holds its presence: an older socket closing later must not clear it
    this.#shared.presenceHolders.set(clientId, this)
    await withDeadline((o) => this.#shared.store.presenceUp({ clientId, userId, peerAddr: this.#state.peerAddr! }, o))
  }

  async #releasePresence (): Promise<void> {
    const clientId = this.#state.clientId
    if (clientId === undefined || this.#shared.presenceHolders.get(clientId) !== this) return
    this.#shared.presenceHolders.delete(clientId)
    this.#shared.holders.releaseAll(clientId) // a client that is gone (or logged out) serves nothing
    await withDeadline((o) => this.#shared.store.presenceDown(clientId, o))
  }
}
