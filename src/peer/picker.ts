// The piece picker: decides which blocks to request from which peer, and what to do when blocks arrive,
// time out, are rejected, or a piece fails its hash. Pure: no sockets, no clock (callers pass `now` in
// ms), no randomness of its own (`rand` is injected). download.ts owns the connections, writes the
// blocks, hashes pieces and reports back here.
//
// The algorithm (BEP 3's "piece selection", as refined by libtorrent's piece_picker and transmission's
// peer-mgr-wishlist):
//  1. Strict priority: finish started pieces first. Any started piece the peer has, with unrequested
//     blocks, oldest first: pieces complete (and become verifiable and shareable) soonest, and few
//     partial pieces are held at once.
//  2. Rarest first: otherwise start the free piece with the fewest peers having it (ties broken at
//     random, see rarity.ts), so rare pieces are fetched while their holders are still here. The random
//     tie-break is confined to a window near the front: among equally rare pieces, one of the first
//     NEAR_WINDOW free ones at or after the first missing piece, at random. Pieces then complete roughly
//     in file order, so the downloader hashes the whole file as it goes (whole-hash.ts) with a few
//     pieces held in memory, instead of re-reading the file at the end. Rarity still comes first: a
//     rarer piece anywhere wins over the window, and with no equally rare piece in it the tie-break is
//     over all of them, as before. A peer SLOW_PEER_RATIO times slower than the others together starts
//     its pieces from the back of the file instead, and leaves the blocks left in pieces others started
//     to them: near the front, each piece it held stalled the whole-file hash while the others fetched
//     more than it can hold, and the hashing left over made the download's end late (a 1 MB/s peer
//     beside three unlimited ones: 0.6-0.75 s after the last piece instead of 0.01 s, bench:download
//     --limits). At the back, the endgame (4) gives its last blocks to the fast peers too. Before all
//     this, a fast peer duplicates the blocks of the first missing piece when the hash waits on it
//     (RESCUE_AHEAD verified past it) and they wait on a slow or unmeasured peer, as in the endgame:
//     that covers a slow peer's first piece, given before its rate is known.
//  3. Pipelining: each peer is kept at a target depth of outstanding requests, proportional to its
//     measured throughput (pipeline.ts), so a slow peer holds few blocks hostage.
//  4. Endgame: once every missing block (that some peer has) is requested, idle peers duplicate
//     outstanding blocks, at most ENDGAME_MAX_OWNERS requests per block; onBlock then names the
//     duplicates to cancel.
//  5. Failures: expire(now) returns requests older than the timeout to the pool and halves the peer's
//     rate estimate (so its depth); a rejected or disconnected peer's blocks return at once. A piece that
//     fails its hash returns to the pool and every peer that contributed gets a strike (MAX_STRIKES: drop
//     it). The refetch of a failed piece is given to a single peer, so a second failure names the culprit.
// Costs: next() is O(started pieces) + the rarity scan (O(1) for a seeder, O(free pieces) at worst)
// + the window scan from the first missing piece (at most NEAR_SCAN_LIMIT pieces, a few in practice;
// from the end for a slow peer) + O(peers) for the rates + O(blocks of a piece) for the rescue;
// onBlock, onReject and peerHave are O(1); expire is O(peers + expired); add/removePeer are O(pieces).

import { Bitfield } from '../common/bitfield.ts'
import { pieceCount, pieceLength } from '../protocol/file-meta.ts'
import { BLOCK_BYTES, RejectReason } from '../protocol/wire.ts'
import { PeerPipeline, TARGET_QUEUE_MS } from './pipeline.ts'
import { RarityIndex } from './rarity.ts'
import { HOLD_PIECES } from './whole-hash.ts'

// 20 × the queue time the pipeline aims for: only a peer that has stalled misses it
export const REQUEST_TIMEOUT_MS = 20 * TARGET_QUEUE_MS
export const ENDGAME_MAX_OWNERS = 2 // one duplicate per block: beats a slow holder without flooding
export const MAX_STRIKES = 3 // hash failures a peer contributed to before we tell the caller to drop it
// Free pieces near the first missing one among which equally rare pieces are picked at random. Narrow:
// pieces already complete out of order by as much as the peers' request queues hold (3 peers × 8
// pieces), and whole-hash.ts holds only HOLD_PIECES of them; measured with 16, half the pieces fell
// out of that and had to be read back.
export const NEAR_WINDOW = 4
const NEAR_SCAN_LIMIT = 1024 // bounds the scan past started and verified pieces (O(1) per start)
// While a peer this many times slower than the rest fetches one piece near the front, the rest fetch
// more pieces than whole-hash.ts holds out of order: the hash waits for that piece and reads the
// overflow back later. Equal peers never qualify (MAX_PEERS is 8), rate-limited ones far below do.
const SLOW_PEER_RATIO = HOLD_PIECES
// Pieces verified past the first missing one at which its slow holder is helped (#rescue): half of
// what whole-hash.ts holds, so the duplicates arrive (behind a fast peer's queue) before it spills.
export const RESCUE_AHEAD = HOLD_PIECES / 2

export type PeerId = string

export interface Block {
  readonly piece: number
  readonly offset: number
  readonly length: number
}

export interface PeerRequest {
  peer: PeerId
  block: Block
}

export interface BlockResult {
  /** false: not wanted (already received, piece verified, or not a block of this file): do not write it. */
  accepted: boolean
  /** Every block of the piece is in: hash it, then call onPieceVerified or onPieceFailed. */
  pieceComplete: boolean
  /** Endgame duplicates of this block still outstanding: send cancel to these peers. */
  cancel: PeerRequest[]
}

export interface PickerOptions {
  size: number
  pieceBytes: number
  /** Verified pieces (resume). Copied. */
  have?: Bitfield
  /** Uniform in [0, 1): the tie-break among equally rare pieces. */
  rand: () => number
  blockBytes?: number
  requestTimeoutMs?: number
}

export interface PeerStats {
  id: PeerId
  inFlight: number
  depth: number
  /** Bytes/s, undefined before the first measurement. */
  rate: number | undefined
  strikes: number
  receivedBytes: number
}

export interface PickerStats {
  pieces: number
  have: number
  inProgress: number
  inFlight: number
  endgame: boolean
  peers: PeerStats[]
}

interface PeerState {
  id: PeerId
  has: Bitfield
  inflight: Map<number, number> // block key → sent at; insertion order is send order (expire relies on it)
  pipeline: PeerPipeline
  receivedBytes: number
  strikes: number
}

/** A piece that is neither verified nor free: some block requested or received. */
interface Progress {
  piece: number
  owners: PeerState[][] // per block: peers it is requested from
  from: Array<PeerState | undefined> // per block: who delivered it
  unrequested: number // blocks neither received nor requested
  received: number
  exclusive: PeerState | undefined // refetch of a failed piece: one source only
}

const NOT_ACCEPTED: BlockResult = Object.freeze({ accepted: false, pieceComplete: false, cancel: Object.freeze([]) as unknown as PeerRequest[] })

export class Picker {
  readonly pieceCount: number
  readonly #geometry: { size: number, pieceBytes: number }
  readonly #blockBytes: number
  readonly #blocksPerPiece: number
  readonly #timeoutMs: number
  readonly #have: Bitfield
  readonly #rarity: RarityIndex
  readonly #suspect: Uint8Array // failed a hash check: refetch from one peer
  readonly #peers = new Map<PeerId, PeerState>()
  readonly #progress = new Map<number, Progress>()
  readonly #started = new Set<Progress>() // in progress with unrequested blocks, oldest first
  #firstMissing = 0 // no piece below it is missing: where the NEAR_WINDOW scan starts

  constructor (opts: PickerOptions) {
    this.#geometry = { size: opts.size, pieceBytes: opts.pieceBytes }
    this.pieceCount = pieceCount(opts.size, opts.pieceBytes)
    this.#blockBytes = opts.blockBytes ?? BLOCK_BYTES
    if (opts.pieceBytes % this.#blockBytes !== 0) throw new RangeError('piece size must be a multiple of the block size')
    this.#blocksPerPiece = opts.pieceBytes / this.#blockBytes
    this.#timeoutMs = opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS
    if (opts.have !== undefined && opts.have.size !== this.pieceCount) throw new RangeError('have bitfield does not match the file')
    this.#have = opts.have?.clone() ?? new Bitfield(this.pieceCount)
    this.#rarity = new RarityIndex(this.pieceCount, opts.rand)
    this.#suspect = new Uint8Array(this.pieceCount)
    for (let i = 0; i < this.pieceCount; i++) if (!this.#have.get(i)) this.#rarity.addFree(i)
  }

  isComplete (): boolean {
    return this.#have.isFull()
  }

  hasPiece (piece: number): boolean {
    return this.#have.get(piece)
  }

  /** A peer's bitfield arrived (a copy is kept). Returns whether it has anything we lack. */
  addPeer (id: PeerId, has: Bitfield): boolean {
    if (this.#peers.has(id)) throw new RangeError(`peer ${id} is already known`)
    if (has.size !== this.pieceCount) throw new RangeError('peer bitfield does not match the file')
    const peer: PeerState = {
      id, has: has.clone(), inflight: new Map(), pipeline: new PeerPipeline(), receivedBytes: 0, strikes: 0,
    }
    this.#peers.set(id, peer)
    let interesting = false
    peer.has.forEachSet(i => {
      this.#rarity.increment(i)
      if (!this.#have.get(i)) interesting = true
    })
    return interesting
  }

  /** Disconnect: its outstanding blocks go back to the pool (returned for logging; nothing to cancel). */
  removePeer (id: PeerId): Block[] {
    const peer = this.#peers.get(id)
    if (peer === undefined) return []
    const blocks = [...peer.inflight.keys()].map(key => this.#release(peer, key))
    for (const prog of this.#progress.values()) if (prog.exclusive === peer) prog.exclusive = undefined
    peer.has.forEachSet(i => this.#rarity.decrement(i))
    this.#peers.delete(id)
    return blocks
  }

  /** Pieces started and not verified or failed yet: each holds, or will hold, a piece buffer. */
  get inProgress (): number {
    return this.#progress.size
  }

  /** A peer announced a piece. Returns whether we lack it (worth a next()). */
  peerHave (id: PeerId, piece: number): boolean {
    const peer = this.#peers.get(id)
    if (peer === undefined || !peer.has.set(piece)) return false
    this.#rarity.increment(piece)
    return !this.#have.get(piece)
  }

  /**
   * The requests to send to this peer now (possibly none), up to its target depth. `newPieces`: how
   * many pieces it may start (the caller's buffers); blocks of started pieces are not counted.
   */
  next (id: PeerId, now: number, newPieces = Infinity): Block[] {
    const peer = this.#peers.get(id)
    if (peer === undefined) return []
    peer.pipeline.tick(now, peer.inflight.size > 0)
    let want = peer.pipeline.depth(this.#blockBytes) - peer.inflight.size
    if (want <= 0) return []
    const out: Block[] = []
    const rates = this.#rateSum() // no rate changes during next()
    const slow = this.#isSlow(peer, rates)
    // only onPieceVerified sets #have: once per next() is enough
    while (this.#firstMissing < this.pieceCount && this.#have.get(this.#firstMissing)) this.#firstMissing++
    if (!slow) want -= this.#rescue(peer, want, out, now, rates)
    for (const prog of this.#started) { // deleting the current entry while iterating a Set is safe
      if (want === 0) return out
      if (!peer.has.get(prog.piece) || (prog.exclusive !== undefined && prog.exclusive !== peer)) continue
      if (slow && this.#fastCanFinish(prog, peer, rates)) continue // it would hold up a piece near the front
      want -= this.#take(peer, prog, want, out, now)
    }
    const usable = (i: number): boolean => peer.has.get(i)
    for (let started = 0; want > 0 && started < newPieces; started++) {
      const piece = slow
        ? this.#rarity.rarestFar(usable, NEAR_SCAN_LIMIT)
        : this.#rarity.rarestNear(usable, this.#firstMissing, NEAR_WINDOW, NEAR_SCAN_LIMIT)
      if (piece < 0) break
      want -= this.#take(peer, this.#start(piece, peer), want, out, now)
    }
    if (want > 0 && this.#isEndgame()) this.#duplicate(peer, want, out, now)
    return out
  }

  onBlock (id: PeerId, block: Block, now: number): BlockResult {
    const peer = this.#peers.get(id)
    const b = this.#blockIndex(block)
    if (peer === undefined || b < 0) return NOT_ACCEPTED
    peer.receivedBytes += block.length
    peer.pipeline.received(block.length)
    const key = block.piece * this.#blocksPerPiece + b
    if (this.#have.get(block.piece)) return NOT_ACCEPTED
    // a late block (its request expired or was cancelled) is still welcome if nobody delivered it yet
    const prog = this.#progress.get(block.piece) ?? this.#start(block.piece, peer)
    if (prog.from[b] !== undefined || (prog.exclusive !== undefined && prog.exclusive !== peer)) {
      this.#release(peer, key)
      return NOT_ACCEPTED
    }
    peer.inflight.delete(key)
    const owners = prog.owners[b]!
    if (owners.length === 0) this.#unrequestedDelta(prog, -1)
    const cancel: PeerRequest[] = []
    for (const other of owners) {
      if (other === peer) continue
      other.inflight.delete(key)
      cancel.push({ peer: other.id, block })
    }
    prog.owners[b] = []
    prog.from[b] = peer
    prog.received++
    peer.pipeline.tick(now, true)
    return { accepted: true, pieceComplete: prog.received === prog.from.length, cancel }
  }

  /** The peer refused a request. Busy: it gets fewer requests; any other reason: it lacks the piece. */
  onReject (id: PeerId, block: Block, reason: RejectReason, now: number): void {
    const peer = this.#peers.get(id)
    const b = this.#blockIndex(block)
    if (peer === undefined || b < 0) return
    const key = block.piece * this.#blocksPerPiece + b
    if (!peer.inflight.has(key)) return
    this.#release(peer, key)
    if (reason === RejectReason.Busy) {
      peer.pipeline.backOff(now)
    } else if (peer.has.clear(block.piece)) {
      this.#rarity.decrement(block.piece)
    }
  }

  /** The piece's hash matched. Returns requests still outstanding for it (to cancel; normally none). */
  onPieceVerified (piece: number): PeerRequest[] {
    const cancel: PeerRequest[] = []
    const prog = this.#progress.get(piece)
    if (prog !== undefined) {
      prog.owners.forEach((owners, b) => {
        for (const peer of owners) {
          peer.inflight.delete(piece * this.#blocksPerPiece + b)
          cancel.push({ peer: peer.id, block: this.#block(piece, b) })
        }
      })
      this.#forget(prog)
    }
    this.#rarity.removeFree(piece)
    this.#have.set(piece)
    return cancel
  }

  /** The piece's hash did not match: it is fetched again; returns the peers that reached MAX_STRIKES. */
  onPieceFailed (piece: number): { drop: PeerId[] } {
    const prog = this.#progress.get(piece)
    if (prog === undefined) return { drop: [] }
    const drop: PeerId[] = []
    // Only a piece that came whole from one peer proves that peer guilty. A piece assembled from
    // several peers says nothing about which one lied: striking all of them bans honest peers that
    // happened to share pieces with a bad one. It is refetched from a single peer (#suspect), and
    // that attempt is attributable.
    const sources = new Set(prog.from)
    const [only] = sources
    if (sources.size === 1 && only !== undefined && this.#peers.get(only.id) === only) {
      if (++only.strikes === MAX_STRIKES) drop.push(only.id)
    }
    prog.owners.forEach((owners, b) => {
      for (const peer of owners) peer.inflight.delete(piece * this.#blocksPerPiece + b)
    })
    this.#forget(prog)
    this.#suspect[piece] = 1
    this.#rarity.addFree(piece)
    return { drop }
  }

  /** Requests outstanding for longer than the timeout: back to the pool; send cancel to the peer. */
  expire (now: number): PeerRequest[] {
    const expired: PeerRequest[] = []
    for (const peer of this.#peers.values()) {
      const old: number[] = []
      for (const [key, sentAt] of peer.inflight) {
        if (now - sentAt < this.#timeoutMs) break
        old.push(key)
      }
      if (old.length === 0) continue
      for (const key of old) expired.push({ peer: peer.id, block: this.#release(peer, key) })
      peer.pipeline.backOff(now)
    }
    return expired
  }

  stats (): PickerStats {
    let inFlight = 0
    const peers: PeerStats[] = []
    for (const p of this.#peers.values()) {
      inFlight += p.inflight.size
      const depth = p.pipeline.depth(this.#blockBytes)
      peers.push({ id: p.id, inFlight: p.inflight.size, depth, rate: p.pipeline.rate, strikes: p.strikes, receivedBytes: p.receivedBytes })
    }
    return { pieces: this.pieceCount, have: this.#have.count(), inProgress: this.#progress.size, inFlight, endgame: this.#isEndgame(), peers }
  }

  // -------------------------------------------------------------------------------------------

  #blockCount (piece: number): number {
    return Math.ceil(pieceLength(this.#geometry, piece) / this.#blockBytes)
  }

  #block (piece: number, b: number): Block {
    const offset = b * this.#blockBytes
    return { piece, offset, length: Math.min(this.#blockBytes, pieceLength(this.#geometry, piece) - offset) }
  }

  /** Index of the block within its piece, or -1 when it is not exactly one block of this file. */
  #blockIndex (block: Block): number {
    const { piece, offset, length } = block
    if (!(Number.isInteger(piece) && piece >= 0 && piece < this.pieceCount)) return -1
    if (!(Number.isInteger(offset) && offset >= 0 && offset % this.#blockBytes === 0)) return -1
    const b = offset / this.#blockBytes
    const pieceLen = pieceLength(this.#geometry, piece)
    if (offset >= pieceLen || length !== Math.min(this.#blockBytes, pieceLen - offset)) return -1
    return b
  }

  #start (piece: number, peer: PeerState): Progress {
    const n = this.#blockCount(piece)
    const prog: Progress = {
      piece,
      owners: Array.from({ length: n }, () => []),
      from: new Array<PeerState | undefined>(n).fill(undefined),
      unrequested: n,
      received: 0,
      exclusive: this.#suspect[piece] === 1 ? peer : undefined,
    }
    this.#rarity.removeFree(piece)
    this.#progress.set(piece, prog)
    this.#started.add(prog)
    return prog
  }

  #forget (prog: Progress): void {
    this.#progress.delete(prog.piece)
    this.#started.delete(prog)
  }

  #unrequestedDelta (prog: Progress, delta: number): void {
    prog.unrequested += delta
    if (prog.unrequested === 0) {
      this.#started.delete(prog)
    } else if (prog.unrequested === prog.from.length) { // nothing requested or received: free again
      this.#forget(prog)
      this.#rarity.addFree(prog.piece)
    } else {
      this.#started.add(prog) // no-op when already there
    }
  }

  /** Requests up to `max` unrequested blocks of `prog` from `peer`; returns how many. */
  #take (peer: PeerState, prog: Progress, max: number, out: Block[], now: number): number {
    let taken = 0
    for (let b = 0; b < prog.owners.length && taken < max; b++) {
      if (prog.from[b] !== undefined || prog.owners[b]!.length > 0) continue
      prog.owners[b]!.push(peer)
      peer.inflight.set(prog.piece * this.#blocksPerPiece + b, now)
      out.push(this.#block(prog.piece, b))
      taken++
    }
    if (taken > 0) this.#unrequestedDelta(prog, -taken)
    return taken
  }

  /** Withdraws one request of `peer` (expired, rejected, disconnected); the block returns to the pool. */
  #release (peer: PeerState, key: number): Block {
    peer.inflight.delete(key)
    const piece = Math.floor(key / this.#blocksPerPiece)
    const b = key - piece * this.#blocksPerPiece
    const prog = this.#progress.get(piece)
    if (prog !== undefined) {
      const owners = prog.owners[b]!
      if (removeOwner(owners, peer)) {
        // a failed piece's single source that stops serving it loses the exclusivity, or the piece stalls
        if (prog.exclusive === peer) prog.exclusive = undefined
        if (owners.length === 0 && prog.from[b] === undefined) this.#unrequestedDelta(prog, 1)
      }
    }
    return this.#block(piece, b)
  }

  /**
   * Duplicates to `peer` the outstanding blocks of the first missing piece when the whole-file hash
   * waits on it (RESCUE_AHEAD verified past it) and their holder is slow or unmeasured.
   */
  #rescue (peer: PeerState, max: number, out: Block[], now: number, rates: number): number {
    if (this.#have.count() - this.#firstMissing < RESCUE_AHEAD) return 0
    const prog = this.#progress.get(this.#firstMissing)
    if (prog === undefined || prog.exclusive !== undefined || !peer.has.get(prog.piece)) return 0 // the caller checked `peer` is not slow
    return this.#duplicateBlocks(peer, prog, max, out, now, (owners) => owners.every(o => o.pipeline.rate === undefined || this.#isSlow(o, rates)))
  }

  /** Another peer started `prog`, and a peer that is not slow could fetch its remaining blocks. */
  #fastCanFinish (prog: Progress, slow: PeerState, rates: number): boolean {
    const started = prog.from.some(p => p !== undefined && p !== slow) || prog.owners.some(o => o.some(p => p !== slow))
    if (!started) return false
    for (const p of this.#peers.values()) if (p !== slow && p.has.get(prog.piece) && !this.#isSlow(p, rates)) return true
    return false
  }

  /** Every peer's measured rate together (#isSlow compares one with the rest). */
  #rateSum (): number {
    let sum = 0
    for (const p of this.#peers.values()) sum += p.pipeline.rate ?? 0
    return sum
  }

  /** Measured at under 1/SLOW_PEER_RATIO of the other peers' rates together (an unmeasured peer is not). */
  #isSlow (peer: PeerState, rates: number): boolean {
    const rate = peer.pipeline.rate
    return rate !== undefined && rate * SLOW_PEER_RATIO < rates - rate
  }

  /** Endgame: every missing block some peer has is already requested. */
  #isEndgame (): boolean {
    if (this.#have.isFull() || this.#rarity.anyFreeAvailable()) return false
    for (const prog of this.#started) if (this.#rarity.availability(prog.piece) > 0) return false
    return true
  }

  #duplicate (peer: PeerState, max: number, out: Block[], now: number): void {
    for (const prog of this.#progress.values()) {
      if (max === 0) return
      if (prog.exclusive !== undefined || !peer.has.get(prog.piece)) continue
      max -= this.#duplicateBlocks(peer, prog, max, out, now)
    }
  }

  /**
   * Asks `peer` too for up to `max` of `prog`'s requested, undelivered blocks (endgame, rescue), those
   * whose owners `also` accepts; returns how many.
   */
  #duplicateBlocks (peer: PeerState, prog: Progress, max: number, out: Block[], now: number,
    also: (owners: PeerState[]) => boolean = () => true): number {
    let taken = 0
    for (let b = 0; b < prog.owners.length && taken < max; b++) {
      const owners = prog.owners[b]!
      if (prog.from[b] !== undefined || owners.length === 0 || owners.length >= ENDGAME_MAX_OWNERS || owners.includes(peer)) continue
      if (!also(owners)) continue
      owners.push(peer)
      peer.inflight.set(prog.piece * this.#blocksPerPiece + b, now)
      out.push(this.#block(prog.piece, b))
      taken++
    }
    return taken
  }
}

function removeOwner (owners: PeerState[], peer: PeerState): boolean {
  const i = owners.indexOf(peer)
  if (i < 0) return false
  owners.splice(i, 1)
  return true
}
