// Availability of every piece (how many connected peers have it) and, for the pieces still free to
// start, an order that is rarest first with ties in random order. Used by picker.ts; knows nothing of
// blocks or requests. Pure: randomness is injected.
//
// Layout (after libtorrent's piece_picker, which keeps pieces sorted by priority with bucket boundaries):
// free pieces live in one dense array per availability count; `pos` maps a piece to its slot. Moving a
// piece when a peer connects, disconnects or announces `have` is O(1): swap-remove from one bucket,
// insert into the next at a random slot (an inside-out Fisher-Yates step, so each bucket stays a random
// permutation: that is the random tie-break, without re-shuffling anything).

export class RarityIndex {
  readonly #avail: Uint32Array
  readonly #pos: Int32Array // slot in buckets[avail] while free, -1 otherwise
  readonly #buckets: number[][] = [[]]
  readonly #rand: () => number

  constructor (pieceCount: number, rand: () => number) {
    this.#avail = new Uint32Array(pieceCount)
    this.#pos = new Int32Array(pieceCount).fill(-1)
    this.#rand = rand
  }

  availability (piece: number): number {
    return this.#avail[piece]!
  }

  isFree (piece: number): boolean {
    return this.#pos[piece]! >= 0
  }

  /** Makes a piece eligible to be started (we lack it and nobody is fetching it). */
  addFree (piece: number): void {
    if (this.#pos[piece]! < 0) this.#insert(this.#avail[piece]!, piece)
  }

  /** The piece was started or verified: it no longer competes for a start. */
  removeFree (piece: number): void {
    if (this.#pos[piece]! >= 0) this.#remove(this.#avail[piece]!, piece)
  }

  increment (piece: number): void {
    const a = this.#avail[piece]!
    this.#avail[piece] = a + 1
    if (this.#pos[piece]! >= 0) {
      this.#remove(a, piece)
      this.#insert(a + 1, piece)
    }
  }

  decrement (piece: number): void {
    const a = this.#avail[piece]!
    if (a === 0) return // a caller bug would otherwise wrap to 2^32 - 1
    this.#avail[piece] = a - 1
    if (this.#pos[piece]! >= 0) {
      this.#remove(a, piece)
      this.#insert(a - 1, piece)
    }
  }

  /**
   * The rarest free piece for which `usable` holds (the peer has it), or -1. Pieces nobody has are never
   * returned. Cost: the free pieces rarer than the answer that `usable` rejects — O(1) for a seeder,
   * O(free pieces) at worst for a peer that has only common pieces.
   */
  rarest (usable: (piece: number) => boolean): number {
    const buckets = this.#buckets
    for (let a = 1; a < buckets.length; a++) {
      const bucket = buckets[a]!
      for (let i = 0; i < bucket.length; i++) {
        const piece = bucket[i]!
        if (usable(piece)) return piece
      }
    }
    return -1
  }

  /**
   * Like rarest(), but among the free pieces exactly as rare as that answer, prefers the first `window`
   * of them at or after `from` (in piece order), chosen among at random. Rarity still decides first; the
   * window only narrows the random tie-break, so pieces complete roughly in file order and the download
   * can hash the whole file as it goes (see picker.ts). Cost: rarest() + the pieces scanned from `from`,
   * at most `scanLimit`.
   */
  rarestNear (usable: (piece: number) => boolean, from: number, window: number, scanLimit: number): number {
    const best = this.rarest(usable)
    if (best < 0 || window <= 0) return best
    const a = this.#avail[best]!
    const near: number[] = []
    const end = Math.min(this.#pos.length, from + scanLimit)
    for (let i = Math.max(0, from); i < end && near.length < window; i++) {
      if (this.#pos[i]! >= 0 && this.#avail[i] === a && usable(i)) near.push(i)
    }
    if (near.length === 0) return best
    return near[Math.floor(this.#rand() * near.length)]!
  }

  /**
   * Like rarest(), but among the free pieces exactly as rare as that answer, the last one in piece order,
   * looked for among the last `scanLimit` pieces (past them: rarest()'s answer). For a slow peer
   * (picker.ts): its piece then completes long before the in-order whole-file hash reaches it, instead
   * of holding that hash up. Cost: rarest() + the pieces scanned back from the end.
   */
  rarestFar (usable: (piece: number) => boolean, scanLimit: number): number {
    const best = this.rarest(usable)
    if (best < 0) return best
    const a = this.#avail[best]!
    const stop = Math.max(0, this.#pos.length - scanLimit)
    for (let i = this.#pos.length - 1; i >= stop; i--) {
      if (this.#pos[i]! >= 0 && this.#avail[i] === a && usable(i)) return i
    }
    return best
  }

  /** True while some free piece is available from at least one peer. */
  anyFreeAvailable (): boolean {
    for (let a = 1; a < this.#buckets.length; a++) if (this.#buckets[a]!.length > 0) return true
    return false
  }

  #insert (a: number, piece: number): void {
    while (this.#buckets.length <= a) this.#buckets.push([])
    const bucket = this.#buckets[a]!
    const n = bucket.length
    bucket.push(piece)
    this.#pos[piece] = n
    const j = Math.floor(this.#rand() * (n + 1))
    if (j < n) { // swap with a random slot: uniform position for the newcomer
      const other = bucket[j]!
      bucket[j] = piece
      bucket[n] = other
      this.#pos[piece] = j
      this.#pos[other] = n
    }
  }

  #remove (a: number, piece: number): void {
    const bucket = this.#buckets[a]!
    const i = this.#pos[piece]!
    const last = bucket.pop()!
    if (last !== piece) {
      bucket[i] = last
      this.#pos[last] = i
    }
    this.#pos[piece] = -1
  }
}
