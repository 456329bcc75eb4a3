// The whole-file SHA-1, computed while a download runs instead of in a second pass over the file at
// the end: verified pieces are fed in file order. A piece verified ahead of the cursor is held (up to
// `hold` of them) until its turn; one that does not fit, and every piece verified in an earlier run
// (resume), is on disk already and is read back when the cursor reaches it (nextReadBack). The picker
// starts pieces near the front (picker.ts NEAR_WINDOW), so the usual case holds a few pieces and reads
// nothing back. Memory: at most `hold` pieces. Pure apart from node:crypto; piece-worker.ts drives it.

import { createHash } from 'node:crypto'
import type { Hash } from 'node:crypto'

/**
 * Out-of-order pieces kept in memory for the cursor (at most 32 MiB of 512 KiB pieces). Pieces
 * complete out of order by up to the pieces in flight: 8 peers (download.ts MAX_PEERS) × 32 blocks
 * (pipeline.ts MAX_DEPTH) = 64 pieces. Past this the farthest is read back later: piece-worker.ts
 * writes pieces that far ahead through the page cache so that this read is a memory copy (written
 * direct, it is a disk read: with 16, three sharers made ~1 s of read-backs after the last piece and
 * halved the throughput). Memory is only spent when pieces really arrive out of order.
 */
export const HOLD_PIECES = 64

export interface InOrderHashOptions {
  pieceCount: number
  /** Per piece, non-zero when its verified bytes are on disk already (resume). Copied. */
  onDisk: Uint8Array
  hold?: number
  /** Gets back a held piece's bytes once they are hashed (so their buffer can be reused). */
  release: (data: Uint8Array) => void
}

export class InOrderHash {
  readonly pieceCount: number
  readonly #hash: Hash = createHash('sha1')
  readonly #held = new Map<number, Uint8Array>()
  readonly #onDisk: Uint8Array
  readonly #hold: number
  readonly #release: (data: Uint8Array) => void
  #cursor = 0
  #digest: Buffer | undefined

  constructor (opts: InOrderHashOptions) {
    if (opts.onDisk.length !== opts.pieceCount) throw new RangeError('onDisk must have one entry per piece')
    this.pieceCount = opts.pieceCount
    this.#onDisk = Uint8Array.from(opts.onDisk)
    this.#hold = opts.hold ?? HOLD_PIECES
    this.#release = opts.release
    this.#advance()
  }

  /** Pieces hashed so far (all below it). */
  get cursor (): number {
    return this.#cursor
  }

  get heldCount (): number {
    return this.#held.size
  }

  /** Every piece is hashed. */
  get done (): boolean {
    return this.#cursor === this.pieceCount
  }

  /**
   * A verified piece whose bytes are on disk now. Returns true when `data` is kept (held for its turn):
   * the caller must not reuse it until `release` gives it back; false: done with it already.
   */
  add (piece: number, data: Uint8Array): boolean {
    if (!(piece >= this.#cursor && piece < this.pieceCount) || this.#onDisk[piece] === 1) return false // a repeat
    this.#onDisk[piece] = 1
    if (piece === this.#cursor) {
      this.#update(data)
      this.#advance()
      return false
    }
    if (this.#held.size >= this.#hold) {
      // full: keep the pieces nearest the cursor; the farthest is on disk and is read back in its turn
      let far = piece
      for (const p of this.#held.keys()) if (p > far) far = p
      if (far === piece) return false
      const farData = this.#held.get(far)!
      this.#held.delete(far)
      this.#release(farData)
    }
    this.#held.set(piece, data)
    return true
  }

  /** The piece to read back from disk and pass to addReadBack, or -1 when the cursor waits for a download. */
  nextReadBack (): number {
    const c = this.#cursor
    return c < this.pieceCount && this.#onDisk[c] === 1 && !this.#held.has(c) ? c : -1
  }

  addReadBack (piece: number, data: Uint8Array): void {
    if (piece !== this.nextReadBack()) throw new RangeError(`piece ${piece} is not the one to read back`)
    this.#update(data)
    this.#advance()
  }

  /** The whole file's SHA-1, once done. */
  digest (): Buffer {
    if (!this.done) throw new RangeError(`whole-file hash asked for at piece ${this.#cursor} of ${this.pieceCount}`)
    this.#digest ??= this.#hash.digest()
    return this.#digest
  }

  #update (data: Uint8Array): void {
    this.#hash.update(data)
    this.#cursor++
  }

  /** Hashes held pieces whose turn came. */
  #advance (): void {
    for (;;) {
      const data = this.#held.get(this.#cursor)
      if (data === undefined) return
      this.#held.delete(this.#cursor)
      this.#update(data)
      this.#release(data)
    }
  }
}
