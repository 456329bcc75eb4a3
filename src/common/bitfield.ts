// A fixed-size bit set over a Buffer whose bytes are the wire format (BEP 3: bit 0 is the high bit of
// byte 0; spare bits in the last byte are zero). Owns only bits and their count; what a bit means
// (a piece we have, a piece a peer has) is the caller's business.

import { PeershareError } from './errors.ts'

// popcount of every byte value: count() of a fresh buffer is one table lookup per byte
const POPCOUNT = new Uint8Array(256)
for (let i = 1; i < 256; i++) POPCOUNT[i] = (i & 1) + POPCOUNT[i >> 1]!

export function bitfieldBytes (size: number): number {
  return (size + 7) >>> 3
}

export class Bitfield {
  readonly size: number
  #bytes: Buffer
  #count: number // cached: kept exact by set/clear, so count() is O(1) on the picker's hot path

  /**
   * Adopts `buffer` without copying (the caller must not keep writing to it). Throws PROTOCOL for a
   * buffer of the wrong length or with a spare bit set: such a buffer would make count() lie.
   */
  constructor (size: number, buffer?: Buffer) {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`bitfield size ${size} is not a count`)
    this.size = size
    if (buffer === undefined) {
      this.#bytes = Buffer.alloc(bitfieldBytes(size))
      this.#count = 0
      return
    }
    checkWireBytes(size, buffer)
    this.#bytes = buffer
    let n = 0
    for (let i = 0; i < buffer.length; i++) n += POPCOUNT[buffer[i]!]!
    this.#count = n
  }

  /** From wire bytes (e.g. a peer's bitfield message): validated, then copied so the socket's chunk is not pinned. */
  static fromBuffer (size: number, buf: Buffer): Bitfield {
    checkWireBytes(size, buf)
    return new Bitfield(size, Buffer.from(buf))
  }

  /** Every bit set: a seeder's bitfield. */
  static full (size: number): Bitfield {
    const bf = new Bitfield(size)
    bf.#bytes.fill(0xff)
    const spare = bf.#bytes.length * 8 - size
    if (spare > 0) bf.#bytes[bf.#bytes.length - 1] = (0xff << spare) & 0xff
    bf.#count = size
    return bf
  }

  get byteLength (): number {
    return this.#bytes.length
  }

  get (i: number): boolean {
    this.#check(i)
    return (this.#bytes[i >>> 3]! & (0x80 >>> (i & 7))) !== 0
  }

  /** Returns true when the bit changed (it was clear). */
  set (i: number): boolean {
    this.#check(i)
    const j = i >>> 3
    const mask = 0x80 >>> (i & 7)
    const b = this.#bytes[j]!
    if ((b & mask) !== 0) return false
    this.#bytes[j] = b | mask
    this.#count++
    return true
  }

  /** Returns true when the bit changed (it was set). */
  clear (i: number): boolean {
    this.#check(i)
    const j = i >>> 3
    const mask = 0x80 >>> (i & 7)
    const b = this.#bytes[j]!
    if ((b & mask) === 0) return false
    this.#bytes[j] = b & ~mask
    this.#count--
    return true
  }

  count (): number {
    return this.#count
  }

  isFull (): boolean {
    return this.#count === this.size
  }

  isEmpty (): boolean {
    return this.#count === 0
  }

  /** Calls fn for every set bit in ascending order; skips zero bytes, so a sparse set is cheap. */
  forEachSet (fn: (i: number) => void): void {
    const bytes = this.#bytes
    for (let j = 0; j < bytes.length; j++) {
      const b = bytes[j]!
      if (b === 0) continue
      for (let k = 0; k < 8; k++) if ((b & (0x80 >>> k)) !== 0) fn(j * 8 + k)
    }
  }

  /** A copy of the wire bytes. */
  toBuffer (): Buffer {
    return Buffer.from(this.#bytes)
  }

  /** Writes the wire bytes into `target` at `offset` (lets an encoder build a frame in one allocation). */
  copyTo (target: Buffer, offset: number): number {
    return this.#bytes.copy(target, offset)
  }

  clone (): Bitfield {
    return new Bitfield(this.size, Buffer.from(this.#bytes))
  }

  #check (i: number): void {
    // Index errors are caller bugs: wire input is range-checked before it reaches a bitfield
    if (!(i >= 0 && i < this.size && Number.isInteger(i))) {
      throw new RangeError(`bit ${i} outside a bitfield of ${this.size}`)
    }
  }
}

function checkWireBytes (size: number, buf: Buffer): void {
  const want = bitfieldBytes(size)
  if (buf.length !== want) {
    throw new PeershareError('PROTOCOL', `bitfield is ${buf.length} bytes, want ${want} for ${size} pieces`)
  }
  const spare = want * 8 - size
  if (spare > 0 && (buf[want - 1]! & ((1 << spare) - 1)) !== 0) {
    throw new PeershareError('PROTOCOL', 'bitfield has spare bits set past the last piece')
  }
}
