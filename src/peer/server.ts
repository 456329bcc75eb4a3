// The peer server: accepts wire connections and serves blocks of the files the client core makes
// available through findSource (transmission's Mediator: the peer layer never sees shares or downloads).
// Per connection: handshake (known file id, else close) → our handshake + bitfield → a bounded queue of
// requests served one at a time, with back-pressure and the shared upload limit.
// With `security` (the client's default): TLS 1.3, and a connection is served only once its handshake
// carries a ticket that verifies against a trusted tracker key, is unexpired, is for the file asked for
// and names the certificate of this connection (security/tickets.ts); a later handshake for the same
// file renews the ticket, and an expired one ends the connection. Refusals are logged with the reason.

import type net from 'node:net'
import type { Bitfield } from '../common/bitfield.ts'
import { PeershareError, toPeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import { pieceLength } from '../protocol/file-meta.ts'
import type { FileMeta } from '../protocol/file-meta.ts'
import {
  MAX_QUEUED_REQUESTS, RejectReason, checkBlockRange, encodeBitfield, encodeHandshake, encodeHave, encodeReject,
} from '../protocol/wire.ts'
import type { WireCancel, WireHandshake, WireRequest } from '../protocol/wire.ts'
import type { Identity } from '../security/identity.ts'
import { shortFingerprint } from '../security/identity.ts'
import { TICKET_CLOCK_SKEW_MS, verifyTicket } from '../security/tickets.ts'
import type { TicketFields, TrustedTicketKeys } from '../security/tickets.ts'
import { listen } from '../security/transport.ts'
import type { Listener } from '../security/transport.ts'
import { PeerConnection } from './connection.ts'
import type { PeerConnectionOptions } from './connection.ts'
import { TokenBucket } from './rate-limit.ts'

const log = createLog('peer:server')

/** A peer must send its handshake this soon after connecting. */
export const HANDSHAKE_TIMEOUT_MS = 10_000
/** Requests a connection reads ahead of the block being sent (8 blocks = two pieces). */
export const READ_AHEAD = 8
/**
 * Whole pieces a connection keeps read. A downloader asks for a piece's blocks close together, so the
 * server reads each piece once (one 512 KiB read, not four of 128 KiB: half the CPU, measured) and
 * serves its blocks as views; a piece is dropped once all its blocks are sent, or, past this many,
 * the oldest is (2 MiB per connection at most).
 */
const PIECES_KEPT = 4

/** What the server serves for one file id: a shared file (storage.ts ShareFile) or a running download. */
export interface PieceSource {
  meta: FileMeta
  /** Pieces that may be served now (live: a download's grows). */
  have (): Bitfield
  /** Exactly `length` bytes at (piece, offset); FILE_CHANGED when the file no longer matches its metadata. */
  read (piece: number, offset: number, length: number): Promise<Buffer>
  /** Called by the server when a read failed with FILE_CHANGED (once per affected connection): drop the share. */
  onChanged? (): void
}

export interface PeerServerOptions {
  host: string
  port: number
  findSource: (fileId: string) => PieceSource | undefined
  /** Bytes/s for all connections together; 0 or absent: no cap. */
  uploadLimit?: number
  /** Keep-alive and idle timeout of each connection (tests shorten them). */
  connection?: PeerConnectionOptions
  /**
   * TLS with our identity, and tickets required: `trustedKeys` are the ticket keys of the trackers we
   * trust (read at each handshake, so keys learnt later count). Absent: plain TCP, no tickets
   * (--insecure-plaintext, and tests of the wire alone).
   */
  security?: { identity: Identity, trustedKeys: () => TrustedTicketKeys, now?: () => number }
}

export interface PeerServer {
  readonly address: { host: string, port: number }
  /** Tells the peers connected for `fileId` that we now have `piece` (a download verified it). */
  notifyHave (fileId: string, piece: number): void
  /** Closes every connection serving `fileId` (share stopped, file changed). */
  dropFile (fileId: string): void
  setUploadLimit (bytesPerSecond: number): void
  /** Open connections (all files). */
  connectionCount (): number
  /** Stops accepting and closes every connection. Idempotent. */
  close (): Promise<void>
}

export async function startPeerServer (opts: PeerServerOptions): Promise<PeerServer> {
  const bucket = new TokenBucket(opts.uploadLimit ?? 0)
  const served = new Set<Served>()
  const listener: Listener = await listen({
    host: opts.host,
    port: opts.port,
    ...(opts.security === undefined ? { insecurePlaintext: true } : { tls: { identity: opts.security.identity } }),
    onConnection: (socket, peer) => {
      const s = new Served(socket, opts, bucket, peer.fingerprint)
      served.add(s)
      s.conn.once('close', () => served.delete(s))
    },
  })
  return {
    address: listener.address,
    notifyHave (fileId, piece) {
      for (const s of served) if (s.fileId === fileId) s.conn.send(encodeHave(piece))
    },
    dropFile (fileId) {
      for (const s of served) if (s.fileId === fileId) s.conn.close(new PeershareError('UNAVAILABLE', 'no longer served'))
    },
    setUploadLimit (bytesPerSecond) {
      bucket.rate = bytesPerSecond
    },
    connectionCount: () => served.size,
    async close () {
      for (const s of served) s.conn.close()
      await listener.close()
    },
  }
}

/** One accepted connection. */
class Served {
  readonly conn: PeerConnection
  fileId: string | undefined
  #source: PieceSource | undefined
  #queue: WireRequest[] = []
  #pumping = false
  #reading = 0 // requests taken off the queue whose blocks are not sent yet (they count against the cap)
  readonly #pieces = new Map<number, { data: Promise<Buffer>, unsent: number }>() // oldest first
  readonly #abort = new AbortController()
  readonly #opts: PeerServerOptions
  readonly #bucket: TokenBucket
  readonly #handshakeTimer: NodeJS.Timeout
  /** The TLS certificate of the other end (undefined over plaintext). */
  readonly #peerFingerprint: string | undefined
  /** Ends the connection when its ticket expires (renewed by a later handshake). */
  #expiryTimer: NodeJS.Timeout | undefined

  constructor (socket: net.Socket, opts: PeerServerOptions, bucket: TokenBucket, peerFingerprint: string | undefined) {
    this.#opts = opts
    this.#bucket = bucket
    this.#peerFingerprint = peerFingerprint
    const conn = this.conn = new PeerConnection(socket, opts.connection)
    this.#handshakeTimer = setTimeout(() => {
      conn.close(new PeershareError('TIMEOUT', `no handshake from ${conn.remote} within ${HANDSHAKE_TIMEOUT_MS} ms`))
    }, HANDSHAKE_TIMEOUT_MS)
    conn.on('handshake', (msg) => this.#onHandshake(msg))
    conn.on('request', (msg) => this.#onRequest(msg))
    conn.on('cancel', (msg) => this.#onCancel(msg))
    // a downloader may announce what it has; we do not download on this connection, so it is ignored
    conn.on('bitfield', () => this.#requireHandshake('bitfield'))
    conn.on('have', () => this.#requireHandshake('have'))
    conn.on('piece', () => conn.close(new PeershareError('PROTOCOL', `${conn.remote} sent a piece we never asked for`)))
    conn.on('reject', () => conn.close(new PeershareError('PROTOCOL', `${conn.remote} sent a reject to a server`)))
    conn.once('close', (reason) => {
      clearTimeout(this.#handshakeTimer)
      clearTimeout(this.#expiryTimer)
      this.#abort.abort()
      this.#queue = []
      if (reason !== undefined) log.debug('connection closed', { remote: conn.remote, code: reason.code, why: reason.message })
    })
  }

  #onHandshake (msg: WireHandshake): void {
    const conn = this.conn
    if (this.fileId !== undefined && (this.#opts.security === undefined || msg.fileId !== this.fileId)) {
      conn.close(new PeershareError('PROTOCOL', `${conn.remote} sent a second handshake`))
      return
    }
    // before anything else, so a refused peer cannot even learn whether we serve the file
    const ticket = this.#checkTicket(msg)
    if (ticket === false) return
    if (this.fileId !== undefined) return // a renewed ticket for the connection's file: nothing to answer
    const source = this.#opts.findSource(msg.fileId)
    if (source === undefined) {
      conn.close(new PeershareError('NOT_FOUND', `${conn.remote} asked for file ${msg.fileId.slice(0, 8)}, which we do not serve`))
      return
    }
    clearTimeout(this.#handshakeTimer)
    this.fileId = msg.fileId
    this.#source = source
    conn.allowBlocks()
    conn.batch(() => {
      conn.send(encodeHandshake(msg.fileId))
      conn.send(encodeBitfield(source.have()))
    })
  }

  /** The verified ticket (its expiry armed), true without security, false when refused (connection closed). */
  #checkTicket (msg: WireHandshake): TicketFields | true | false {
    const security = this.#opts.security
    if (security === undefined) return true
    const conn = this.conn
    const now = (security.now ?? Date.now)()
    let ticket: TicketFields
    try {
      ticket = verifyTicket(msg.ticket, { trustedKeys: security.trustedKeys(), now, fileId: msg.fileId, peerFingerprint: this.#peerFingerprint ?? '' })
    } catch (err) {
      const e = toPeershareError(err)
      log.warn('refused a peer', {
        remote: conn.remote,
        peer: this.#peerFingerprint === undefined ? undefined : shortFingerprint(this.#peerFingerprint),
        fileId: msg.fileId.slice(0, 8),
        reason: e.message,
      })
      conn.close(e)
      return false
    }
    clearTimeout(this.#expiryTimer)
    // the ticket's expiry bounds the connection too: a member who left the group stops getting pieces
    this.#expiryTimer = setTimeout(() => {
      log.info('ticket expired: closing', { remote: conn.remote, fileId: msg.fileId.slice(0, 8) })
      conn.close(new PeershareError('BAD_TICKET', 'ticket expired'))
    }, Math.max(0, ticket.expiresAt + TICKET_CLOCK_SKEW_MS - now))
    this.#expiryTimer.unref()
    return ticket
  }

  #requireHandshake (what: string): boolean {
    if (this.#source !== undefined) return true
    this.conn.close(new PeershareError('PROTOCOL', `${this.conn.remote} sent ${what} before the handshake`))
    return false
  }

  #onRequest (req: WireRequest): void {
    if (!this.#requireHandshake('a request')) return
    const source = this.#source!
    const reject = (reason: RejectReason): void => { this.conn.send(encodeReject(req.piece, req.offset, req.length, reason)) }
    try {
      checkBlockRange(source.meta, req.piece, req.offset, req.length)
    } catch {
      reject(RejectReason.BadRange) // a buggy peer learns why; one that keeps at it only wastes its own link
      return
    }
    // cap: a peer flooding requests gets rejects, not our memory
    if (this.#queue.length + this.#reading >= MAX_QUEUED_REQUESTS) return reject(RejectReason.Busy)
    if (!source.have().get(req.piece)) return reject(RejectReason.NotHave)
    this.#queue.push(req)
    if (!this.#pumping) void this.#pump()
  }

  #onCancel (msg: WireCancel): void {
    if (!this.#requireHandshake('a cancel')) return
    const i = this.#queue.findIndex((r) => r.piece === msg.piece && r.offset === msg.offset && r.length === msg.length)
    if (i >= 0) this.#queue.splice(i, 1)
  }

  /**
   * Serves queued requests in order: up to READ_AHEAD disk reads run while earlier blocks are being
   * sent, so the socket never waits for the disk (one read at a time measured ~130 MB/s on loopback).
   * Each send waits for the upload budget, and for 'drain' when the socket is full.
   */
  async #pump (): Promise<void> {
    this.#pumping = true
    const conn = this.conn
    const source = this.#source!
    const reading: Array<{ req: WireRequest, data: Promise<Buffer> }> = []
    try {
      for (;;) {
        while (reading.length < READ_AHEAD && this.#queue.length > 0 && !conn.closed) {
          const req = this.#queue.shift()!
          const data = this.#readBlock(source, req)
          data.catch(() => {}) // handled when its turn comes; do not let it count as unhandled meanwhile
          reading.push({ req, data })
          this.#reading++
        }
        const next = reading.shift()
        if (next === undefined || conn.closed) break
        try {
          const data = await next.data
          await this.#bucket.take(data.length, this.#abort.signal)
          if (!conn.sendPiece(next.req.piece, next.req.offset, data)) await conn.waitDrain()
        } catch (err) {
          if (this.#abort.signal.aborted) break
          this.#readFailed(next.req, err)
        } finally {
          this.#reading--
        }
      }
    } catch (err) {
      if (!this.#abort.signal.aborted) conn.close(toPeershareError(err))
    } finally {
      this.#pumping = false
      this.#reading = 0
      this.#pieces.clear()
    }
  }

  /** The block as a view of its whole piece, read once for all its blocks. */
  async #readBlock (source: PieceSource, req: WireRequest): Promise<Buffer> {
    let kept = this.#pieces.get(req.piece)
    if (kept === undefined) {
      const length = pieceLength(source.meta, req.piece)
      kept = { data: source.read(req.piece, 0, length), unsent: length }
      kept.data.catch(() => {}) // awaited below
      this.#pieces.set(req.piece, kept)
      if (this.#pieces.size > PIECES_KEPT) this.#pieces.delete(this.#pieces.keys().next().value!)
    }
    kept.unsent -= req.length // a repeated block only makes the piece go a little early
    if (kept.unsent <= 0 && this.#pieces.get(req.piece) === kept) this.#pieces.delete(req.piece)
    try {
      return (await kept.data).subarray(req.offset, req.offset + req.length)
    } catch (err) {
      if (this.#pieces.get(req.piece) === kept) this.#pieces.delete(req.piece) // a failure is not kept
      throw err
    }
  }

  #readFailed (req: WireRequest, err: unknown): void {
    const e = toPeershareError(err)
    if (e.code === 'FILE_CHANGED') {
      log.warn('shared file changed: no longer serving it', { fileId: this.fileId?.slice(0, 8), why: e.message })
      this.#source!.onChanged?.()
      this.conn.close(e)
      return
    }
    log.warn('read failed', { fileId: this.fileId?.slice(0, 8), piece: req.piece, error: e })
    this.conn.send(encodeReject(req.piece, req.offset, req.length, RejectReason.Unavailable))
  }
}
