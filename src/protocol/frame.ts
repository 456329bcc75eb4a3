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
    const frames: Buffer[] = []
    if (chunk.length > 0) {
      this.#chunks.push(chunk)
      this.#buffered += chunk.length
    }
    for (;;) {
      if (this.#need < 0) {
        if (this.#buffered < FRAME_HEADER_BYTES) break
        const header = this.#take(FRAME_HEADER_BYTES)
        const length = header.readUInt32BE(0)
        if (length > this.maxFrameBytes) {
          throw new PeershareError('PROTOCOL', `frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`)
        }
        this.#need = length
      }
      if (this.#buffered < this.#need) break
      frames.push(this.#take(this.#need))
      this.#need = -1
    }
    return frames
  }

  /** Removes n bytes from the front; zero-copy when they lie inside the first chunk. */
  #take (n: number): Buffer {
    this.#buffered -= n
    const first = this.#chunks[0]
    if (first === undefined) return Buffer.alloc(0)
    if (first.length === n) {
      this.#chunks.shift()
      return first
    }
    if (first.length > n) {
      this.#chunks[0] = first.subarray(n)
      return first.subarray(0, n)
    }
    const out = Buffer.allocUnsafe(n)
    let filled = 0
    while (filled < n) {
      const c = this.#chunks[0]!
      const want = n - filled
      if (c.length <= want) {
        c.copy(out, filled)
        filled += c.length
        this.#chunks.shift()
      } else {
        c.copy(out, filled, 0, want)
        this.#chunks[0] = c.subarray(want)
        filled += want
      }
    }
    return out
  }
}
