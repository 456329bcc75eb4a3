// A minimal control-protocol client for load generation: raw frames, request ids, one promise per
// request. Deliberately independent of src/client so the bench measures the tracker, not our client.

import type { Socket } from 'node:net'
import { FrameDecoder, encodeFrame } from '../src/protocol/frame.ts'
import { MAX_FRAME_BYTES } from '../src/protocol/control.ts'
import type { Identity } from '../src/security/identity.ts'
import { connect } from '../src/security/transport.ts'

export interface Reply { ok: boolean, result?: any, error?: { code: string, message: string } }

export class LoadConnection {
  readonly socket: Socket
  #decoder = new FrameDecoder(MAX_FRAME_BYTES)
  #nextId = 1
  #pending = new Map<number, (r: Reply) => void>()

  private constructor (socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      for (const body of this.#decoder.push(chunk)) {
        const msg = JSON.parse(body.toString('utf8'))
        if (typeof msg.id !== 'number') continue // pushed event
        const resolve = this.#pending.get(msg.id)
        this.#pending.delete(msg.id)
        resolve?.(msg)
      }
    })
    socket.on('close', () => {
      for (const resolve of this.#pending.values()) resolve({ ok: false, error: { code: 'CLOSED', message: 'connection closed' } })
      this.#pending.clear()
    })
  }

  /** Over TLS 1.3 with `identity` (the tracker's certificate is not checked: a bench), else plain TCP. */
  static async open (host: string, port: number, identity: Identity | undefined): Promise<LoadConnection> {
    const { socket } = identity === undefined
      ? await connect(host, port, { insecurePlaintext: true })
      : await connect(host, port, { tls: { identity, trust: { kind: 'any' } } })
    socket.on('error', () => {})
    return new LoadConnection(socket)
  }

  request (op: string, args: Record<string, unknown> = {}): Promise<Reply> {
    const id = this.#nextId++
    return new Promise((resolve) => {
      this.#pending.set(id, resolve)
      this.socket.write(encodeFrame(Buffer.from(JSON.stringify({ id, op, args }))))
    })
  }

  close (): void {
    this.socket.destroy()
  }
}
