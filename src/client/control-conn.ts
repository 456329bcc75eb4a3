// One control connection to a tracker, for tracker-link.ts: frames out, frames in, answers matched to
// pending requests by id (each checked by results.ts), pushed events handed on; the socket's close
// fails whatever still waits. Which tracker, failover and sessions are tracker-link.ts's business.

import type { Socket } from 'node:net'
import { PeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import { MAX_FRAME_BYTES, decodeServerMessage, encodeMessage } from '../protocol/control.ts'
import type { Op } from '../protocol/control.ts'
import { FrameDecoder, encodeFrame } from '../protocol/frame.ts'
import { checkResult } from './results.ts'
import type { ConnectedInfo } from './tracker-link.ts'

const log = createLog('client:link')

/** The error a request gets when its signal aborts: the reason, or TIMEOUT for a timeout. */
export function abortError (signal: AbortSignal): unknown {
  const reason: unknown = signal.reason
  if (reason instanceof PeershareError) return reason
  if (reason instanceof DOMException && reason.name === 'TimeoutError') return new PeershareError('TIMEOUT', 'the tracker did not answer in time')
  return reason
}

interface Pending {
  op: Op
  resolve: (result: unknown) => void
  reject: (err: unknown) => void
}

/** One connected socket: frames out, frames in, answers matched to pending requests by id. */
export class Conn {
  readonly #socket: Socket
  readonly #decoder = new FrameDecoder(MAX_FRAME_BYTES)
  readonly #pending = new Map<number, Pending>()
  readonly #onEvent: (name: string, data: unknown) => void
  readonly whenClosed: Promise<void>
  closed = false
  ready = false
  info!: ConnectedInfo
  /** When the tracker last sent anything (the heartbeat pings only a silent connection). */
  lastHeardAt = Date.now()

  constructor (socket: Socket, onEvent: (name: string, data: unknown) => void) {
    this.#socket = socket
    this.#onEvent = onEvent
    socket.setKeepAlive(true, 10_000)
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    socket.on('error', (err) => log.debug('tracker socket error', { error: err }))
    this.whenClosed = new Promise((resolve) => {
      socket.once('close', () => {
        this.closed = true
        const lost = new PeershareError('UNAVAILABLE', 'lost the connection to the tracker before its answer: check the result and retry')
        for (const p of this.#pending.values()) p.reject(lost)
        this.#pending.clear()
        resolve()
      })
    })
  }

  markReady (info: ConnectedInfo): void {
    this.info = info
    this.ready = true
  }

  call (op: Op, args: unknown, id: number, signal: AbortSignal): Promise<unknown> {
    if (this.closed) return Promise.reject(new PeershareError('UNAVAILABLE', 'the tracker connection is closed'))
    if (signal.aborted) return Promise.reject(abortError(signal))
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.#pending.delete(id)
        reject(abortError(signal))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      const done = (): void => signal.removeEventListener('abort', onAbort)
      this.#pending.set(id, {
        op,
        resolve: (r) => { done(); resolve(r) },
        reject: (e) => { done(); reject(e) },
      })
      this.#socket.write(encodeFrame(encodeMessage({ id, op, args } as Parameters<typeof encodeMessage>[0])))
    })
  }

  destroy (): void {
    this.#socket.destroy()
  }

  #onData (chunk: Buffer): void {
    this.lastHeardAt = Date.now()
    try {
      for (const body of this.#decoder.push(chunk)) {
        const msg = decodeServerMessage(body)
        if ('event' in msg) {
          this.#onEvent(msg.event, msg.data)
          continue
        }
        const p = this.#pending.get(msg.id)
        if (p === undefined) {
          log.debug('answer to a request no longer waiting', { id: msg.id })
          continue
        }
        this.#pending.delete(msg.id)
        if (msg.ok) {
          try {
            checkResult(p.op, msg.result)
          } catch (err) {
            p.reject(err)
            throw err
          }
          p.resolve(msg.result)
        } else {
          p.reject(new PeershareError(msg.error.code, msg.error.message))
        }
      }
    } catch (err) {
      // a tracker that breaks the protocol gets dropped; the run loop moves to the next one
      log.warn('tracker broke the control protocol', { error: err as Error })
      this.#socket.destroy()
    }
  }
}
