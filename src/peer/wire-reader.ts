// Framing for the peer wire on the receiving side: protocol/frame.ts's FrameDecoder (same 4-byte length
// prefix, same cap checked before buffering, its chunk list), except that a piece message's block is not gathered
// into one new Buffer. Socket chunks are 64 KiB and a block frame 128 KiB, so every block straddles
// chunks, and FrameDecoder would allocate and fill a fresh 128 KiB Buffer per block only for download.ts
// to copy it again into its piece buffer: twice the copying, and ~1 GiB of short-lived garbage per GiB
// downloaded that V8 frees late (it drove the downloader's RSS past 250 MB). Here the block comes out
// as views of the socket's chunks (`parts`), copied once, straight into place, by the consumer.
// Chunks may be reused buffers (pooled-reads.ts): parts are valid during the caller's handling of
// push()'s result only, other frames are copies, and retains() says which buffers are still held.

import { PeershareError } from '../common/errors.ts'
import { FrameDecoder } from '../protocol/frame.ts'
import { MAX_BLOCK_BYTES, Msg, PIECE_HEADER_BYTES } from '../protocol/wire.ts'

export type WireChunk =
  | { kind: 'frame', body: Buffer }
  /** A piece message: `parts` are views into received chunks, `length` bytes together (1..MAX_BLOCK_BYTES). */
  | { kind: 'piece', piece: number, offset: number, length: number, parts: Buffer[] }

export class WireReader {
  readonly #frames: FrameDecoder
  readonly #pieceHeader = Buffer.alloc(PIECE_HEADER_BYTES)

  constructor (maxFrameBytes: number) {
    this.#frames = new FrameDecoder(maxFrameBytes)
  }

  /** Settable: a connection allows bigger frames once the handshake is done. */
  get maxFrameBytes (): number {
    return this.#frames.maxFrameBytes
  }

  set maxFrameBytes (n: number) {
    this.#frames.maxFrameBytes = n
  }

  /** Feeds a chunk; returns every frame it completes, in order. PROTOCOL on an oversize or empty block. */
  push (chunk: Buffer): WireChunk[] {
    const frames = this.#frames
    frames.feed(chunk)
    const out: WireChunk[] = []
    for (let need = frames.nextBody(); need >= 0; need = frames.nextBody()) {
      if (need === 0 || frames.peekByte() !== Msg.Piece) {
        out.push({ kind: 'frame', body: frames.takeCopy(need) }) // a copy: the chunk may be a reused buffer
        continue
      }
      const dataLength = need - PIECE_HEADER_BYTES
      if (dataLength <= 0 || dataLength > MAX_BLOCK_BYTES) {
        throw new PeershareError('PROTOCOL', `piece message carries ${Math.max(dataLength, 0)} bytes, want 1..${MAX_BLOCK_BYTES}`)
      }
      const header = frames.copyOut(PIECE_HEADER_BYTES, this.#pieceHeader)
      out.push({ kind: 'piece', piece: header.readUInt32BE(1), offset: header.readUInt32BE(5), length: dataLength, parts: frames.takeParts(dataLength) })
    }
    return out
  }

  /** Whether any byte still buffered lies in `ab` (so it must not be reused yet). */
  retains (ab: ArrayBufferLike): boolean {
    return this.#frames.retains(ab)
  }
}
