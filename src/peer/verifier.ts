// The main thread's side of piece-worker.ts, for one download: a pool of piece buffers (one
// ArrayBuffer each, reused: blocks are copied straight into them, so nothing else is allocated per
// piece) and submit(), which hands a complete piece to the worker (transferred, not copied) to be
// hashed, written and fed to the whole-file hash. Memory is bounded by the callers: the picker bounds
// the pieces being assembled, download.ts the pieces submitted (MAX_PENDING_WRITES), whole-hash.ts
// the pieces held (HOLD_PIECES); the pool only ever holds what was in use at the peak.

import { Worker } from 'node:worker_threads'
import type { Bitfield } from '../common/bitfield.ts'
import { PeershareError } from '../common/errors.ts'
import { pieceCount } from '../protocol/file-meta.ts'
import type { FileMeta } from '../protocol/file-meta.ts'
import type { FromWorker, ToWorker, WorkerInit } from './piece-worker.ts'
import { HOLD_PIECES } from './whole-hash.ts'

export type PieceVerdict = 'ok' | 'bad'

export interface VerifierOptions {
  meta: FileMeta
  /** The `.part`'s descriptor (PieceStore.fd): the worker writes good pieces there. */
  fd: number
  /** Pieces verified on disk already (resume): read back for the whole-file hash. */
  onDisk: Bitfield
  hold?: number
}

interface Waiter { resolve: (v: PieceVerdict) => void, reject: (e: PeershareError) => void }

export class PieceVerifier {
  readonly #worker: Worker
  readonly #pieceBytes: number
  readonly #free: ArrayBuffer[] = []
  readonly #waiting = new Map<number, Waiter>()
  readonly #whole: Promise<Buffer>
  #wholeSettle!: { resolve: (d: Buffer) => void, reject: (e: PeershareError) => void }
  #error: PeershareError | undefined
  #closed = false

  constructor (opts: VerifierOptions) {
    this.#pieceBytes = opts.meta.pieceBytes
    const count = pieceCount(opts.meta.size, opts.meta.pieceBytes)
    const onDisk = new Uint8Array(count)
    for (let i = 0; i < count; i++) if (opts.onDisk.get(i)) onDisk[i] = 1
    const init: WorkerInit = {
      fd: opts.fd,
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

  /** A buffer for one piece (pieceBytes long, contents undefined): from the pool, or new. */
  acquire (): Buffer {
    return Buffer.from(this.#free.pop() ?? new ArrayBuffer(this.#pieceBytes))
  }

  /** Buffers idle in the pool (tests: every buffer comes back). */
  get pooled (): number {
    return this.#free.length
  }

  /**
   * Verifies piece `piece` held in `buf` (from acquire(); it is transferred: do not touch it again).
   * 'ok': the piece matched its hash and is written to the `.part`. 'bad': it did not; nothing written.
   * Rejects UNAVAILABLE when the write failed, INTERNAL when the worker died.
   */
  submit (piece: number, buf: Buffer): Promise<PieceVerdict> {
    if (this.#error !== undefined) return Promise.reject(this.#error)
    if (this.#waiting.has(piece)) return Promise.reject(new PeershareError('INTERNAL', `piece ${piece} submitted twice`))
    const ab = buf.buffer as ArrayBuffer
    const msg: ToWorker = { piece, buf: ab }
    return new Promise((resolve, reject) => {
      this.#waiting.set(piece, { resolve, reject })
      this.#worker.postMessage(msg, [ab])
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
        if (msg.buf !== undefined) this.#free.push(msg.buf)
        const w = this.#waiting.get(msg.piece)
        this.#waiting.delete(msg.piece)
        if (w === undefined) return
        if (msg.error !== undefined) w.reject(new PeershareError('UNAVAILABLE', `cannot write piece ${msg.piece}: ${msg.error}`))
        else w.resolve(msg.ok ? 'ok' : 'bad')
        break
      }
      case 'release': this.#free.push(msg.buf); break
      case 'whole': this.#wholeSettle.resolve(Buffer.from(msg.digest)); break
      case 'error': this.#failAll(new PeershareError('UNAVAILABLE', msg.error)); break
    }
  }

  #failAll (err: PeershareError): void {
    this.#error ??= err
    for (const w of this.#waiting.values()) w.reject(err)
    this.#waiting.clear()
    this.#wholeSettle.reject(err)
  }
}
