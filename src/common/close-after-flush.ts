// Closing a connection without losing what is queued for it: end() lets the queued bytes go out,
// and a reader that never takes them cannot keep the socket open longer than the linger.

import type { Socket } from 'node:net'

/** Ends `socket` after what is queued; destroys it after `lingerMs` if it has not closed by then. */
export function closeAfterFlush (socket: Socket, lingerMs: number): void {
  if (socket.destroyed) return
  if (!socket.writableEnded) socket.end() // a second end() only makes an error object (with its stack)
  const timer = setTimeout(() => socket.destroy(), lingerMs)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
}
