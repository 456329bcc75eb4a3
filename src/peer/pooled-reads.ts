// Socket reads into a few reused buffers (Node's `onread` option of net.connect / tls.connect)
// instead of the fresh 64 KiB Buffer Node allocates for every read by default. At 400 MB/s that is
// 6,000 allocations a second whose memory V8 only frees when its external-memory accounting (64 MB)
// triggers a collection: measured, ~75 MB of a downloader's RSS was read buffers waiting for it.
// The WireReader keeps views of a buffer while a block straddles reads, so a buffer goes back to the
// pool only once the reader no longer holds any of its bytes (frames it hands out are copies; piece
// parts are views valid during the 'piece' event only, which copies them into the piece).

import type net from 'node:net'

/** Bytes per read: what Node uses by default, and what a loopback read returns at full speed. */
const READ_BYTES = 64 * 1024

export class PooledReads {
  /** Pass as the `onread` option when the socket is created (before any byte arrives). */
  readonly onread: net.OnReadOpts
  #free: Buffer[] = []
  /** Buffers whose bytes the reader may still hold (checked again after every read). */
  readonly #held: Buffer[] = []
  #deliver: ((chunk: Buffer) => void) | undefined
  #retains: (ab: ArrayBufferLike) => boolean = () => false
  /** Bytes read before attach(), copied. */
  #early: Buffer[] = []
  #allocated = 0

  constructor () {
    this.onread = {
      buffer: () => this.#free.pop() ?? this.#allocate(),
      callback: (nread: number, buf: Uint8Array) => {
        this.#onRead(buf.subarray(0, nread) as Buffer, buf as Buffer)
        return true
      },
    }
  }

  /** Buffers made so far (tests: a steady stream reuses a handful). */
  get allocated (): number {
    return this.#allocated
  }

  /**
   * From now on every read goes to `deliver`, synchronously; `retains` says whether the consumer
   * still holds views of a buffer after deliver returned. Bytes read before this come first.
   */
  attach (deliver: (chunk: Buffer) => void, retains: (ab: ArrayBufferLike) => boolean): void {
    this.#deliver = deliver
    this.#retains = retains
    const early = this.#early
    this.#early = []
    for (const chunk of early) deliver(chunk)
  }

  #allocate (): Buffer {
    this.#allocated++
    return Buffer.allocUnsafeSlow(READ_BYTES) // its own ArrayBuffer: never a slice of Node's shared pool
  }

  #onRead (chunk: Buffer, buf: Buffer): void {
    const deliver = this.#deliver
    if (deliver === undefined) this.#early.push(Buffer.from(chunk))
    else deliver(chunk)
    this.#held.push(buf)
    // the reader consumes bytes in the order they were read: buffers come free oldest first
    const held = this.#held
    while (held.length > 0 && !this.#retains(held[0]!.buffer)) this.#free.push(held.shift()!)
  }
}
