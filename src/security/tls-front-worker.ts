// The TLS front's thread (transport.ts starts it): accepts the TLS 1.3 connections of one listener,
// and hands each one, decrypted, to the main thread over a Unix socket, after a header that says
// whose certificate it was (front-header.ts). Bytes are piped both ways, with backpressure, until
// either side closes; then both are closed. A client without a certificate is refused here.
// The main thread stops it with Worker.terminate(), which closes the listener and every socket.
// Imports node: modules and small modules of ours only: it is a thread of its own, kept small.

import net from 'node:net'
import tls from 'node:tls'
import { parentPort, workerData } from 'node:worker_threads'
import { closeAfterFlush } from '../common/close-after-flush.ts'
import { encodeFrontHeader } from './front-header.ts'
import { peerFingerprint } from './tls.ts'

export interface FrontInit {
  host: string
  port: number
  /** Plain data only (serverTlsOptions: PEM strings, versions, flags). */
  tlsOptions: tls.TlsOptions
  /** The main thread's hand-over socket (abstract namespace: starts with "\0"). */
  handoverPath: string
  secret: Uint8Array
  keepAliveMs: number
  /** Log levels the main thread would print: the others are not even sent. */
  debug: boolean
  info: boolean
}

export type FromFront =
  | { t: 'listening', port: number }
  | { t: 'listen-error', code: string, message: string }
  | { t: 'log', level: 'debug' | 'info' | 'warn', msg: string, fields: Record<string, unknown> }

const port = parentPort
if (port === null) throw new Error('tls-front-worker.ts runs as a worker thread')
const init = workerData as FrontInit
const post = (msg: FromFront): void => { port.postMessage(msg) }
const log = (level: 'debug' | 'info' | 'warn', msg: string, fields: Record<string, unknown>): void => {
  if ((level === 'debug' && !init.debug) || (level === 'info' && !init.info)) return
  post({ t: 'log', level, msg, fields })
}

/** How long a closing connection may take to hand its last bytes to a reader that does not read. */
const LINGER_MS = 10_000

const server = tls.createServer(init.tlsOptions)

server.on('secureConnection', (socket: tls.TLSSocket) => {
  const remoteAddress = socket.remoteAddress
  const remotePort = socket.remotePort
  if (remoteAddress === undefined || remotePort === undefined) { socket.destroy(); return } // gone already
  const remote = { remoteAddress, remotePort }
  const fingerprint = peerFingerprint(socket) // as an in-process TLS listener names its clients
  if (fingerprint === undefined) {
    // nobody to bind a session or a ticket to: refused before reading a byte
    log('info', 'refused a TLS client without a certificate', { remote: `${remote.remoteAddress}:${remote.remotePort}` })
    socket.destroy()
    return
  }
  socket.setNoDelay(true)
  socket.setKeepAlive(true, init.keepAliveMs)
  const inner = net.connect({ path: init.handoverPath })
  const closeBoth = (): void => {
    socket.destroy()
    inner.destroy()
  }
  socket.on('error', closeBoth)
  inner.on('error', closeBoth)
  // A side that closed cleanly has already ended the other through pipe(); destroying the other now
  // would drop what it still holds for its reader (a client's last request, the tracker's last reply).
  socket.on('close', () => closeAfterFlush(inner, LINGER_MS))
  inner.on('close', () => closeAfterFlush(socket, LINGER_MS))
  inner.write(encodeFrontHeader(init.secret, { fingerprint, ...remote }))
  socket.pipe(inner)
  inner.pipe(socket)
})

// plain TCP, TLS 1.2, garbage: OpenSSL fails the handshake; the socket is closed, nothing is answered
server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
  log('debug', 'TLS handshake failed', { remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, code: err.code ?? err.message })
  socket.destroy()
})

server.once('error', (err: NodeJS.ErrnoException) => post({ t: 'listen-error', code: err.code ?? 'error', message: err.message }))
server.listen({ host: init.host, port: init.port, exclusive: true }, () => {
  server.removeAllListeners('error')
  // a failed accept (EMFILE...) must not end the thread; the listener keeps serving others
  server.on('error', (err: NodeJS.ErrnoException) => log('warn', 'TLS listener error', { code: err.code ?? err.message }))
  post({ t: 'listening', port: (server.address() as net.AddressInfo).port })
})

