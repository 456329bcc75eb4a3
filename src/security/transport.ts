// The one place where peershare accepts and opens connections. Handlers only ever see a connected
// socket; a later issue wraps both ends in TLS here (identity, fingerprint pinning) without touching them.
// Plain TCP for now. Owns: listening, dialling with a deadline, closing every accepted socket on close().

import net from 'node:net'
import { once } from 'node:events'
import { PeershareError } from '../common/errors.ts'

export const DEFAULT_DIAL_TIMEOUT_MS = 10_000

export interface ListenOptions {
  host: string
  /** 0 picks a free port (tests). */
  port: number
  /** Called once per accepted connection, after setNoDelay. */
  onConnection: (socket: net.Socket) => void
}

export interface Listener {
  /** Where the listener is actually bound (the real port when 0 was asked for). */
  readonly address: { host: string, port: number }
  /** Stops accepting, destroys every open accepted socket, resolves when the server is closed. Idempotent. */
  close (): Promise<void>
}

export async function listen (opts: ListenOptions): Promise<Listener> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.setNoDelay(true)
    opts.onConnection(socket)
  })
  // a failed accept (EMFILE...) must not crash the process; the listener keeps serving others
  server.on('error', () => {})
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host: opts.host, port: opts.port, exclusive: true }, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    throw listenError(err, opts.host, opts.port)
  }
  const bound = server.address() as net.AddressInfo
  let closing: Promise<void> | undefined
  return {
    address: { host: opts.host, port: bound.port },
    close () {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const s of sockets) s.destroy()
      })
      return closing
    },
  }
}

function listenError (err: unknown, host: string, port: number): PeershareError {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'EADDRINUSE') {
    return new PeershareError('UNAVAILABLE', `port ${port} on ${host} is already in use (another process listening there?)`, { cause: err })
  }
  if (code === 'EADDRNOTAVAIL') {
    return new PeershareError('UNAVAILABLE', `address ${host} is not an address of this machine`, { cause: err })
  }
  if (code === 'EACCES') {
    return new PeershareError('UNAVAILABLE', `not allowed to listen on ${host}:${port} (ports below 1024 need privileges)`, { cause: err })
  }
  return new PeershareError('UNAVAILABLE', `cannot listen on ${host}:${port}: ${(err as Error).message}`, { cause: err })
}

export interface DialOptions {
  signal?: AbortSignal
  /** Deadline for the TCP connect alone. */
  timeoutMs?: number
}

/** Opens a connection; UNAVAILABLE when refused/unreachable, TIMEOUT past the deadline, the abort reason when aborted. */
export async function dial (host: string, port: number, opts: DialOptions = {}): Promise<net.Socket> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
  const deadline = AbortSignal.timeout(timeoutMs)
  const signal = opts.signal === undefined ? deadline : AbortSignal.any([opts.signal, deadline])
  signal.throwIfAborted()
  const socket = net.connect({ host, port })
  try {
    await once(socket, 'connect', { signal })
  } catch (err) {
    socket.destroy()
    if (deadline.aborted) throw new PeershareError('TIMEOUT', `no answer from ${host}:${port} within ${timeoutMs} ms`)
    if (opts.signal?.aborted === true) throw opts.signal.reason
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    throw new PeershareError('UNAVAILABLE', `cannot connect to ${host}:${port} (${code})`, { cause: err })
  }
  socket.setNoDelay(true)
  return socket
}
