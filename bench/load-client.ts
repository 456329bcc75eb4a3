// A minimal control-protocol client for load generation: raw frames, request ids, one promise per
// request. Deliberately independent of src/client so the bench measures the tracker, not our client.

import type { Socket } from 'node:net'
import { FrameDecoder, encodeFrame } from '../src/protocol/frame.ts'
import { MAX_FRAME_BYTES } from '../src/protocol/control.ts'
import type { Identity } from '../src/security/identity.ts'
import { connect } from '../src/security/transport.ts'

export interface Reply { ok: boolean, result?: any, error?: { code: string, message: string } }

// What every successful tracker reply starts with (server.ts / encodeResultFrame): `{"id":<n>,"ok":true`
const ID_PREFIX = Buffer.from('{"id":')
const OK_TRUE = Buffer.from(',"ok":true')

/** The id of a successful reply read from its first bytes, or undefined (then the reply is parsed). */
function okReplyId (body: Buffer): number | undefined {
  if (body.length < 16 || body.compare(ID_PREFIX, 0, ID_PREFIX.length, 0, ID_PREFIX.length) !== 0) return undefined
  let id = 0
  let i = ID_PREFIX.length
  for (; i < body.length && i < ID_PREFIX.length + 10; i++) {
    const c = body[i]!
    if (c < 0x30 || c > 0x39) break
    id = id * 10 + c - 0x30
  }
  if (i === ID_PREFIX.length || body.compare(OK_TRUE, 0, OK_TRUE.length, i, i + OK_TRUE.length) !== 0) return undefined
  return id
}

export class LoadConnection {
  readonly socket: Socket
  /**
   * Resolve successful replies with `{ ok: true }` only, read from their first bytes: parsing
   * every list_files / list_groups reply in full made the load generator, not the tracker, the
   * bottleneck on a two-core machine. Errors are still parsed.
   */
  skipResults = false
  #decoder = new FrameDecoder(MAX_FRAME_BYTES)
  #nextId = 1
  /**
   * Waiting requests by id - #firstId: ids are sequential and replies come nearly in order, so this
   * stays a tiny array. A Map here, added to and deleted from at every request, was rehashed into a
   * new table every few requests: a third of the load generator's old-generation garbage, and its
   * major GCs' pauses were timed as the tracker's latency.
   */
  #waiting: Array<((r: Reply) => void) | undefined> = []
  #firstId = 1

  private constructor (socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      for (const body of this.#decoder.push(chunk)) {
        const okId = this.skipResults ? okReplyId(body) : undefined
        if (okId !== undefined) {
          this.#take(okId)?.({ ok: true })
          continue
        }
        const msg = JSON.parse(body.toString('utf8'))
        if (typeof msg.id !== 'number') continue // pushed event
        this.#take(msg.id)?.(msg)
      }
    })
    socket.on('close', () => {
      const waiting = this.#waiting
      this.#waiting = []
      for (const resolve of waiting) resolve?.({ ok: false, error: { code: 'CLOSED', message: 'connection closed' } })
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
      this.#waiting[id - this.#firstId] = resolve
      this.socket.write(encodeFrame(Buffer.from(JSON.stringify({ id, op, args }))))
    })
  }

  #take (id: number): ((r: Reply) => void) | undefined {
    const i = id - this.#firstId
    if (!Number.isInteger(i) || i < 0 || i >= this.#waiting.length) return undefined
    const resolve = this.#waiting[i]
    this.#waiting[i] = undefined
    while (this.#waiting.length > 0 && this.#waiting[0] === undefined) {
      this.#waiting.shift()
      this.#firstId++
    }
    return resolve
  }

  close (): void {
    this.socket.destroy()
  }
}
