// Length-prefixed framing shared by both protocols: a 4-byte big-endian body length, then the body.
// The decoder checks the length against its cap *before* buffering the body, keeps a chunk list and
// copies only when a frame straddles chunks.

import { PeershareError } from '../common/errors.ts'

export const FRAME_HEADER_BYTES = 4

export function encodeFrame (body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length)
  out.writeUInt32BE(body.length, 0)
  body.copy(out, FRAME_HEADER_BYTES)
  return out
}

/** Header alone, for callers that write header and body separately (large payloads, no copy). */
export function encodeFrameHeader (bodyLength: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES)
  out.writeUInt32BE(bodyLength, 0)
  return out
}

export class FrameDecoder {
  /** Settable: a connection may allow bigger frames once it is authenticated. */
  maxFrameBytes: number
  #chunks: Buffer[] = []
  #buffered = 0
  #need = -1 // body length of the frame being read, -1 while waiting for a header
  readonly #header = Buffer.alloc(FRAME_HEADER_BYTES)

  constructor (maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes
  }

  /** Bytes held that do not yet form a whole frame. */
  get bufferedBytes (): number {
    return this.#buffered
  }

  /**
   * Feeds a chunk and returns every complete frame body it finishes, in order.
   * Throws PROTOCOL for a length over the cap; the caller should then drop the connection.
   */
  push (chunk: Buffer): Buffer[] {
    this.feed(chunk)
    const frames: Buffer[] = []
    for (let n = this.nextBody(); n >= 0; n = this.nextBody()) frames.push(this.#take(n))
    return frames
  }

  // The steps push() is made of, for a reader that takes some bodies apart itself (peer/wire-reader.ts).

  /** Adds a chunk; it is kept (as views) until its bytes are taken. */
  feed (chunk: Buffer): void {
    if (chunk.length === 0) return
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
  }

  /**
   * The length of the next frame's body once all of it is buffered, its header consumed: the caller
   * then takes exactly that many bytes (takeCopy, takeParts, copyOut). -1 while incomplete.
   * PROTOCOL for a length over the cap, checked before the body is buffered.
   */
  nextBody (): number {
    if (this.#need < 0) {
      if (this.#buffered < FRAME_HEADER_BYTES) return -1
      const length = this.copyOut(FRAME_HEADER_BYTES, this.#header).readUInt32BE(0)
      if (length > this.maxFrameBytes) {
        throw new PeershareError('PROTOCOL', `frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`)
      }
      this.#need = length
    }
    if (this.#buffered < this.#need) return -1
    const need = this.#need
    this.#need = -1
    return need
  }

  /** The next buffered byte (a body's first, e.g. its message type), or -1 when none is. */
  peekByte (): number {
    return this.#chunks[0]?.[0] ?? -1
  }

  /** Whether any byte still buffered lies in `ab` (so a reader reusing its buffers must keep it). */
  retains (ab: ArrayBufferLike): boolean {
    for (const c of this.#chunks) if (c.buffer === ab) return true
    return false
  }

  /** n bytes from the front; zero-copy when they lie inside the first chunk. */
  #take (n: number): Buffer {
    const first = this.#chunks[0]
    if (first === undefined || first.length < n) return this.takeCopy(n)
    this.#consumeFront(first, n)
    return first.subarray(0, n)
  }

  /** Drops n bytes of `first` (the first chunk, at least n long) from the buffer. */
  #consumeFront (first: Buffer, n: number): void {
    this.#buffered -= n
    if (first.length === n) this.#chunks.shift()
    else this.#chunks[0] = first.subarray(n)
  }

  /** n bytes from the front in a new Buffer, whatever chunks they lie in. */
  takeCopy (n: number): Buffer {
    return this.copyOut(n, Buffer.allocUnsafe(n))
  }

  /** n bytes from the front copied into the start of `into`; returns `into`. */
  copyOut (n: number, into: Buffer): Buffer {
    // headers (4 and 9 bytes, twice per block) nearly always lie in the first chunk: no parts array
    const first = this.#chunks[0]
    if (first !== undefined && first.length >= n) {
      first.copy(into, 0, 0, n)
      this.#consumeFront(first, n)
      return into
    }
    let filled = 0
    for (const part of this.takeParts(n)) filled += part.copy(into, filled)
    return into
  }

  /** n bytes from the front as views of the chunks they lie in (no copy). */
  takeParts (n: number): Buffer[] {
    this.#buffered -= n
    const parts: Buffer[] = []
    while (n > 0) {
      const c = this.#chunks[0]!
      if (c.length <= n) {
        parts.push(c)
        this.#chunks.shift()
        n -= c.length
      } else {
        parts.push(c.subarray(0, n))
        this.#chunks[0] = c.subarray(n)
        n = 0
      }
    }
    return parts
  }
}
