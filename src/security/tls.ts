// TLS 1.3 option builders and the trust decisions about the other end's certificate: pinning (the
// trackers file, or a fingerprint the tracker gave us) and trust on first use (known_trackers, like
// SSH's known_hosts). Sockets are opened by transport.ts; this module only says yes or no.

import type tls from 'node:tls'
import { join } from 'node:path'
import { PeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import type { TrackerAddress } from '../common/tracker-info.ts'
import { fingerprintOf, parseFingerprint, shortFingerprint } from './identity.ts'
import type { Identity } from './identity.ts'
import { readSmallFile, replaceFile } from './key-files.ts'

const log = createLog('security:tls')

export const TLS_VERSION = 'TLSv1.3'
/** A client that opens TCP and never completes the handshake is dropped after this long. */
export const HANDSHAKE_TIMEOUT_MS = 10_000
export const KNOWN_TRACKERS_FILE = 'known_trackers'

/**
 * Server side: TLS 1.3 only, our certificate, and the client's certificate requested so its
 * fingerprint identifies it. rejectUnauthorized is false because every certificate is self-signed:
 * the identity is checked by fingerprint (sessions, tickets), never by a CA chain.
 */
export function serverTlsOptions (identity: Identity): tls.TlsOptions {
  return {
    key: identity.keyPem,
    cert: identity.certPem,
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    requestCert: true,
    rejectUnauthorized: false,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  }
}

/**
 * Client side: TLS 1.3 only, our certificate (servers identify us by it). rejectUnauthorized is
 * false, so the caller MUST check the server's fingerprint (checkPeer) before sending a byte.
 */
export function clientTlsOptions (identity: Identity): tls.ConnectionOptions {
  return {
    key: identity.keyPem,
    cert: identity.certPem,
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    rejectUnauthorized: false,
  }
}

/** The fingerprint of the certificate the other end presented, or undefined if it presented none. */
export function peerFingerprint (socket: tls.TLSSocket): string | undefined {
  const cert = socket.getPeerX509Certificate()
  return cert === undefined ? undefined : fingerprintOf(cert)
}

/** How the other end's certificate is judged when we dial. */
export type PeerTrust =
  /** Exactly this fingerprint (from the trackers file, or named by a tracker); `source` is for messages. */
  | { kind: 'pin', fingerprint: string, source?: string }
  /** First use stores the fingerprint under `address`; a different one later is refused. */
  | { kind: 'tofu', known: KnownTrackers, address: string }
  /** Any certificate: the caller checks the returned fingerprint itself before using the connection. */
  | { kind: 'any' }

/** How a client trusts one tracker: its pinned fingerprint when the trackers file has one, else TOFU. */
export function trackerTrust (tracker: TrackerAddress, known: KnownTrackers, fileName = 'the trackers file'): PeerTrust {
  if (tracker.fingerprint !== undefined) return { kind: 'pin', fingerprint: tracker.fingerprint, source: fileName }
  return { kind: 'tofu', known, address: addressKey(tracker.host, tracker.port) }
}

/** Resolves when `fingerprint` is acceptable under `trust`; UNTRUSTED otherwise. `label` names the other end. */
export async function checkPeer (fingerprint: string | undefined, trust: PeerTrust, label: string): Promise<void> {
  if (fingerprint === undefined) throw new PeershareError('UNTRUSTED', `${label} presented no certificate`)
  if (trust.kind === 'any') return
  if (trust.kind === 'pin') {
    const pinned = parseFingerprint(trust.fingerprint)
    if (fingerprint !== pinned) {
      throw new PeershareError('UNTRUSTED',
        `${label} presented certificate ${fingerprint}, but ${trust.source ?? 'the pin'} expects ${pinned}: refusing it ` +
        '(if the other end got a new identity on purpose, update the pinned fingerprint)')
    }
    return
  }
  await trust.known.check(trust.address, fingerprint, label)
}

/** "host:port", with brackets around IPv6 hosts: the key of a known tracker. */
export function addressKey (host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

export function knownTrackersPath (dataDir: string): string {
  return join(dataDir, KNOWN_TRACKERS_FILE)
}

const HEADER = '# Trackers this client has trusted on first use: "HOST:PORT SHA256:<fingerprint>" per line.\n' +
  '# Remove a line to accept a tracker\'s new certificate deliberately; pin fingerprints in the trackers file instead if you know them.\n'
const LINE_RE = /^(\S+:\d{1,5})\s+(SHA256:[0-9A-Fa-f]{64})$/
/** A client talks to a handful of trackers; the cap keeps a damaged file from filling memory. */
const MAX_KNOWN_TRACKERS = 10_000

/**
 * The client's known_trackers file: address → fingerprint, one line each, so that accepting a
 * changed certificate is deleting one line. Writes are serialised and atomic (temp + rename).
 */
export class KnownTrackers {
  readonly path: string
  #entries: Map<string, string>
  #writing: Promise<void> = Promise.resolve()

  private constructor (path: string, entries: Map<string, string>) {
    this.path = path
    this.#entries = entries
  }

  /** Reads the file (a missing file is an empty list); BAD_REQUEST naming the line if it is damaged. */
  static async open (path: string): Promise<KnownTrackers> {
    const text = await readSmallFile(path)
    const entries = new Map<string, string>()
    if (text !== undefined) {
      const lines = text.split(/\r?\n/)
      for (let i = 0; i < lines.length; i++) {
        const content = lines[i]!.replace(/#.*$/, '').trim()
        if (content === '') continue
        const m = LINE_RE.exec(content)
        if (m === null) {
          throw new PeershareError('BAD_REQUEST', `${path}, line ${i + 1}: expected "HOST:PORT SHA256:<64 hex>", got '${content.slice(0, 80)}' (fix or remove the line)`)
        }
        if (entries.size >= MAX_KNOWN_TRACKERS) throw new PeershareError('BAD_REQUEST', `${path} lists more than ${MAX_KNOWN_TRACKERS} trackers`)
        entries.set(m[1]!, parseFingerprint(m[2]!))
      }
    }
    return new KnownTrackers(path, entries)
  }

  get (address: string): string | undefined {
    return this.#entries.get(address)
  }

  /**
   * Trust on first use: an unknown address is stored (durably, before the caller sends a byte) and
   * accepted; a known one must present the same fingerprint, else UNTRUSTED saying how to accept it.
   */
  async check (address: string, fingerprint: string, label = `tracker ${address}`): Promise<'known' | 'first-use'> {
    const known = this.#entries.get(address)
    if (known === fingerprint) {
      await this.#writing // a first use still being saved by a concurrent call is durable before we go on
      return this.#entries.get(address) === fingerprint ? 'known' : await this.check(address, fingerprint, label)
    }
    if (known !== undefined) {
      log.warn('tracker certificate changed', { address, known: shortFingerprint(known), presented: shortFingerprint(fingerprint) })
      throw new PeershareError('UNTRUSTED',
        `${label} presented certificate ${fingerprint}, but ${known} was trusted for ${address} before: refusing it. ` +
        'Someone may be impersonating the tracker. If its identity changed on purpose (a new data directory), ' +
        `remove the line for ${address} from ${this.path}, or pin the new fingerprint in the trackers file ("${address} ${fingerprint}")`)
    }
    this.#entries.set(address, fingerprint)
    try {
      await this.#save()
    } catch (err) {
      this.#entries.delete(address) // not stored, so not trusted: the next attempt tries again
      throw err
    }
    log.warn('trusting tracker certificate on first use', { address, fingerprint: shortFingerprint(fingerprint), file: this.path })
    return 'first-use'
  }

  /** Forgets an address (the next connection trusts on first use again). */
  async forget (address: string): Promise<boolean> {
    if (!this.#entries.delete(address)) return false
    await this.#save()
    return true
  }

  #save (): Promise<void> {
    const text = HEADER + [...this.#entries].map(([a, f]) => `${a} ${f}\n`).join('')
    const next = this.#writing.then(() => replaceFile(this.path, text))
    this.#writing = next.catch(() => {}) // a failed write is reported to its caller; the next one still runs
    return next
  }
}
