// Worker thread (node:worker_threads) of one download, started by verifier.ts: takes whole pieces
// (slots of the shared slabs verifier.ts allocates, never copied), checks each one's SHA-1, writes a
// good one to the `.part` with positional writes on the file descriptors the main thread opened
// (direct I/O when it has a direct descriptor and the piece is a whole number of aligned blocks), and
// feeds it to the whole-file hash (whole-hash.ts). So the two SHA-1 passes and the disk writes run on
// the second core while the main thread only moves bytes from sockets into piece buffers. Slots go
// back to the main thread's pool as soon as the worker is done with them.
// Messages in: ToWorker. Out: FromWorker. One message per piece each way, plus releases of held pieces.

import { createHash } from 'node:crypto'
import { fdatasync, readSync, write } from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'
import { SHA1_BYTES } from '../protocol/file-meta.ts'
import { InOrderHash } from './whole-hash.ts'
import { DIRECT_IO_ALIGN } from './direct-io.ts'

export interface WorkerInit {
  fd: number
  /** O_DIRECT descriptor of the same file, or undefined: every write goes through `fd`. */
  directFd: number | undefined
  /** Bytes between slots in a slab (pieceBytes rounded up to the direct I/O alignment). */
  stride: number
  slabPieces: number
  size: number
  pieceBytes: number
  pieceHashes: Uint8Array
  /** Per piece: 1 when verified on disk already (resume). */
  onDisk: Uint8Array
  hold: number
}

export type ToWorker =
  /** A complete piece to verify in slot `slot`; its first `length` bytes are the piece. */
  | { t: 'piece', piece: number, slot: number }
  /** The next `slabPieces` slots; sent before any piece in them. */
  | { t: 'slab', memory: SharedArrayBuffer }

export type FromWorker =
  /** `slot` is absent while the piece is held for the whole-file hash (a 'release' follows). */
  | { t: 'piece', piece: number, ok: boolean, error?: string, slot?: number }
  | { t: 'release', slot: number }
  | { t: 'whole', digest: Uint8Array }
  | { t: 'error', error: string }

const port = parentPort
if (port === null) throw new Error('piece-worker.ts runs as a worker thread')
const init = workerData as WorkerInit
const count = init.onDisk.length

const post = (msg: FromWorker): void => { port.postMessage(msg) }
const slabs: SharedArrayBuffer[] = []
const slabIndex = new Map<ArrayBufferLike, number>()
/** The slot a piece's bytes live in (they always start at its beginning). */
const slotOf = (data: Uint8Array): number => slabIndex.get(data.buffer)! * init.slabPieces + data.byteOffset / init.stride
const whole = new InOrderHash({
  pieceCount: count,
  onDisk: init.onDisk,
  hold: init.hold,
  release: (data) => post({ t: 'release', slot: slotOf(data) }),
})
let directFd = init.directFd
// Written bytes after which the worker asks the kernel to write them out (an fdatasync in libuv's pool).
// The default writeback starts only at 10% of RAM dirty, so without it the whole download waited in the
// page cache and finish()'s fsync wrote it all at the end (465 ms of a 4 s run for 1 GiB, measured);
// this way the disk works during the download and the final fsync finds little left.
const FLUSH_EVERY_BYTES = 64 * 1024 * 1024
let unflushed = 0
let flushing = false
let scratch: Uint8Array | undefined // read-back buffer, allocated on first use
let readBackQueued = false
let wholeSent = false

function pieceLength (piece: number): number {
  return Math.min(init.pieceBytes, init.size - piece * init.pieceBytes)
}

function onMessage (msg: ToWorker): void {
  if (msg.t === 'slab') {
    slabIndex.set(msg.memory, slabs.length)
    slabs.push(msg.memory)
    return
  }
  const { piece, slot } = msg
  const slab = slabs[Math.floor(slot / init.slabPieces)]!
  const data = new Uint8Array(slab, (slot % init.slabPieces) * init.stride, pieceLength(piece))
  const expected = init.pieceHashes.subarray(piece * SHA1_BYTES, (piece + 1) * SHA1_BYTES)
  if (!createHash('sha1').update(data).digest().equals(expected)) {
    post({ t: 'piece', piece, ok: false, slot })
    return
  }
  // A piece at least `hold` ahead of the whole-file hash will not be held: it is read back when the
  // hash gets there. Written through the page cache, that read is a memory copy; written direct, a
  // disk read, slower than pieces arrive, so a hash that fell behind once never caught up again
  // (5,000 read-backs, 5 s after the last piece of a 4 GiB download). Nearer pieces are always held.
  const direct = piece - whole.cursor < init.hold
  writePiece(data, piece * init.pieceBytes, direct, (err, wentDirect) => {
    if (err !== null) {
      post({ t: 'piece', piece, ok: true, error: err.message, slot })
      return
    }
    if (whole.add(piece, data)) post({ t: 'piece', piece, ok: true })
    else post({ t: 'piece', piece, ok: true, slot })
    if (wentDirect) {
      progress()
      return
    }
    unflushed += data.length // in the page cache: written out in the background (FLUSH_EVERY_BYTES)
    if (unflushed >= FLUSH_EVERY_BYTES && !flushing) {
      unflushed = 0
      flushing = true
      fdatasync(init.fd, () => { flushing = false }) // best effort: finish() syncs and reports errors
    }
    progress()
  })
}

/** What a file system that opened O_DIRECT may still answer a direct write with: not a disk error. */
const DIRECT_REFUSED = new Set(['EINVAL', 'EOPNOTSUPP', 'ENOTSUP'])

/**
 * Asynchronous (libuv's pool): the next piece is hashed while this one is written. Direct when it can
 * be; a direct write the file system refuses after all (EINVAL: alignment it does not accept;
 * EOPNOTSUPP on some FUSE mounts) turns direct I/O off for the rest of the download and the piece is
 * written again through the page cache. `done` says which way it went.
 */
function writePiece (data: Uint8Array, position: number, direct: boolean, done: (err: Error | null, wentDirect: boolean) => void): void {
  const buffered = (): void => writeAll(init.fd, data, position, (err) => done(err, false))
  const fd = directFd
  if (fd === undefined || !direct || data.length % DIRECT_IO_ALIGN !== 0) {
    buffered()
    return
  }
  writeAll(fd, data, position, (err) => {
    if (err === null || !DIRECT_REFUSED.has((err as NodeJS.ErrnoException).code ?? '')) {
      done(err, true)
      return
    }
    directFd = undefined
    buffered()
  })
}

function writeAll (fd: number, data: Uint8Array, position: number, done: (err: Error | null) => void, at = 0): void {
  write(fd, data, at, data.length - at, position + at, (err, n) => {
    if (err !== null) done(err)
    else if (n === 0) done(new Error('the write made no progress'))
    else if (at + n < data.length) writeAll(fd, data, position, done, at + n)
    else done(null)
  })
}

/** Reads back one piece per turn, so pieces arriving meanwhile are not kept waiting behind a long resume. */
function progress (): void {
  if (whole.done) {
    if (!wholeSent) post({ t: 'whole', digest: whole.digest() })
    wholeSent = true
    return
  }
  if (readBackQueued || whole.nextReadBack() < 0) return
  readBackQueued = true
  setImmediate(() => {
    readBackQueued = false
    const piece = whole.nextReadBack()
    if (piece < 0) return
    scratch ??= new Uint8Array(init.pieceBytes)
    const data = scratch.subarray(0, pieceLength(piece))
    try {
      let at = 0
      while (at < data.length) {
        const n = readSync(init.fd, data, at, data.length - at, piece * init.pieceBytes + at)
        if (n === 0) throw new Error('the partial file is shorter than expected')
        at += n
      }
    } catch (err) {
      post({ t: 'error', error: `cannot read piece ${piece} back: ${(err as Error).message}` })
      return
    }
    whole.addReadBack(piece, data)
    progress()
  })
}

port.on('message', onMessage)
progress()
