// The client's security set-up (issue 5): its identity (key + certificate in the data dir, whose
// fingerprint is its clientId), how the tracker link trusts trackers (pins, known_trackers), which
// ticket keys the peer server accepts (ticket-keys.ts, fed by verified hellos and key-discovery.ts),
// and how downloads dial holders (TLS pinned to the certificate the tracker named). core.ts wires
// these into the link, the peer server and the downloads; --insecure-plaintext turns all of it off.

import { access } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { PeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import type { TrackerAddress } from '../common/tracker-info.ts'
import type { PeerDial } from '../peer/download.ts'
import type { PeerServerOptions } from '../peer/server.ts'
import { CERT_FILE, loadOrCreateIdentity } from '../security/identity.ts'
import type { Identity } from '../security/identity.ts'
import { KnownTrackers, addressKey, knownTrackersPath } from '../security/tls.ts'
import { connect } from '../security/transport.ts'
import { discoverTicketKeys } from './key-discovery.ts'
import { TICKET_KEYS_FILE, TicketKeyBook } from './ticket-keys.ts'
import type { LinkSecurity, TrackerLink } from './tracker-link.ts'

const log = createLog('client:security')

export interface ClientSecurity {
  identity: Identity
  /** The hex of the certificate fingerprint: the tracker knows the client by it. */
  clientId: string
  /** For the tracker link. */
  link: LinkSecurity
  /** For the peer server: TLS and tickets; undefined with --insecure-plaintext. */
  peerServer: PeerServerOptions['security']
  /** For downloads: TLS pinned to each holder; undefined with --insecure-plaintext (plain TCP). */
  dial: PeerDial | undefined
  /** Learns ticket keys from the link's verified connections, and asks the other trackers for theirs. */
  attach (link: TrackerLink, trackers: readonly TrackerAddress[], peerAddr: string, signal: AbortSignal): void
}

export async function openClientSecurity (root: string, trackersFile: string, insecurePlaintext: boolean): Promise<ClientSecurity> {
  // the identity exists in plaintext mode too: switching back keeps the clientId the tracker knows
  const identity = await loadOrCreateIdentity(root)
  const clientId = identity.fingerprint.slice('SHA256:'.length)
  if (insecurePlaintext) {
    return { identity, clientId, link: { insecurePlaintext: true }, peerServer: undefined, dial: undefined, attach: () => {} }
  }
  const known = await KnownTrackers.open(knownTrackersPath(root))
  const keys = await TicketKeyBook.open(join(root, TICKET_KEYS_FILE))
  const file = resolve(trackersFile)
  let discovering = false
  return {
    identity,
    clientId,
    link: { identity, known, trackersFile: file },
    peerServer: { identity, trustedKeys: () => keys.trusted() },
    dial: peerDial(identity),
    attach (link, trackers, peerAddr, signal) {
      const probe = { identity, known, trackersFile: file, clientId, peerAddr, signal }
      link.on('connected', (info) => {
        // ticketKey is only set for a tracker whose certificate passed the trust check (tracker-link.ts)
        if (info.ticketKey !== undefined) {
          keys.learn(info.address, info.ticketKey).catch((err: unknown) => log.warn('could not save a tracker ticket key', { error: err as Error }))
        }
        // the other trackers' keys too: a downloader's ticket comes from whichever tracker it uses
        if (discovering || trackers.every((t) => keys.has(addressKey(t.host, t.port)))) return
        discovering = true
        void discoverTicketKeys(trackers, (a) => !keys.has(a), (a, k) => keys.learn(a, k), probe)
          .finally(() => { discovering = false })
      })
    },
  }
}

/** Dials a holder over TLS, accepting only the certificate the tracker named for it. */
function peerDial (identity: Identity): PeerDial {
  return async (host, port, opts) => {
    const label = `peer ${host}:${port}`
    if (opts.fingerprint === undefined) throw new PeershareError('UNTRUSTED', `the tracker named no certificate for ${label}: not connecting`)
    const trust = { kind: 'pin' as const, fingerprint: opts.fingerprint, source: 'the tracker' }
    return (await connect(host, port, {
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      ...(opts.onread === undefined ? {} : { onread: opts.onread }),
      tls: { identity, trust, label },
    })).socket
  }
}

/**
 * "SHA256:<hex>" of the identity kept in `dir` (a tracker's or a client's data dir), for
 * `peershare id`. Never creates one: NOT_FOUND when there is none.
 */
export async function identityFingerprint (dir: string): Promise<string> {
  try {
    await access(join(dir, CERT_FILE))
  } catch {
    throw new PeershareError('NOT_FOUND', `no identity in ${dir} (no ${CERT_FILE}): pass the data dir of a tracker or client with --data-dir`)
  }
  return (await loadOrCreateIdentity(dir)).fingerprint
}
