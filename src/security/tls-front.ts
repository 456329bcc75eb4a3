// A TLS listener whose TLS runs on a thread of its own (tls-front-worker.ts), for a server whose one
// JS thread is its bottleneck: the tracker. Node's TLS costs that thread about 11 µs per request and
// reply (SSL_read/SSL_write, the stream machinery and an asynchronous write completion per reply,
// measured with --cpu-prof under bench:tracker), 26–29% of the tracker's requests/s. The front
// does that work on the other core and hands each connection over, decrypted, through a Unix socket
// in the abstract namespace; the handlers get a plain socket and the peer's certificate fingerprint,
// as they do from an in-process TLS listener (transport.ts). What the hand-over costs the main
// thread is less than a loopback TCP socket's.
//
// Trust: the front refuses clients without a certificate; the header on each hand-over connection
// carries the process's random secret (front-header.ts), so a local process that finds the socket
// cannot pose as the front. Linux only (abstract sockets): elsewhere transport.ts keeps TLS in-process.

import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { Worker } from 'node:worker_threads'
import { createLog } from '../common/log.ts'
import { FRONT_SECRET_BYTES, FrontHeaderReader } from './front-header.ts'
import type { FrontPeer } from './front-header.ts'
import type { FromFront, FrontInit } from './tls-front-worker.ts'
import type { Identity } from './identity.ts'
import { serverTlsOptions } from './tls.ts'

const log = createLog('security:tls-front')

/** The front's connections get TCP keepalive at this interval: dead clients are found on the real socket. */
export const FRONT_KEEPALIVE_MS = 30_000
/** A hand-over connection must say who it carries within this time (the front sends it at once), or it is dropped. */
const HEADER_TIMEOUT_MS = 1_000
/**
 * Hand-over connections still without their header, at most. The abstract socket can be reached by any
 * local process: past this, new ones are dropped at once, so nobody can pile up descriptors here.
 */
const MAX_PENDING_HANDOVERS = 1024
/** Refused hand-overs are logged at most once per this interval (with a count), so they cannot flood the log. */
const REFUSAL_LOG_INTERVAL_MS = 10_000
/**
 * Hand-overs waiting for the main thread to accept them. A Unix socket refuses a connect outright
 * when its queue is full (TCP would retry), so it is as deep as the kernel allows (somaxconn caps it).
 */
const HANDOVER_BACKLOG = 4096
/** After the thread died unexpectedly: wait this long, then start another on the same port (doubling, up to the max). */
const RESTART_DELAY_MS = 1_000
const MAX_RESTART_DELAY_MS = 30_000

export const frontAvailable = process.platform === 'linux'

export interface FrontOptions {
  host: string
  port: number
  identity: Identity
  /** Each handed-over connection, with what the front saw of its client. */
  onConnection: (socket: net.Socket, peer: FrontPeer) => void
  /** Tests: how long a hand-over may take to send its header (default HEADER_TIMEOUT_MS). */
  headerTimeoutMs?: number
}

export interface Front {
  readonly port: number
  /** The hand-over socket's name (tests: a connection there without the secret must get nowhere). */
  readonly handoverPath: string
  close (): Promise<void>
}

/**
 * Starts the hand-over socket and the front's thread, and resolves once the front listens on
 * host:port. Rejects with the listen error's code (EADDRINUSE...) as a NodeJS.ErrnoException.
 */
export async function startFront (opts: FrontOptions): Promise<Front> {
  const secret = randomBytes(FRONT_SECRET_BYTES)
  const handoverPath = `\0peershare-front-${process.pid}-${randomBytes(8).toString('hex')}`
  const sockets = new Set<net.Socket>()
  const refusals = new RefusalLog()
  const headerTimeoutMs = opts.headerTimeoutMs ?? HEADER_TIMEOUT_MS
  let pending = 0 // hand-overs still without their header

  /**
   * Reads the header in paused mode ('readable', read()), then hands the socket on with the bytes that
   * came after the header put back first. The socket never flowed, so it is handed on as a fresh one is:
   * bytes wait until the handler reads them ('data' listener, resume() or read()), whenever it does.
   */
  const receiveHeader = (socket: net.Socket): void => {
    const reader = new FrontHeaderReader(secret)
    pending++
    const timer = setTimeout(() => {
      refusals.add('hand-over connection without a header in time')
      socket.destroy()
    }, headerTimeoutMs)
    timer.unref()
    const done = (): void => {
      pending--
      clearTimeout(timer)
      socket.off('close', done)
      socket.off('readable', onReadable)
    }
    const onReadable = (): void => {
      for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
        let got: ReturnType<FrontHeaderReader['push']>
        try {
          got = reader.push(chunk)
        } catch (err) {
          // not our front: nothing of it reaches a handler
          refusals.add(`hand-over refused: ${(err as Error).message}`)
          socket.destroy()
          return
        }
        if (got === undefined) continue
        done()
        if (got.rest.length > 0) socket.unshift(got.rest)
        opts.onConnection(socket, got.peer)
        return
      }
    }
    socket.once('close', done)
    socket.on('readable', onReadable)
  }

  const handover = net.createServer((socket) => {
    socket.on('error', () => {}) // the front closed it; 'close' follows
    if (pending >= MAX_PENDING_HANDOVERS) {
      refusals.add('too many hand-over connections without a header')
      socket.destroy()
      return
    }
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    receiveHeader(socket)
  })
  handover.on('error', (err) => log.warn('hand-over socket error', { err }))
  await new Promise<void>((resolve, reject) => {
    handover.once('error', reject)
    handover.listen({ path: handoverPath, backlog: HANDOVER_BACKLOG }, () => { handover.off('error', reject); resolve() })
  })

  let stopping = false
  let worker: Worker
  let restartTimer: NodeJS.Timeout | undefined
  let restartDelay = RESTART_DELAY_MS
  const init: FrontInit = {
    host: opts.host,
    port: opts.port,
    tlsOptions: serverTlsOptions(opts.identity),
    handoverPath,
    secret,
    keepAliveMs: FRONT_KEEPALIVE_MS,
    debug: log.enabled('debug'),
    info: log.enabled('info'),
  }
  const start = (port: number): Promise<number> => new Promise((resolve, reject) => {
    worker = new Worker(new URL('./tls-front-worker.ts', import.meta.url), { workerData: { ...init, port } satisfies FrontInit })
    let listening = false
    let failure: Error | undefined
    worker.on('message', (msg: FromFront) => {
      if (msg.t === 'listening') { listening = true; restartDelay = RESTART_DELAY_MS; resolve(msg.port); return }
      if (msg.t === 'listen-error') { reject(Object.assign(new Error(msg.message), { code: msg.code })); void worker.terminate(); return }
      log[msg.level](msg.msg, msg.fields)
    })
    worker.on('error', (err) => {
      failure = err
      if (listening && !stopping) log.error('the TLS front thread failed', { err })
    })
    worker.on('exit', () => {
      if (!listening) { reject(failure ?? new Error('the TLS front thread ended before it listened')); return }
      if (!stopping) restart(port)
    })
  })
  // its connections are gone with the thread; clients reconnect to a new front on the same port
  const restart = (port: number): void => {
    log.error('the TLS front thread stopped: starting another', { port, inMs: restartDelay })
    restartTimer = setTimeout(() => {
      start(port).catch((err: unknown) => {
        if (stopping) return
        log.error('cannot restart the TLS front', { port, err })
        restartDelay = Math.min(restartDelay * 2, MAX_RESTART_DELAY_MS)
        restart(port)
      })
    }, restartDelay)
  }
  let port: number
  try {
    port = await start(opts.port) // the bound port: a restart binds this one again, also when 0 was asked for
  } catch (err) {
    handover.close()
    throw err
  }
  let closing: Promise<void> | undefined
  return {
    port,
    handoverPath,
    close () {
      closing ??= (async () => {
        stopping = true
        clearTimeout(restartTimer)
        await worker.terminate() // closes the listener and every TLS socket with the thread
        for (const s of sockets) s.destroy()
        await new Promise<void>((resolve) => handover.close(() => resolve()))
      })()
      return closing
    },
  }
}

/** Counts refused hand-overs and logs them at most once per REFUSAL_LOG_INTERVAL_MS. */
class RefusalLog {
  #count = 0
  #last = 0
  #reason = ''

  add (reason: string): void {
    this.#count++
    this.#reason = reason
    const now = performance.now()
    if (this.#last !== 0 && now - this.#last < REFUSAL_LOG_INTERVAL_MS) return
    log.warn('refused hand-over connections (not from our TLS front)', { count: this.#count, last: this.#reason })
    this.#count = 0
    this.#last = now
  }
}
