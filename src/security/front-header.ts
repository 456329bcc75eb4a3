// The first bytes the TLS front (tls-front-worker.ts) writes on every connection it hands to the
// main thread: who is at the other end of the TLS connection (certificate fingerprint, address).
// The hand-over socket is a Unix socket in the abstract namespace, which any local process can
// reach, so a header opens with the process's random secret and the main thread believes the rest
// only when the secret matches. Pure: no sockets here.

import { timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'

export const FRONT_SECRET_BYTES = 32
/** The JSON part is a fingerprint and an address: far below this. */
const MAX_INFO_BYTES = 512
const LENGTH_BYTES = 2
const FINGERPRINT = /^SHA256:[0-9a-f]{64}$/

/** The TLS client as the front saw it. */
export interface FrontPeer {
  /** "SHA256:<hex>" of the certificate it presented (the front refuses clients without one). */
  fingerprint: string
  remoteAddress: string
  remotePort: number
}

/** secret (32 bytes) | length of the JSON (uint16 BE) | JSON {fingerprint, remoteAddress, remotePort} */
export function encodeFrontHeader (secret: Uint8Array, peer: FrontPeer): Buffer {
  const info = Buffer.from(JSON.stringify(peer))
  if (info.length > MAX_INFO_BYTES) throw new RangeError('front header: peer description too long')
  const head = Buffer.alloc(FRONT_SECRET_BYTES + LENGTH_BYTES)
  head.set(secret)
  head.writeUInt16BE(info.length, FRONT_SECRET_BYTES)
  return Buffer.concat([head, info])
}

/** Reads one header from the start of a hand-over connection; throws on anything else. */
export class FrontHeaderReader {
  readonly #secret: Uint8Array
  #buffered: Buffer = Buffer.alloc(0)

  constructor (secret: Uint8Array) {
    if (secret.length !== FRONT_SECRET_BYTES) throw new RangeError(`front secret must be ${FRONT_SECRET_BYTES} bytes`)
    this.#secret = secret
  }

  /** The peer and the bytes after the header once it is complete; undefined while more is needed. */
  push (chunk: Buffer): { peer: FrontPeer, rest: Buffer } | undefined {
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk])
    const b = this.#buffered
    // the secret first, compared in constant time, before a byte of the rest is looked at
    if (b.length < FRONT_SECRET_BYTES) return undefined
    if (!timingSafeEqual(b.subarray(0, FRONT_SECRET_BYTES), this.#secret)) throw new Error('front header: wrong secret')
    if (b.length < FRONT_SECRET_BYTES + LENGTH_BYTES) return undefined
    const length = b.readUInt16BE(FRONT_SECRET_BYTES)
    if (length > MAX_INFO_BYTES) throw new Error(`front header: ${length} bytes of peer description`)
    const end = FRONT_SECRET_BYTES + LENGTH_BYTES + length
    if (b.length < end) return undefined
    return { peer: parsePeer(b.subarray(FRONT_SECRET_BYTES + LENGTH_BYTES, end)), rest: b.subarray(end) }
  }
}

function parsePeer (bytes: Buffer): FrontPeer {
  const v: unknown = JSON.parse(bytes.toString('utf8'))
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>
  const { fingerprint, remoteAddress, remotePort } = o
  if (typeof fingerprint !== 'string' || !FINGERPRINT.test(fingerprint)) throw new Error('front header: bad fingerprint')
  if (typeof remoteAddress !== 'string' || isIP(remoteAddress) === 0) throw new Error('front header: bad address')
  if (typeof remotePort !== 'number' || !Number.isInteger(remotePort) || remotePort < 0 || remotePort > 65535) throw new Error('front header: bad port')
  return { fingerprint, remoteAddress, remotePort }
}
