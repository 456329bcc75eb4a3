// Reused buffers for the pieces a sharer reads (storage.ts ShareFile.read) and the peer server sends
// (server.ts gives each back once the socket wrote it). A fresh 512 KiB Buffer per piece read cost a
// sharer page faults and V8 major GCs (external memory pressure): a third of its CPU in profiles.
// Process-wide, one free list per capacity (in practice one: PIECE_BYTES), at most MAX_FREE_BYTES
// idle, and none after POOL_IDLE_MS without a take: an idle client holds no piece memory.
// Only buffers this module handed out are taken back (a WeakSet of their memory), each once: giving
// back any other Buffer, or the same one twice, does nothing.

const MAX_FREE_BYTES = 16 * 1024 * 1024
const POOL_IDLE_MS = 10_000

const free = new Map<number, ArrayBuffer[]>() // by capacity
const out = new WeakSet<ArrayBuffer>() // handed out, not given back yet
let freeBytes = 0
let idleTimer: NodeJS.Timeout | undefined
let lastTake = 0

const stats = { allocated: 0, reused: 0, released: 0 }

/**
 * `length` bytes (≤ capacity) of a buffer of `capacity` bytes, reused when one is free. Its contents
 * are whatever was there (like Buffer.allocUnsafe). The holder gives it back with releasePieceBuffer
 * once nothing reads it any more, or drops it (the GC takes it then).
 */
export function takePieceBuffer (capacity: number, length: number): Buffer {
  if (length > capacity) throw new RangeError(`piece buffer of ${length} bytes asked with capacity ${capacity}`)
  lastTake = performance.now()
  const ab = free.get(capacity)?.pop()
  let buf: Buffer
  if (ab === undefined) {
    // allocUnsafeSlow: its own ArrayBuffer always (allocUnsafe would carve a small one from Node's shared pool)
    buf = Buffer.allocUnsafeSlow(capacity)
    stats.allocated++
  } else {
    freeBytes -= capacity
    buf = Buffer.from(ab, 0, capacity)
    stats.reused++
  }
  out.add(buf.buffer as ArrayBuffer) // allocUnsafeSlow: never a SharedArrayBuffer
  return length === capacity ? buf : buf.subarray(0, length)
}

/** Gives back a buffer (or any view of it) from takePieceBuffer; anything else is ignored. */
export function releasePieceBuffer (buf: Buffer): void {
  const ab = buf.buffer
  if (!(ab instanceof ArrayBuffer) || !out.delete(ab)) return
  stats.released++
  if (freeBytes + ab.byteLength > MAX_FREE_BYTES) return // enough idle already: the GC takes this one
  let list = free.get(ab.byteLength)
  if (list === undefined) free.set(ab.byteLength, list = [])
  list.push(ab)
  freeBytes += ab.byteLength
  idleTimer ??= setInterval(trimIdle, POOL_IDLE_MS).unref()
}

/** Counts since the process started (tests: buffers are reused, every one handed out comes back). */
export function pieceBufferStats (): { allocated: number, reused: number, released: number, freeBytes: number } {
  return { ...stats, freeBytes }
}

function trimIdle (): void {
  if (performance.now() - lastTake < POOL_IDLE_MS) return
  free.clear()
  freeBytes = 0
  clearInterval(idleTimer)
  idleTimer = undefined
}
