// Framing for the peer wire on the receiving side: protocol/frame.ts's FrameDecoder (same 4-byte length
// prefix, same cap checked before buffering), except that a piece message's block is not gathered
// into one new Buffer. Socket chunks are 64 KiB and a block frame 128 KiB, so every block straddles
// chunks, and FrameDecoder would allocate and fill a fresh 128 KiB Buffer per block only for download.ts
// to copy it again into its piece buffer: twice the copying, and ~1 GiB of short-lived garbage per GiB
// downloaded that V8 frees late (it drove the downloader's RSS past 250 MB). Here the block comes out
// as views of the socket's chunks (`parts`), copied once, straight into place, by the consumer.
// Chunks may be reused buffers (pooled-reads.ts): parts are valid during the caller's handling of
// push()'s result only, other frames are copies, and retains() says which buffers are still held.

import { PeershareError } from '../common/errors.ts'
import { FRAME_HEADER_BYTES } from '../protocol/frame.ts'
import { MAX_BLOCK_BYTES, Msg, PIECE_HEADER_BYTES } from '../protocol/wire.ts'

export type WireChunk =
  | { kind: 'frame', body: Buffer }
  /** A piece message: `parts` are views into received chunks, `length` bytes together (1..MAX_BLOCK_BYTES). */
  | { kind: 'piece', piece: number, offset: number, length: number, parts: Buffer[] }

export class WireReader {
  /** Settable: a connection allows bigger frames once the handshake is done. */
  maxFrameBytes: number
  #chunks: Buffer[] = []
  #buffered = 0
  #need = -1 // body length of the frame being read, -1 while waiting for a header
  readonly #scratch = Buffer.alloc(16)

  constructor (maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes
  }

  /** Feeds a chunk; returns every frame it completes, in order. PROTOCOL on an oversize or empty block. */
  push (chunk: Buffer): WireChunk[] {
    const out: WireChunk[] = []
    if (chunk.length > 0) {
      this.#chunks.push(chunk)
      this.#buffered += chunk.length
    }
    for (;;) {
      if (this.#need < 0) {
        if (this.#buffered < FRAME_HEADER_BYTES) break
        const length = this.#header(FRAME_HEADER_BYTES).readUInt32BE(0)
        if (length > this.maxFrameBytes) {
          throw new PeershareError('PROTOCOL', `frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`)
        }
        this.#need = length
      }
      if (this.#buffered < this.#need) break
      const need = this.#need
      this.#need = -1
      if (need > 0 && this.#chunks[0]![0] === Msg.Piece) {
        const dataLength = need - PIECE_HEADER_BYTES
        if (dataLength <= 0 || dataLength > MAX_BLOCK_BYTES) {
          throw new PeershareError('PROTOCOL', `piece message carries ${Math.max(dataLength, 0)} bytes, want 1..${MAX_BLOCK_BYTES}`)
        }
        const header = this.#header(PIECE_HEADER_BYTES)
        out.push({ kind: 'piece', piece: header.readUInt32BE(1), offset: header.readUInt32BE(5), length: dataLength, parts: this.#takeParts(dataLength) })
      } else {
        out.push({ kind: 'frame', body: this.#take(need) })
      }
    }
    return out
  }

  /** Whether any byte still buffered lies in `ab` (so it must not be reused yet). */
  retains (ab: ArrayBufferLike): boolean {
    for (const c of this.#chunks) if (c.buffer === ab) return true
    return false
  }

  /** n (≤ 16) bytes from the front in a scratch buffer, valid until the next call: no allocation per frame. */
  #header (n: number): Buffer {
    let filled = 0
    for (const part of this.#takeParts(n)) filled += part.copy(this.#scratch, filled)
    return this.#scratch
  }

  /** n bytes from the front as a new Buffer (small frames: the chunk they lie in may be reused). */
  #take (n: number): Buffer {
    if (n === 0) return Buffer.alloc(0)
    const out = Buffer.allocUnsafe(n)
    let filled = 0
    for (const part of this.#takeParts(n)) filled += part.copy(out, filled)
    return out
  }

  /** n bytes from the front as views of the chunks they lie in (no copy). */
  #takeParts (n: number): Buffer[] {
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
