// One peer wire connection, either side: socket bytes → WireReader (frames; blocks as views of the
// socket's chunks) → decodeMessage → one typed event per message; sending with back-pressure (send() returns false when the socket is full); keep-alive
// and idle timeout. What a message means (serving, downloading) is server.ts's and download.ts's job.

import { EventEmitter } from 'node:events'
import type net from 'node:net'
import { TLSSocket } from 'node:tls'
import { PeershareError, toPeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import {
  MAX_HANDSHAKE_FRAME_BYTES, MAX_WIRE_FRAME_BYTES, Msg, decodeMessage, encodeKeepAlive, encodePieceHeader,
} from '../protocol/wire.ts'
import type { WireCancel, WireHandshake, WirePiece, WireReject, WireRequest } from '../protocol/wire.ts'
import { WireReader } from './wire-reader.ts'
import type { PooledReads } from './pooled-reads.ts'

const log = createLog('peer:conn')

export const KEEP_ALIVE_MS = 30_000 // BEP 3 suggests two minutes between messages; we send at a quarter of the timeout
export const IDLE_TIMEOUT_MS = 120_000 // nothing received for this long: the peer is gone

export interface PeerConnectionEvents {
  handshake: [msg: WireHandshake]
  bitfield: [bits: Buffer]
  have: [piece: number]
  request: [msg: WireRequest]
  cancel: [msg: WireCancel]
  reject: [msg: WireReject]
  /**
   * The block is `msg.parts`, views of received chunks valid only during this event (read buffers are
   * reused: copy them out before returning); `msg.data` is a copy when there are several parts and
   * such a view when there is one.
   */
  piece: [msg: ReceivedPiece]
  drain: []
  /** Once, after the socket is gone. `reason` is set when we closed it because of an error. */
  close: [reason: PeershareError | undefined]
}

/** A piece message as received: the block in `parts`, in order, `length` bytes together. */
export interface ReceivedPiece extends WirePiece {
  readonly length: number
  readonly parts: readonly Buffer[]
}

export interface PeerConnectionOptions {
  keepAliveMs?: number
  idleTimeoutMs?: number
  /** The reads the socket was created with (its `onread`), which replace its 'data' events. */
  reads?: PooledReads
}

export class PeerConnection extends EventEmitter<PeerConnectionEvents> {
  readonly socket: net.Socket
  /** host:port of the other end, for logs and progress. */
  readonly remote: string
  #decoder = new WireReader(MAX_HANDSHAKE_FRAME_BYTES)
  #closed = false // the socket is gone ('close' emitted)
  #closing = false // close() was called: no more sends or dispatches, even before the socket's 'close'
  #closeReason: PeershareError | undefined
  #lastReceived = performance.now()
  #lastSent = performance.now()
  #timer: NodeJS.Timeout
  #idleTimeoutMs: number
  #keepAliveMs: number
  /** Plain TCP: a piece's header and block go corked, as one syscall (sendPiece says why not over TLS). */
  readonly #corkPieces: boolean

  constructor (socket: net.Socket, opts: PeerConnectionOptions = {}) {
    super()
    this.socket = socket
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
    this.#corkPieces = !(socket instanceof TLSSocket)
    this.#keepAliveMs = opts.keepAliveMs ?? KEEP_ALIVE_MS
    this.#idleTimeoutMs = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS
    // both: a socket made without the reads' `onread` (a dialer that ignored it) still emits 'data'
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    opts.reads?.attach((chunk) => this.#onData(chunk), (ab) => this.#decoder.retains(ab))
    socket.on('drain', () => this.emit('drain'))
    // 'error' is always followed by 'close'; the reason is kept for the close event
    socket.on('error', (err) => { this.#closeReason ??= new PeershareError('UNAVAILABLE', `connection to ${this.remote} failed: ${err.message}`, { cause: err }) })
    socket.on('close', () => this.#onClosed())
    this.#timer = setInterval(() => this.#tick(), Math.min(this.#keepAliveMs, this.#idleTimeoutMs) / 2)
    this.#timer.unref() // the socket keeps the process alive, not the keep-alive timer
  }

  /** True from the moment close() is called (or the socket went away). */
  get closed (): boolean {
    return this.#closing || this.#closed
  }

  /** The handshake is done: frames up to a whole block are allowed from now on. */
  allowBlocks (): void {
    this.#decoder.maxFrameBytes = MAX_WIRE_FRAME_BYTES
  }

  /** Writes an encoded message; false when the socket's buffer is full (wait for 'drain' before more bulk). */
  send (buf: Buffer): boolean {
    if (this.closed) return false
    this.#lastSent = performance.now()
    return this.socket.write(buf)
  }

  /**
   * A piece message without copying the block. Plain TCP: header and data corked, one syscall. TLS:
   * two writes, because Node joins corked buffers into a new copy before encrypting (measured: 10%
   * of a sharer's CPU per GiB). `onWritten` runs once the socket is done with `data` (err: it failed,
   * and the socket may still hold it); not at all when the connection is closed already (false).
   */
  sendPiece (piece: number, offset: number, data: Buffer, onWritten?: (err: Error | null | undefined) => void): boolean {
    if (this.closed) return false
    this.#lastSent = performance.now()
    if (this.#corkPieces) this.socket.cork()
    this.socket.write(encodePieceHeader(piece, offset, data.length))
    const ok = this.socket.write(data, onWritten)
    if (this.#corkPieces) this.socket.uncork()
    return ok
  }

  /** Several small messages (requests, cancels) in one syscall. */
  batch (fn: () => void): void {
    if (this.closed) return
    this.socket.cork()
    try {
      fn()
    } finally {
      this.socket.uncork()
    }
  }

  /** Resolves when the socket can take more, or when it closed (callers check `closed`). */
  async waitDrain (): Promise<void> {
    if (this.closed || !this.socket.writableNeedDrain) return
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.off('drain', done)
        this.off('close', done)
        resolve()
      }
      this.on('drain', done)
      this.on('close', done)
    })
  }

  /** Idempotent. With a reason, the close is logged and reported in the 'close' event. */
  close (reason?: PeershareError): void {
    if (this.closed) return
    this.#closing = true
    if (reason !== undefined) {
      this.#closeReason ??= reason
      log.debug('closing', { remote: this.remote, code: reason.code, why: reason.message })
    }
    this.socket.destroy()
    // 'close' follows from the socket; #onClosed finishes the job
  }

  #onData (chunk: Buffer): void {
    if (this.closed) return
    this.#lastReceived = performance.now()
    try {
      for (const frame of this.#decoder.push(chunk)) {
        if (this.closed) return
        if (frame.kind === 'frame') this.#dispatch(frame.body)
        else this.emit('piece', new PieceMessage(frame.piece, frame.offset, frame.length, frame.parts))
      }
    } catch (err) {
      this.close(toPeershareError(err))
    }
  }

  #dispatch (body: Buffer): void {
    const msg = decodeMessage(body)
    switch (msg.type) {
      case Msg.Piece: this.emit('piece', new PieceMessage(msg.piece, msg.offset, msg.data.length, [msg.data])); break // not reached: WireReader splits pieces off
      case Msg.Request: this.emit('request', msg); break
      case Msg.Have: this.emit('have', msg.piece); break
      case Msg.Cancel: this.emit('cancel', msg); break
      case Msg.Reject: this.emit('reject', msg); break
      case Msg.Bitfield: this.emit('bitfield', msg.bits); break
      case Msg.Handshake: this.emit('handshake', msg); break
      case Msg.KeepAlive: break
    }
  }

  #tick (): void {
    const now = performance.now()
    if (now - this.#lastReceived >= this.#idleTimeoutMs) {
      this.close(new PeershareError('TIMEOUT', `nothing heard from ${this.remote} for ${Math.round(this.#idleTimeoutMs / 1000)} s`))
      return
    }
    if (now - this.#lastSent >= this.#keepAliveMs) this.send(encodeKeepAlive())
  }

  #onClosed (): void {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    this.emit('close', this.#closeReason)
    this.removeAllListeners()
  }
}

// A class, not an object literal with a getter: a literal whose getter closes over a variable gets
// a property dictionary of its own, with an accessor pair that V8 allocates in old space. When the
// message died, its pair still pointed, until the next full GC, at the closure, the parts and their
// chunk views, and the young-generation GC kept them all alive and promoted them: ~1.2 MB per
// scavenge (--trace-gc-nvp), old space growing ~3 MB/s with garbage, the downloader's RSS with the
// length of the download. With one prototype getter, ~5 KB per scavenge is promoted.
class PieceMessage implements ReceivedPiece {
  readonly type = Msg.Piece
  readonly piece: number
  readonly offset: number
  readonly length: number
  readonly parts: readonly Buffer[]

  constructor (piece: number, offset: number, length: number, parts: Buffer[]) {
    this.piece = piece
    this.offset = offset
    this.length = length
    this.parts = parts
  }

  get data (): Buffer {
    return this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.length)
  }
}
