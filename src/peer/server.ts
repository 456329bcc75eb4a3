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
import { releasePieceBuffer } from './piece-buffers.ts'
import type { PeerConnectionOptions } from './connection.ts'
import { TokenBucket } from './rate-limit.ts'

const log = createLog('peer:server')

/** A peer must send its handshake this soon after connecting. */
export const HANDSHAKE_TIMEOUT_MS = 10_000
/** Requests a connection reads ahead of the block being sent (8 blocks = two pieces). */
export const READ_AHEAD = 8
/**
 * Piece reads a connection holds. A downloader asks for a piece's blocks close together, so the server
 * reads them in one go (the whole piece: one 512 KiB read, not four of 128 KiB: half the CPU, measured)
 * and serves the blocks as views; a read is kept until all its blocks were asked for, or, past this
 * many, the least recently used one no request or socket write holds goes. Memory per connection: at
 * most PIECES_KEPT + 1 pooled piece buffers (the one more when all are held by socket writes, which
 * 'drain' keeps to about one block), so 2.5 MiB at PIECE_BYTES.
 */
export const PIECES_KEPT = 4
/**
 * Kept reads outlive an empty queue this long: a downloader may ask for the rest of a piece in its next
 * refill, and dropping them in between made the server read the piece again.
 */
const KEEP_IDLE_MS = 2_000

/** One piece read for a connection; its pooled buffer (piece-buffers.ts) goes back when nothing uses it. */
interface Kept {
  readonly piece: number
  /** The bytes of the piece it read: [start, end). */
  readonly start: number
  readonly end: number
  readonly data: Promise<Buffer>
  /** The read's buffer once it succeeded; undefined again once given back. */
  buf: Buffer | undefined
  /** Bytes of [start, end) not yet asked for. */
  unsent: number
  /** Requests read ahead on it plus socket writes of it not yet done. */
  users: number
  /** The read finished (or failed). */
  settled: boolean
  /** Done with: its buffer was given back (or dropped, when lost). */
  retired: boolean
  /** A write of it failed: the socket may still hold it, so it is never reused. */
  lost: boolean
}

/** What the server serves for one file id: a shared file (storage.ts ShareFile) or a running download. */
export interface PieceSource {
  meta: FileMeta
  /** Pieces that may be served now (live: a download's grows). */
  have (): Bitfield
  /**
   * Exactly `length` bytes at (piece, offset); FILE_CHANGED when the file no longer matches its metadata.
   * The buffer becomes the server's: a source must not use it again (the server gives buffers from
   * piece-buffers.ts back to that pool once sent).
   */
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
  readonly #pieces = new Map<number, Kept>() // least recently used first
  #live = 0 // Kept reads not retired: in #pieces, or still read into or sent from (the memory bound)
  #idleTimer: NodeJS.Timeout | undefined
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
      clearTimeout(this.#idleTimer)
      this.#abort.abort()
      this.#queue = []
      this.#dropKept()
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
    if (this.#pumping) return
    this.#pumping = true
    // after the rest of this chunk's messages: a read then sees all the piece's blocks asked with it
    queueMicrotask(() => void this.#pump())
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
    clearTimeout(this.#idleTimer)
    const conn = this.conn
    const source = this.#source!
    const signal = this.#abort.signal
    const reading: Array<{ req: WireRequest, kept: Kept }> = []
    try {
      for (;;) {
        while (reading.length < READ_AHEAD && this.#queue.length > 0 && !conn.closed) {
          const kept = this.#keptFor(source, this.#queue[0]!, reading.length === 0)
          if (kept === undefined) break // every kept piece is in use: send some before reading more
          const req = this.#queue.shift()!
          kept.users++
          kept.unsent -= req.length // a repeated block only makes the piece go a little early
          if (kept.unsent <= 0) this.#uncache(kept)
          reading.push({ req, kept })
          this.#reading++
        }
        const next = reading.shift()
        if (next === undefined || conn.closed) break
        const { req, kept } = next
        try {
          const whole = kept.buf ?? await kept.data // blocks after a read's first find it settled
          const data = whole.subarray(req.offset - kept.start, req.offset - kept.start + req.length)
          await this.#bucket.take(data.length, signal)
          if (!this.#sendBlock(req, data, kept)) await conn.waitDrain()
        } catch (err) {
          if (signal.aborted) break
          this.#readFailed(req, err)
        } finally {
          this.#reading--
          this.#unuse(kept)
        }
      }
    } catch (err) {
      if (!signal.aborted) conn.close(toPeershareError(err))
    } finally {
      this.#pumping = false
      this.#reading = 0
      for (const r of reading) this.#unuse(r.kept) // taken off the queue, never sent (closing)
      if (conn.closed) {
        this.#dropKept()
      } else {
        // kept across the gap until the downloader's next requests (its refills come in halves)
        this.#idleTimer = setTimeout(() => this.#dropKept(), KEEP_IDLE_MS)
        this.#idleTimer.unref()
      }
    }
  }

  /**
   * The kept read holding the request's block, or a new one. A new read covers the blocks of that
   * piece now queued (all four, one read, when the downloader asked for the whole piece; only its
   * share when it split the piece among peers: whole-piece reads made a sharer read 12% more than it
   * sent). Past PIECES_KEPT, the least recently used read no request or write holds makes room;
   * undefined when none can, unless `mustRead` (nothing read ahead, so the pump has nothing to send).
   */
  #keptFor (source: PieceSource, req: WireRequest, mustRead: boolean): Kept | undefined {
    const pieces = this.#pieces
    const old = pieces.get(req.piece)
    if (old !== undefined) {
      if (req.offset >= old.start && req.offset + req.length <= old.end) {
        pieces.delete(req.piece) // most recently used last
        pieces.set(req.piece, old)
        return old
      }
      this.#uncache(old) // a block it lacks: a new read takes its place
    }
    if (this.#live >= PIECES_KEPT) {
      for (const k of pieces.values()) {
        if (k.users > 0) continue
        this.#uncache(k)
        break
      }
      if (this.#live >= PIECES_KEPT && !mustRead) return undefined
    }
    let start = req.offset
    let end = req.offset + req.length
    for (const r of this.#queue) {
      if (r.piece !== req.piece) continue
      start = Math.min(start, r.offset)
      end = Math.max(end, r.offset + r.length)
    }
    const k: Kept = {
      piece: req.piece, start, end, data: source.read(req.piece, start, end - start), buf: undefined, unsent: end - start, users: 0,
      settled: false, lost: false, retired: false,
    }
    this.#live++
    k.data.then((buf) => {
      k.buf = buf
      k.settled = true
      this.#release(k)
    }, () => {
      k.settled = true
      this.#uncache(k) // a failure is not kept; its requests are rejected by the pump
    })
    pieces.set(req.piece, k)
    return k
  }

  /** The piece message; the block's read stays held until the socket wrote it (sendPiece's callback). */
  #sendBlock (req: WireRequest, data: Buffer, kept: Kept): boolean {
    const conn = this.conn
    if (conn.closed) return false
    kept.users++
    return conn.sendPiece(req.piece, req.offset, data, (err) => {
      if (err != null) kept.lost = true // the socket may still point at it: never reuse
      this.#unuse(kept)
    })
  }

  #unuse (kept: Kept): void {
    kept.users--
    this.#release(kept)
  }

  #uncache (kept: Kept): void {
    if (this.#pieces.get(kept.piece) === kept) this.#pieces.delete(kept.piece)
    this.#release(kept)
  }

  /** Its buffer back to the pool once nothing can read it: out of the cache, read, no request or write on it. */
  #release (kept: Kept): void {
    if (this.#pieces.get(kept.piece) === kept || kept.users > 0 || !kept.settled || kept.retired) return
    kept.retired = true
    this.#live--
    if (!kept.lost && kept.buf !== undefined) releasePieceBuffer(kept.buf)
    kept.buf = undefined
  }

  /** Every kept piece goes (idle, or the connection closed); those still in use go when their last use ends. */
  #dropKept (): void {
    for (const k of [...this.#pieces.values()]) this.#uncache(k)
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
