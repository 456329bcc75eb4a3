// The main thread's side of piece-worker.ts, for one download: a pool of piece buffers and submit(),
// which hands a complete piece to the worker to be hashed, written and fed to the whole-file hash.
// The buffers are slots in slabs of shared WebAssembly memory: shared, so a piece crosses to the
// worker as a slot number (no copy, no transfer), and page-aligned, so the worker can write it to the
// `.part` with direct I/O (storage.ts directFd). Blocks are copied straight into them, so nothing else
// is allocated per piece. Memory is bounded by the caller: download.ts starts no piece past
// MAX_PIECE_BUFFERS in use (started, with the worker, or held for the whole-file hash: `held`,
// whole-hash.ts HOLD_PIECES); the pool grows a slab at a time up to what was in use at the peak.

import { Worker } from 'node:worker_threads'
import type { Bitfield } from '../common/bitfield.ts'
import { PeershareError } from '../common/errors.ts'
import { pieceCount } from '../protocol/file-meta.ts'
import type { FileMeta } from '../protocol/file-meta.ts'
import type { FromWorker, ToWorker, WorkerInit } from './piece-worker.ts'
import { HOLD_PIECES } from './whole-hash.ts'
import { DIRECT_IO_ALIGN } from './direct-io.ts'

/** Piece slots per slab of shared memory (4 MiB of 512 KiB pieces). */
export const SLAB_PIECES = 8
const WASM_PAGE = 65536
// WebAssembly's memory is the one page-aligned, shareable allocation JavaScript has; its types live in
// TypeScript's DOM library, which this project does not load.
const { Memory: WasmMemory } = (globalThis as unknown as {
  WebAssembly: { Memory: new (d: { initial: number, maximum: number, shared: true }) => { buffer: SharedArrayBuffer } }
}).WebAssembly

export type PieceVerdict = 'ok' | 'bad'

export interface VerifierOptions {
  meta: FileMeta
  /** The `.part`'s descriptor (PieceStore.fd): the worker writes good pieces there. */
  fd: number
  /** The `.part` opened for direct I/O (PieceStore.directFd): whole aligned pieces go there instead. */
  directFd?: number | undefined
  /** Pieces verified on disk already (resume): read back for the whole-file hash. */
  onDisk: Bitfield
  hold?: number
  /** Called when the worker gives back a held piece's buffer (the whole-file hash reached it). */
  onRelease?: () => void
}

interface Waiter { resolve: (v: PieceVerdict) => void, reject: (e: PeershareError) => void }

export class PieceVerifier {
  readonly #worker: Worker
  readonly #pieceBytes: number
  readonly #stride: number
  /** One Buffer view per slot, made once: acquire() hands them out, submit() knows them by identity. */
  readonly #views: Buffer[] = []
  readonly #slotOf = new Map<Buffer, number>()
  readonly #free: number[] = []
  readonly #lent = new Set<number>()
  readonly #waiting = new Map<number, Waiter>()
  readonly #whole: Promise<Buffer>
  #wholeSettle!: { resolve: (d: Buffer) => void, reject: (e: PeershareError) => void }
  readonly #onRelease: () => void
  #error: PeershareError | undefined
  #closed = false

  constructor (opts: VerifierOptions) {
    this.#pieceBytes = opts.meta.pieceBytes
    this.#onRelease = opts.onRelease ?? (() => {})
    this.#stride = Math.ceil(opts.meta.pieceBytes / DIRECT_IO_ALIGN) * DIRECT_IO_ALIGN
    const count = pieceCount(opts.meta.size, opts.meta.pieceBytes)
    const onDisk = new Uint8Array(count)
    for (let i = 0; i < count; i++) if (opts.onDisk.get(i)) onDisk[i] = 1
    const init: WorkerInit = {
      fd: opts.fd,
      directFd: opts.directFd,
      stride: this.#stride,
      slabPieces: SLAB_PIECES,
      size: opts.meta.size,
      pieceBytes: opts.meta.pieceBytes,
      pieceHashes: Uint8Array.from(opts.meta.pieceHashes),
      onDisk,
      hold: opts.hold ?? HOLD_PIECES,
    }
    this.#whole = new Promise((resolve, reject) => { this.#wholeSettle = { resolve, reject } })
    this.#whole.catch(() => {}) // observed by wholeDigest(); a download stopped early never asks
    this.#worker = new Worker(new URL('./piece-worker.ts', import.meta.url), { workerData: init })
    this.#worker.unref() // the download's sockets and timers keep the process alive, not this thread
    this.#worker.on('message', (msg: FromWorker) => this.#onMessage(msg))
    this.#worker.on('error', (err) => this.#failAll(new PeershareError('INTERNAL', `piece worker failed: ${err.message}`, { cause: err })))
    this.#worker.on('exit', (code) => {
      if (!this.#closed) this.#failAll(new PeershareError('INTERNAL', `piece worker exited with code ${code}`))
    })
  }

  /** A buffer for one piece (pieceBytes long, contents undefined): from the pool, which grows when empty. */
  acquire (): Buffer {
    if (this.#free.length === 0) this.#addSlab()
    const slot = this.#free.pop()!
    this.#lent.add(slot)
    return this.#views[slot]!
  }

  /** Buffers idle in the pool (tests: every buffer comes back). */
  get pooled (): number {
    return this.#free.length
  }

  /** Buffers the pool holds in all (idle, being filled, or with the worker). */
  get capacity (): number {
    return this.#views.length
  }

  /** Buffers of verified pieces the worker still holds for the whole-file hash (whole-hash.ts). */
  get held (): number {
    return this.#views.length - this.#free.length - this.#lent.size - this.#waiting.size
  }

  /**
   * Verifies piece `piece` held in `buf` (from acquire(); the worker owns it from here: do not touch it again).
   * 'ok': the piece matched its hash and is written to the `.part`. 'bad': it did not; nothing written.
   * Rejects UNAVAILABLE when the write failed, INTERNAL when the worker died.
   */
  submit (piece: number, buf: Buffer): Promise<PieceVerdict> {
    if (this.#error !== undefined) return Promise.reject(this.#error)
    if (this.#waiting.has(piece)) return Promise.reject(new PeershareError('INTERNAL', `piece ${piece} submitted twice`))
    const slot = this.#slotOf.get(buf)
    if (slot === undefined || !this.#lent.delete(slot)) return Promise.reject(new PeershareError('INTERNAL', `piece ${piece}: not a buffer from acquire()`))
    const msg: ToWorker = { t: 'piece', piece, slot }
    return new Promise((resolve, reject) => {
      this.#waiting.set(piece, { resolve, reject })
      this.#worker.postMessage(msg)
    })
  }

  /** The whole file's SHA-1: resolves once every piece is verified and hashed in order. */
  wholeDigest (): Promise<Buffer> {
    return this.#whole
  }

  /** Stops the worker; pieces still submitted are rejected. Await pending submits first to keep them. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#worker.terminate()
    this.#failAll(new PeershareError('UNAVAILABLE', 'piece verification stopped'))
  }

  #onMessage (msg: FromWorker): void {
    switch (msg.t) {
      case 'piece': {
        if (msg.slot !== undefined) this.#free.push(msg.slot)
        const w = this.#waiting.get(msg.piece)
        this.#waiting.delete(msg.piece)
        if (w === undefined) return
        if (msg.error !== undefined) w.reject(new PeershareError('UNAVAILABLE', `cannot write piece ${msg.piece}: ${msg.error}`))
        else w.resolve(msg.ok ? 'ok' : 'bad')
        break
      }
      case 'release': this.#free.push(msg.slot); this.#onRelease(); break
      case 'whole': this.#wholeSettle.resolve(Buffer.from(msg.digest)); break
      case 'error': this.#failAll(new PeershareError('UNAVAILABLE', msg.error)); break
    }
  }

  /** SLAB_PIECES more slots: a new shared memory, announced to the worker before any piece in it. */
  #addSlab (): void {
    const pages = Math.ceil(SLAB_PIECES * this.#stride / WASM_PAGE)
    const memory = new WasmMemory({ initial: pages, maximum: pages, shared: true }).buffer
    const first = this.#views.length
    for (let i = 0; i < SLAB_PIECES; i++) {
      const view = Buffer.from(memory, i * this.#stride, this.#pieceBytes)
      this.#views.push(view)
      this.#slotOf.set(view, first + i)
    }
    for (let i = SLAB_PIECES - 1; i >= 0; i--) this.#free.push(first + i) // lowest slot first: touches fewer pages
    const msg: ToWorker = { t: 'slab', memory }
    this.#worker.postMessage(msg)
  }

  #failAll (err: PeershareError): void {
    this.#error ??= err
    for (const w of this.#waiting.values()) w.reject(err)
    this.#waiting.clear()
    this.#wholeSettle.reject(err)
  }
}
