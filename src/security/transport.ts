// The one place where peershare accepts and opens connections. Handlers only ever see a connected
// socket and, over TLS, the fingerprint of the certificate the other end presented (checked before
// any application byte moves). Owns: listening, dialling with a deadline, the TLS handshake and the
// trust check (tls.ts decides), closing every accepted socket on close().
//
// TLS 1.3 is opted into with `tls`; plain TCP needs `insecurePlaintext: true` from connect(). The old
// call shapes (listen/dial without either) still mean plain TCP until every caller has switched.

import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import { PeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import type { Identity } from './identity.ts'
import { shortFingerprint } from './identity.ts'
import { checkPeer, clientTlsOptions, peerFingerprint, serverTlsOptions } from './tls.ts'
import type { PeerTrust } from './tls.ts'
import { frontAvailable, startFront } from './tls-front.ts'

const log = createLog('security:transport')

export const DEFAULT_DIAL_TIMEOUT_MS = 10_000

export interface PeerInfo {
  /** "SHA256:<hex>" of the other end's certificate; undefined only over insecure plaintext. */
  fingerprint: string | undefined
  /** The client's address (with `offload`, the socket handed over is a local one: this is the real client). */
  remoteAddress: string | undefined
  remotePort: number | undefined
}

export interface ListenOptions {
  host: string
  /** 0 picks a free port (tests). */
  port: number
  /**
   * TLS 1.3 with our identity; every client must present a certificate, whose fingerprint reaches
   * onConnection. `offload`: TLS runs on a thread of its own (tls-front.ts), for a server whose JS
   * thread is busy with requests; on Linux only, elsewhere it stays in-process.
   */
  tls?: { identity: Identity, offload?: boolean }
  /** Plain TCP, on purpose (benchmarks). Today also what omitting `tls` means (see the file comment). */
  insecurePlaintext?: boolean
  /** Called once per accepted connection, after setNoDelay and, over TLS, after the handshake. */
  onConnection: (socket: net.Socket, peer: PeerInfo) => void
}

export interface Listener {
  /** Where the listener is actually bound (the real port when 0 was asked for). */
  readonly address: { host: string, port: number }
  /** Stops accepting, destroys every open accepted socket, resolves when the server is closed. Idempotent. */
  close (): Promise<void>
}

export async function listen (opts: ListenOptions): Promise<Listener> {
  if (opts.tls !== undefined && opts.insecurePlaintext === true) throw new TypeError('listen: tls and insecurePlaintext exclude each other')
  if (opts.tls?.offload === true && frontAvailable) return await listenWithFront(opts, opts.tls.identity)
  const sockets = new Set<net.Socket>()
  const track = (socket: net.Socket): void => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  }
  let server: net.Server
  if (opts.tls === undefined) {
    server = net.createServer((socket) => {
      track(socket)
      socket.setNoDelay(true)
      opts.onConnection(socket, { fingerprint: undefined, remoteAddress: socket.remoteAddress, remotePort: socket.remotePort })
    })
  } else {
    const tlsServer = tls.createServer(serverTlsOptions(opts.tls.identity))
    // the raw socket too: close() must also end connections still in their handshake
    tlsServer.on('connection', track)
    tlsServer.on('secureConnection', (socket: tls.TLSSocket) => {
      track(socket)
      const fingerprint = peerFingerprint(socket)
      if (fingerprint === undefined) {
        // nobody to bind a session or a ticket to: refused before reading a byte
        log.info('refused a TLS client without a certificate', { remote: remoteOf(socket) })
        socket.destroy()
        return
      }
      log.debug('TLS connection', { remote: remoteOf(socket), peer: shortFingerprint(fingerprint), cipher: socket.getCipher().name })
      socket.setNoDelay(true)
      opts.onConnection(socket, { fingerprint, remoteAddress: socket.remoteAddress, remotePort: socket.remotePort })
    })
    // plain TCP, TLS 1.2, garbage: OpenSSL fails the handshake; the socket is closed, nothing is answered
    tlsServer.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      log.debug('TLS handshake failed', { remote: remoteOf(socket), code: err.code ?? err.message })
      socket.destroy()
    })
    server = tlsServer
  }
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

async function listenWithFront (opts: ListenOptions, identity: Identity): Promise<Listener> {
  try {
    const front = await startFront({
      host: opts.host,
      port: opts.port,
      identity,
      onConnection: (socket, peer) => {
        log.debug('TLS connection', { remote: `${peer.remoteAddress}:${peer.remotePort}`, peer: shortFingerprint(peer.fingerprint), front: true })
        opts.onConnection(socket, peer)
      },
    })
    return { address: { host: opts.host, port: front.port }, close: () => front.close() }
  } catch (err) {
    throw listenError(err, opts.host, opts.port)
  }
}

function remoteOf (socket: net.Socket): string {
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
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

export interface DialTls {
  /** Our certificate and key: the other end identifies us by its fingerprint. */
  identity: Identity
  /** How the other end's certificate is judged (tls.ts): pinned, trusted on first use, or left to the caller. */
  trust: PeerTrust
  /** Names the other end in errors ("tracker 2 (127.0.0.1:6001)"); default "host:port". */
  label?: string
}

export interface DialOptions {
  signal?: AbortSignal
  /** Deadline for the TCP connect and the TLS handshake together. */
  timeoutMs?: number
  tls?: DialTls
  /** Plain TCP, on purpose. Today also what dial() without `tls` means (see the file comment). */
  insecurePlaintext?: boolean
  /** Node's `onread` for the socket (peer/pooled-reads.ts): reads into the caller's buffers, no 'data' events. */
  onread?: net.OnReadOpts
}

/** connect() wants the choice said out loud: TLS, or plaintext on purpose. */
export type ConnectOptions = DialOptions & ({ tls: DialTls, insecurePlaintext?: false } | { tls?: undefined, insecurePlaintext: true })

export interface Connection {
  socket: net.Socket
  /** "SHA256:<hex>" of the other end's certificate, already accepted by `trust`; undefined over plaintext. */
  peerFingerprint: string | undefined
}

/**
 * Opens a connection and, with `tls`, completes the TLS 1.3 handshake and the trust check before
 * returning, so the caller's first byte goes to the party it meant. UNAVAILABLE when refused,
 * unreachable or the handshake fails; UNTRUSTED when the certificate is not the expected one;
 * TIMEOUT past the deadline; the abort reason when aborted.
 */
export async function connect (host: string, port: number, opts: ConnectOptions): Promise<Connection> {
  return await open(host, port, opts)
}

/** Opens a connection and returns its socket (see connect). Without `tls` it is plain TCP, for the callers not yet switched. */
export async function dial (host: string, port: number, opts: DialOptions = {}): Promise<net.Socket> {
  return (await open(host, port, opts)).socket
}

async function open (host: string, port: number, opts: DialOptions): Promise<Connection> {
  if (opts.tls !== undefined && opts.insecurePlaintext === true) throw new TypeError('dial: tls and insecurePlaintext exclude each other')
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
  const deadline = AbortSignal.timeout(timeoutMs)
  const signal = opts.signal === undefined ? deadline : AbortSignal.any([opts.signal, deadline])
  signal.throwIfAborted()
  const onread = opts.onread === undefined ? {} : { onread: opts.onread }
  // over TLS the TLS socket makes its own TCP socket: only so do its (decrypted) reads take `onread`
  const secure = opts.tls === undefined ? undefined : tls.connect({ host, port, ...onread, ...clientTlsOptions(opts.tls.identity) })
  const raw = secure ?? net.connect({ host, port, ...onread })
  try {
    await once(raw, 'connect', { signal })
  } catch (err) {
    raw.destroy()
    if (deadline.aborted) throw new PeershareError('TIMEOUT', `no answer from ${host}:${port} within ${timeoutMs} ms`)
    if (opts.signal?.aborted === true) throw opts.signal.reason
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    throw new PeershareError('UNAVAILABLE', `cannot connect to ${host}:${port} (${code})`, { cause: err })
  }
  raw.setNoDelay(true)
  if (secure === undefined || opts.tls === undefined) return { socket: raw, peerFingerprint: undefined }

  const label = opts.tls.label ?? `${host}:${port}`
  const socket = secure
  // between the handshake and the caller's own listeners (a TOFU check writes a file): a reset there
  // must not be an unhandled 'error'; the caller then finds the socket closed
  const meanwhile = (): void => {}
  try {
    await once(socket, 'secureConnect', { signal })
    socket.on('error', meanwhile)
    const fingerprint = peerFingerprint(socket)
    await checkPeer(fingerprint, opts.tls.trust, label)
    signal.throwIfAborted() // a TOFU write may have outlasted the deadline
    socket.off('error', meanwhile)
    return { socket, peerFingerprint: fingerprint }
  } catch (err) {
    socket.destroy()
    if (err instanceof PeershareError) throw err
    if (deadline.aborted) throw new PeershareError('TIMEOUT', `TLS handshake with ${label} did not finish within ${timeoutMs} ms`)
    if (opts.signal?.aborted === true) throw opts.signal.reason
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    throw new PeershareError('UNAVAILABLE', `TLS handshake with ${label} failed (${code}): is a peershare TLS server listening there?`, { cause: err })
  }
}
