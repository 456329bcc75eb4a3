// One download: finds holders through `locate` (the core asks the tracker), connects to up to MAX_PEERS
// of them, drives the Picker with their bitfields and blocks, verifies and writes whole pieces through
// the piece worker (verifier.ts: hashing, writing and the whole-file hash on another core), and ends
// with an fsync and the rename once the whole-file hash, computed along the way, matches. It also exposes what it has verified as a
// PieceSource, so the client's peer server can serve it to others while it runs.
// Not here: which pieces to ask for (picker.ts), bytes on disk (storage.ts), the wire (connection.ts).

import { EventEmitter } from 'node:events'
import type net from 'node:net'
import { Bitfield } from '../common/bitfield.ts'
import { PeershareError, toPeershareError } from '../common/errors.ts'
import type { ErrorCode } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import { pieceCount, pieceLength } from '../protocol/file-meta.ts'
import type { FileMeta } from '../protocol/file-meta.ts'
import { BLOCK_BYTES, RejectReason, blocksInPiece, encodeCancel, encodeHandshake, encodeRequest } from '../protocol/wire.ts'
import type { WireReject } from '../protocol/wire.ts'
import { dial as tcpDial } from '../security/transport.ts'
import type { DialOptions } from '../security/transport.ts'
import { PeerConnection } from './connection.ts'
import type { PeerConnectionOptions, ReceivedPiece } from './connection.ts'
import { Picker } from './picker.ts'
import { PooledReads } from './pooled-reads.ts'
import type { Block, PeerRequest } from './picker.ts'
import type { PieceSource } from './server.ts'
import { PieceStore } from './storage.ts'
import { PieceVerifier } from './verifier.ts'

const log = createLog('peer:download')

export const MAX_PEERS = 8 // enough to fill a link; each one costs a socket and up to 4 MiB in flight
/** With no peer at all for this long the download fails (documented in the README as 5 minutes). */
export const NO_PEER_TIMEOUT_MS = 5 * 60_000
export const WAITING_RELOCATE_MS = 5_000 // no peers: ask the tracker again this often
export const RELOCATE_MS = 30_000 // fewer than MAX_PEERS: look for more this often
export const PEER_HANDSHAKE_TIMEOUT_MS = 10_000
const TICK_MS = 1_000 // request timeouts, re-location, speed sampling
// cap: complete pieces waiting for the piece worker's hash and write (6 MiB: ~10 ms of its work); past
// it no new requests go out, so a slow disk or a busy core slows the peers down instead of filling memory
const MAX_PENDING_WRITES = 12
// cap: piece buffers (verifier.ts) a download may need at once, 32 MiB of 512 KiB pieces. A piece
// needs one from its start until it is verified, and, ahead of the whole-file hash's cursor, until the
// cursor reaches it (whole-hash.ts HOLD_PIECES). The pool grows to the peak it saw, and peaks come
// from rare stalls (a slow piece near the front, a busy piece worker): uncapped, a 4 GiB download met
// more of them than a 1 GiB one and its RSS grew with the file's size (slabs 27 MiB at 1 GiB, up to
// 51 MiB at 4 GiB). Past the cap no new piece starts; blocks of started pieces still go out.
const MAX_PIECE_BUFFERS = 64
const SPEED_ALPHA = 0.3

/**
 * A holder as locate finds it. Over TLS: `fingerprint` is the holder's certificate (the dial pins it),
 * `ticket` the tracker's permission for us to fetch this file (sent in the handshake), valid until
 * `ticketExpiresAt` (ms since the epoch, the tracker's clock); a new locate renews it before then.
 */
export interface PeerLocation { peerAddr: string, userId: string, fingerprint?: string, ticket?: Buffer, ticketExpiresAt?: number }

/** How a download dials a holder: `fingerprint` is the certificate it must present (over TLS). */
export type PeerDial = (host: string, port: number, opts: DialOptions & { fingerprint?: string }) => Promise<net.Socket>

export type DownloadState = 'running' | 'waiting' | 'verifying' | 'completed' | 'failed' | 'stopped'

export interface PeerProgress {
  addr: string
  userId: string
  /** Verified pieces this peer delivered most of. */
  pieces: number
  connected: boolean
}

export interface DownloadProgress {
  groupId: string
  file: string
  target: string
  state: DownloadState
  piecesDone: number
  pieces: number
  bytesDone: number
  bytes: number
  speedBps: number
  etaS: number | null
  peers: PeerProgress[]
  error?: { code: ErrorCode, message: string }
}

export interface DownloadOptions {
  meta: FileMeta
  fileId: string
  groupId: string
  target: string
  /** Current holders of the file; called at start, when peers run out, and now and then. */
  locate: () => Promise<PeerLocation[]>
  dial?: PeerDial
  maxPeers?: number
  noPeerTimeoutMs?: number
  waitingRelocateMs?: number
  connection?: PeerConnectionOptions
  rand?: () => number
}

export interface DownloadEvents {
  /** A piece is verified and on disk: it can be served, and peers of our server told (have). */
  piece: [piece: number]
  state: [state: DownloadState]
}

interface Peer {
  addr: string
  userId: string
  fingerprint: string | undefined
  /** The latest ticket locate gave for this holder (empty over plaintext). */
  ticket: Buffer
  conn: PeerConnection | undefined
  dialling: boolean
  /** Handshake done, bitfield known: registered with the picker. */
  active: boolean
  has: Bitfield | undefined
  pieces: number
  banned: boolean
  /** Requests sent and not yet answered, rejected or cancelled (approximate: a cancelled block may still come). */
  outstanding: number
  /** `outstanding` right after the last top-up: the picker's depth for this peer. */
  topped: number
}

export class Download extends EventEmitter<DownloadEvents> {
  readonly meta: FileMeta
  readonly fileId: string
  readonly groupId: string
  readonly target: string
  /** What this download can serve now (verified pieces), for the client's peer server. */
  readonly source: PieceSource
  readonly #opts: DownloadOptions
  readonly #store: PieceStore
  readonly #pieces: number
  #picker: Picker
  #state: DownloadState = 'running'
  #error: PeershareError | undefined
  readonly #peers = new Map<string, Peer>()
  /** Pieces being received: blocks are copied into one pooled buffer per piece (verifier.ts). */
  readonly #assembly = new Map<number, { buf: Buffer, from: Array<string | undefined> }>()
  #verifier: PieceVerifier | undefined
  readonly #writes = new Set<Promise<void>>()
  readonly #abort = new AbortController()
  #timer: NodeJS.Timeout | undefined
  #locating = false
  #lastLocate = -Infinity
  /** performance.now() after which the tickets are renewed (half their lifetime); undefined: none to renew. */
  #renewTicketsAt: number | undefined
  #waitingSince = 0
  #received = 0
  #lastReceived = 0
  #lastSample = performance.now()
  #speed = 0
  #finishing = false
  /** A refill found every piece buffer taken (MAX_PIECE_BUFFERS): refill all when one comes back. */
  #short = false
  #result: Promise<'completed' | 'stopped'> | undefined
  #settle: { resolve: (v: 'completed' | 'stopped') => void, reject: (e: PeershareError) => void } | undefined

  private constructor (opts: DownloadOptions, store: PieceStore) {
    super()
    this.#opts = opts
    this.meta = opts.meta
    this.fileId = opts.fileId
    this.groupId = opts.groupId
    this.target = opts.target
    this.#store = store
    this.#pieces = pieceCount(opts.meta.size, opts.meta.pieceBytes)
    this.#picker = this.#newPicker()
    this.source = { meta: opts.meta, have: () => this.have(), read: (p, o, l) => this.read(p, o, l) }
  }

  /** Opens (or resumes) the `.part`; EXISTS when the target exists or a foreign `.part` is in the way. */
  static async open (opts: DownloadOptions): Promise<Download> {
    return new Download(opts, await PieceStore.open({ target: opts.target, meta: opts.meta, fileId: opts.fileId }))
  }

  get state (): DownloadState {
    return this.#state
  }

  /** Verified pieces on disk (live). */
  have (): Bitfield {
    return this.#store.have()
  }

  async read (piece: number, offset: number, length: number): Promise<Buffer> {
    if (!this.#store.have().get(piece)) throw new PeershareError('NOT_FOUND', `piece ${piece} is not downloaded yet`)
    return await this.#store.readBlock(piece, offset, length)
  }

  /** Runs to the end: 'completed' (the file has its final name) or 'stopped' (stop()); rejects when it failed. */
  run (): Promise<'completed' | 'stopped'> {
    this.#result ??= new Promise((resolve, reject) => {
      this.#settle = { resolve, reject }
      this.#startVerifier()
      this.#timer = setInterval(() => this.#tick(), Math.min(TICK_MS, this.#opts.waitingRelocateMs ?? WAITING_RELOCATE_MS))
      if (this.#picker.isComplete()) {
        void this.#finish()
      } else {
        this.#setState('waiting')
        this.#waitingSince = performance.now()
        void this.#locate()
      }
    })
    return this.#result
  }

  /** Stops and keeps `.part` and its resume record for a later run. Idempotent. */
  async stop (): Promise<void> {
    if (this.#isOver()) return
    this.#setState('stopped')
    await this.#shutDown()
    await this.#store.close()
    this.#settle?.resolve('stopped')
  }

  progress (): DownloadProgress {
    const have = this.#store.have()
    const done = have.count()
    let bytesDone = done * this.meta.pieceBytes
    const last = this.#pieces - 1
    if (last >= 0 && have.get(last)) bytesDone -= this.meta.pieceBytes - pieceLength(this.meta, last)
    const running = this.#state === 'running' || this.#state === 'waiting'
    const speedBps = running ? this.#speed : 0
    const out: DownloadProgress = {
      groupId: this.groupId,
      file: this.meta.name,
      target: this.target,
      state: this.#state,
      piecesDone: done,
      pieces: this.#pieces,
      bytesDone,
      bytes: this.meta.size,
      speedBps,
      etaS: running && speedBps > 0 ? (this.meta.size - bytesDone) / speedBps : null,
      peers: [...this.#peers.values()].map((p) => ({ addr: p.addr, userId: p.userId, pieces: p.pieces, connected: p.active })),
    }
    if (this.#error !== undefined) out.error = { code: this.#error.code, message: this.#error.message }
    return out
  }

  // -------------------------------------------------------------------------------------------
  // Peers

  async #locate (): Promise<void> {
    if (this.#locating || this.#isOver()) return
    this.#locating = true
    this.#lastLocate = performance.now()
    let found: PeerLocation[] = []
    try {
      found = await this.#opts.locate()
    } catch (err) {
      log.info('could not locate holders', { file: this.meta.name, error: err as Error })
    } finally {
      this.#locating = false
    }
    if (this.#isOver()) return
    this.#updateTickets(found)
    const maxPeers = this.#opts.maxPeers ?? MAX_PEERS
    for (const loc of found) {
      let open = 0
      for (const p of this.#peers.values()) if (p.conn !== undefined || p.dialling) open++
      if (open >= maxPeers) break
      const known = this.#peers.get(loc.peerAddr)
      if (known !== undefined && (known.conn !== undefined || known.dialling || known.banned)) continue
      void this.#connect(known ?? this.#addPeer(loc))
    }
  }

  /**
   * Takes the fresh tickets and fingerprints of a locate. Connected peers get the new ticket as a
   * second handshake (the server renews the connection's permission), so long downloads go on
   * across ticket lifetimes without reconnecting.
   */
  #updateTickets (found: PeerLocation[]): void {
    for (const loc of found) {
      if (loc.ticketExpiresAt !== undefined) {
        // renew at half the lifetime left, measured on our clock (the tracker's may differ)
        const renewAt = performance.now() + Math.max(0, loc.ticketExpiresAt - Date.now()) / 2
        this.#renewTicketsAt = Math.min(this.#renewTicketsAt ?? Infinity, renewAt)
      }
      const peer = this.#peers.get(loc.peerAddr)
      if (peer === undefined) continue
      if (loc.fingerprint !== undefined && loc.fingerprint !== peer.fingerprint) {
        peer.fingerprint = loc.fingerprint // another client on that address now: the next dial pins it
        peer.conn?.close()
      }
      if (loc.ticket === undefined || loc.ticket.equals(peer.ticket)) continue
      peer.ticket = loc.ticket
      if (peer.active) peer.conn?.send(encodeHandshake(this.fileId, loc.ticket))
    }
  }

  #addPeer (loc: PeerLocation): Peer {
    const peer: Peer = { addr: loc.peerAddr, userId: loc.userId, fingerprint: loc.fingerprint, ticket: loc.ticket ?? Buffer.alloc(0), conn: undefined, dialling: false, active: false, has: undefined, pieces: 0, banned: false, outstanding: 0, topped: 0 }
    this.#peers.set(peer.addr, peer)
    return peer
  }

  async #connect (peer: Peer): Promise<void> {
    const hostPort = parseAddr(peer.addr)
    if (hostPort === undefined) {
      log.info('holder address is not host:port, skipped', { addr: peer.addr })
      peer.banned = true
      return
    }
    peer.dialling = true // so a concurrent locate does not dial it twice
    const reads = new PooledReads()
    let socket: net.Socket
    try {
      const dialOpts = { signal: this.#abort.signal, onread: reads.onread, ...(peer.fingerprint === undefined ? {} : { fingerprint: peer.fingerprint }) }
      socket = await (this.#opts.dial ?? tcpDial)(hostPort.host, hostPort.port, dialOpts)
    } catch (err) {
      log.debug('could not connect', { addr: peer.addr, error: err as Error })
      return
    } finally {
      peer.dialling = false
    }
    if (this.#isOver()) {
      socket.destroy()
      return
    }
    const conn = new PeerConnection(socket, { ...this.#opts.connection, reads })
    peer.conn = conn
    conn.allowBlocks() // we dialled this holder; its bitfield may exceed the handshake cap
    let shaken = false
    const timer = setTimeout(() => conn.close(new PeershareError('TIMEOUT', `no handshake from ${peer.addr}`)), PEER_HANDSHAKE_TIMEOUT_MS)
    conn.on('handshake', (msg) => {
      if (shaken || msg.fileId !== this.fileId) return conn.close(new PeershareError('PROTOCOL', `${peer.addr} answered with another file or twice`))
      shaken = true
    })
    conn.on('bitfield', (bits) => {
      clearTimeout(timer)
      if (!shaken || peer.active) return conn.close(new PeershareError('PROTOCOL', `${peer.addr} sent a bitfield out of order`))
      this.#onBitfield(peer, bits)
    })
    conn.on('have', (piece) => this.#onHave(peer, piece))
    conn.on('piece', (msg) => this.#onPiece(peer, msg))
    conn.on('reject', (msg) => this.#onReject(peer, msg))
    conn.on('request', () => conn.close(new PeershareError('PROTOCOL', `${peer.addr} sent a request to a downloader`)))
    conn.on('close', (reason) => {
      clearTimeout(timer)
      this.#onPeerClosed(peer, reason)
    })
    conn.send(encodeHandshake(this.fileId, peer.ticket))
  }

  #onBitfield (peer: Peer, bits: Buffer): void {
    let has: Bitfield
    try {
      has = Bitfield.fromBuffer(this.#pieces, bits)
    } catch (err) {
      peer.conn?.close(toPeershareError(err))
      return
    }
    peer.has = has
    peer.active = true
    peer.outstanding = 0
    peer.topped = 0
    this.#picker.addPeer(peer.addr, has)
    if (this.#state === 'waiting') this.#setState('running')
    this.#refill(peer)
  }

  #onHave (peer: Peer, piece: number): void {
    if (!peer.active || peer.has === undefined) return
    if (piece >= this.#pieces) {
      peer.conn?.close(new PeershareError('PROTOCOL', `${peer.addr} announced piece ${piece} of a ${this.#pieces}-piece file`))
      return
    }
    peer.has.set(piece)
    if (this.#picker.peerHave(peer.addr, piece)) this.#refill(peer)
  }

  #onReject (peer: Peer, msg: WireReject): void {
    this.#answered(peer)
    this.#picker.onReject(peer.addr, msg, msg.reason, performance.now())
    // after Busy the picker lowered this peer's depth; the next tick asks again
    if (msg.reason !== RejectReason.Busy) this.#refillAll()
  }

  #onPeerClosed (peer: Peer, reason: PeershareError | undefined): void {
    peer.conn = undefined
    if (peer.active) {
      peer.active = false
      this.#picker.removePeer(peer.addr)
      log.info('peer gone', { addr: peer.addr, why: reason?.message })
    }
    if (this.#isOver()) return
    this.#refillAll() // its requests went back to the pool
    this.#checkWaiting()
  }

  #ban (addr: string, why: string): void {
    const peer = this.#peers.get(addr)
    if (peer === undefined) return
    log.warn('dropping a peer that sent bad data', { addr, why })
    peer.banned = true
    peer.conn?.close(new PeershareError('HASH_MISMATCH', why))
  }

  // -------------------------------------------------------------------------------------------
  // Blocks and pieces

  /**
   * Tops the peer's requests up to the picker's depth. Unless `force`, only once half the depth came
   * back: the depth holds ~500 ms of data, so half is still ample, and on loopback each small write costs
   * the sender the receiver's TCP work too (one write per block was 20% of the downloader's profile).
   */
  #refill (peer: Peer, force = true): void {
    const conn = peer.conn
    if (!peer.active || conn === undefined || conn.closed || this.#state !== 'running') return
    if (this.#writes.size >= MAX_PENDING_WRITES) return
    if (!force && peer.outstanding > Math.floor(peer.topped / 2)) return
    const newPieces = MAX_PIECE_BUFFERS - this.#picker.inProgress - (this.#verifier?.held ?? 0)
    if (newPieces <= 0) this.#short = true // refilled once a buffer comes back (a verdict, or onRelease)
    const blocks = this.#picker.next(peer.addr, performance.now(), Math.max(0, newPieces))
    peer.outstanding += blocks.length
    peer.topped = peer.outstanding
    if (blocks.length === 0) return
    conn.batch(() => {
      for (const b of blocks) conn.send(encodeRequest(b.piece, b.offset, b.length))
    })
  }

  #answered (peer: Peer): void {
    if (peer.outstanding > 0) peer.outstanding--
  }

  /** Every peer's refill; one still short of buffers sets #short again. */
  #refillAll (): void {
    this.#short = false
    for (const p of this.#peers.values()) this.#refill(p)
  }

  #sendCancels (cancels: PeerRequest[]): void {
    for (const c of cancels) {
      const peer = this.#peers.get(c.peer)
      if (peer === undefined) continue
      this.#answered(peer)
      peer.conn?.send(encodeCancel(c.block.piece, c.block.offset, c.block.length))
    }
  }

  #onPiece (peer: Peer, msg: ReceivedPiece): void {
    if (!peer.active) return
    this.#answered(peer)
    const block: Block = { piece: msg.piece, offset: msg.offset, length: msg.length }
    const res = this.#picker.onBlock(peer.addr, block, performance.now())
    if (res.accepted) {
      this.#received += block.length
      this.#sendCancels(res.cancel)
      let slot = this.#assembly.get(block.piece)
      if (slot === undefined) {
        slot = { buf: this.#verifier!.acquire(), from: new Array<string | undefined>(blocksInPiece(this.meta, block.piece)).fill(undefined) }
        this.#assembly.set(block.piece, slot)
      }
      // the only copy: from the socket's chunks into the piece's buffer. fill() with a Buffer is one
      // memcpy in Node's C++; copy() into shared memory (the slabs) is V8's relaxed, word-by-word
      // move, half the speed: it was 7% of a TLS download's CPU (perf)
      let at = block.offset
      for (const part of msg.parts) { // never empty (WireReader)
        slot.buf.fill(part, at, at + part.length)
        at += part.length
      }
      slot.from[block.offset / BLOCK_BYTES] = peer.addr
      if (res.pieceComplete) this.#onPieceComplete(block.piece, slot.buf, slot.from as string[])
    }
    this.#refill(peer, false)
  }

  /** Hashed, and written when good, by the piece worker; the picker hears the verdict afterwards. */
  #onPieceComplete (piece: number, buf: Buffer, from: string[]): void {
    this.#assembly.delete(piece)
    const picker = this.#picker
    const write = this.#verifier!.submit(piece, buf).then((verdict) => {
      this.#writes.delete(write)
      if (this.#isOver() || picker !== this.#picker) return
      if (verdict === 'bad') {
        const { drop } = picker.onPieceFailed(piece)
        log.info('piece failed its hash check', { piece, from: [...new Set(from)] })
        for (const addr of drop) this.#ban(addr, `pieces from ${addr} failed their hash check repeatedly`)
        this.#refillAll()
        return
      }
      this.#sendCancels(picker.onPieceVerified(piece))
      const credit = mostFrequent(from)
      this.#store.markVerified(piece)
      const peer = this.#peers.get(credit)
      if (peer !== undefined) peer.pieces++
      this.emit('piece', piece)
      // room again: for new pieces (a buffer came back), or for requests (the worker caught up)
      if (this.#short || this.#writes.size === MAX_PENDING_WRITES - 1) this.#refillAll()
      if (this.#picker.isComplete() && this.#writes.size === 0) void this.#finish()
    }, (err: unknown) => {
      this.#writes.delete(write)
      void this.#fail(new PeershareError('UNAVAILABLE', `cannot write to ${this.#store.partPath}: ${(err as Error).message}`, { cause: err }))
    })
    this.#writes.add(write)
  }

  // -------------------------------------------------------------------------------------------
  // Life cycle

  #tick (): void {
    if (this.#isOver()) return
    const now = performance.now()
    const elapsed = (now - this.#lastSample) / 1000
    if (elapsed >= TICK_MS / 1000 / 2) {
      const sample = (this.#received - this.#lastReceived) / elapsed
      this.#speed = this.#speed === 0 ? sample : this.#speed + SPEED_ALPHA * (sample - this.#speed)
      this.#lastReceived = this.#received
      this.#lastSample = now
    }
    if (this.#finishing) return
    if (this.#renewTicketsAt !== undefined && now >= this.#renewTicketsAt) {
      this.#renewTicketsAt = undefined // set again by the locate's answer
      void this.#locate()
    }
    const expired = this.#picker.expire(now)
    this.#sendCancels(expired)
    this.#refillAll()
    this.#checkWaiting()
    if (this.#state === 'waiting') {
      if (now - this.#waitingSince >= (this.#opts.noPeerTimeoutMs ?? NO_PEER_TIMEOUT_MS)) {
        const minutes = Math.round((this.#opts.noPeerTimeoutMs ?? NO_PEER_TIMEOUT_MS) / 60_000)
        void this.#fail(new PeershareError('TIMEOUT', `no peer had ${this.meta.name} for ${minutes} min`))
      } else if (now - this.#lastLocate >= (this.#opts.waitingRelocateMs ?? WAITING_RELOCATE_MS)) {
        void this.#locate()
      }
    } else if (now - this.#lastLocate >= RELOCATE_MS) {
      void this.#locate()
    }
  }

  /** No connected peer: 'waiting' (shown to the user) until one connects or the timeout. */
  #checkWaiting (): void {
    if (this.#state !== 'running' || this.#finishing) return
    for (const p of this.#peers.values()) if (p.active) return
    this.#setState('waiting')
    this.#waitingSince = performance.now()
    void this.#locate()
  }

  async #finish (): Promise<void> {
    if (this.#finishing || this.#isOver()) return
    this.#finishing = true
    this.#setState('verifying')
    try {
      // undefined when the worker failed: then finish() reads the file once to decide
      const whole = await this.#verifier!.wholeDigest().catch(() => undefined)
      await this.#verifier!.close() // every piece is written: nothing of it may touch the file past here
      if (this.#isOver()) return
      const res = await this.#store.finish(whole)
      if (this.#isOver()) return
      if (!res.ok) {
        // bytes on disk went bad (lost writes): fetch those pieces again from the peers still here
        this.#finishing = false
        this.#picker = this.#newPicker()
        this.#assembly.clear() // empty by now (every piece was verified); its buffers were the old verifier's
        this.#startVerifier() // the whole-file hash starts over from what is on disk
        for (const p of this.#peers.values()) if (p.active && p.has !== undefined) this.#picker.addPeer(p.addr, p.has)
        this.#setState('running')
        this.#refillAll()
        this.#checkWaiting()
        return
      }
    } catch (err) {
      const e = toPeershareError(err)
      if (e.code === 'HASH_MISMATCH') await this.#store.discard().catch(() => {})
      await this.#fail(e)
      return
    }
    this.#setState('completed')
    await this.#shutDown()
    this.#settle?.resolve('completed')
  }

  async #fail (err: PeershareError): Promise<void> {
    if (this.#isOver()) return
    this.#error = err
    this.#setState('failed')
    log.info('download failed', { file: this.meta.name, code: err.code, why: err.message })
    await this.#shutDown()
    await this.#store.close().catch(() => {})
    this.#settle?.reject(err)
  }

  /** Timers, dials and connections off; pending writes finished (so the store can close). */
  async #shutDown (): Promise<void> {
    clearInterval(this.#timer)
    this.#abort.abort()
    for (const p of this.#peers.values()) p.conn?.close()
    this.#assembly.clear()
    await Promise.allSettled([...this.#writes])
    await this.#verifier?.close()
  }

  #startVerifier (): void {
    this.#verifier = new PieceVerifier({
      meta: this.meta,
      fd: this.#store.fd,
      directFd: this.#store.directFd,
      onDisk: this.#store.have(),
      onRelease: () => { if (this.#short) this.#refillAll() },
    })
  }

  #isOver (): boolean {
    return this.#state === 'completed' || this.#state === 'failed' || this.#state === 'stopped'
  }

  #setState (state: DownloadState): void {
    if (this.#state === state) return
    this.#state = state
    this.emit('state', state)
  }

  #newPicker (): Picker {
    return new Picker({ size: this.meta.size, pieceBytes: this.meta.pieceBytes, have: this.#store.have(), rand: this.#opts.rand ?? Math.random })
  }
}

function mostFrequent (items: string[]): string {
  const counts = new Map<string, number>()
  let best = items[0]!
  for (const x of items) {
    const n = (counts.get(x) ?? 0) + 1
    counts.set(x, n)
    if (n > counts.get(best)!) best = x
  }
  return best
}

/** "host:port" or "[v6]:port". */
export function parseAddr (addr: string): { host: string, port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(addr)
  if (m === null) return undefined
  const port = Number(m[3])
  if (port < 1 || port > 65535) return undefined
  return { host: m[1] ?? m[2]!, port }
}
