// Learning the ticket keys of the trackers this client is not connected to. Each tracker signs
// tickets with its own key, and a downloader gets its ticket from whichever tracker it is connected
// to: a sharer must trust every tracker's key, not only its own tracker's. So the client says hello
// to each tracker of the trackers file once (the same trust check as a real connection: pinned or
// trusted on first use) and keeps the key it names. One short connection per tracker, no session.

import { PeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import type { TrackerAddress } from '../common/tracker-info.ts'
import { MAX_UNAUTH_FRAME_BYTES, PROTOCOL_VERSION, decodeServerMessage, encodeMessage } from '../protocol/control.ts'
import { FrameDecoder, encodeFrame } from '../protocol/frame.ts'
import type { Identity } from '../security/identity.ts'
import { addressKey, trackerTrust } from '../security/tls.ts'
import type { KnownTrackers } from '../security/tls.ts'
import { connect } from '../security/transport.ts'
import { checkResult } from './results.ts'

const log = createLog('client:keys')

/** Connect, handshake and hello together: a tracker that takes longer is asked again later. */
export const PROBE_TIMEOUT_MS = 5_000

export interface ProbeOptions {
  identity: Identity
  known: KnownTrackers
  trackersFile: string
  clientId: string
  peerAddr: string
  signal?: AbortSignal
}

/** The ticket key (64 hex) `tracker` names in hello over a verified TLS connection; throws when it cannot be had. */
export async function probeTicketKey (tracker: TrackerAddress, opts: ProbeOptions): Promise<string> {
  const deadline = AbortSignal.timeout(PROBE_TIMEOUT_MS)
  const signal = opts.signal === undefined ? deadline : AbortSignal.any([opts.signal, deadline])
  const label = `tracker ${tracker.no} (${addressKey(tracker.host, tracker.port)})`
  const { socket } = await connect(tracker.host, tracker.port, {
    signal,
    timeoutMs: PROBE_TIMEOUT_MS,
    tls: { identity: opts.identity, trust: trackerTrust(tracker, opts.known, opts.trackersFile), label },
  })
  try {
    return await new Promise<string>((resolve, reject) => {
      const decoder = new FrameDecoder(MAX_UNAUTH_FRAME_BYTES)
      const fail = (err: unknown): void => reject(err)
      const onAbort = (): void => fail(new PeershareError('TIMEOUT', `${label} did not answer hello in time`))
      signal.addEventListener('abort', onAbort, { once: true })
      socket.once('close', () => fail(new PeershareError('UNAVAILABLE', `${label} closed the connection before answering hello`)))
      socket.on('error', () => {}) // followed by 'close'
      socket.on('data', (chunk: Buffer) => {
        try {
          for (const body of decoder.push(chunk)) {
            const msg = decodeServerMessage(body)
            if ('event' in msg || msg.id !== 1) continue
            if (!msg.ok) throw new PeershareError(msg.error.code, msg.error.message)
            checkResult('hello', msg.result)
            const key = (msg.result as { ticketKey?: string }).ticketKey
            if (key === undefined) throw new PeershareError('PROTOCOL', `${label} named no ticket key (is it running with --insecure-plaintext?)`)
            signal.removeEventListener('abort', onAbort)
            resolve(key)
            return
          }
        } catch (err) {
          fail(err)
        }
      })
      socket.write(encodeFrame(encodeMessage({ id: 1, op: 'hello', args: { version: PROTOCOL_VERSION, clientId: opts.clientId, peerAddr: opts.peerAddr } })))
    })
  } finally {
    socket.destroy()
  }
}

/**
 * Probes every tracker of `trackers` that `missing` says we have no key for, one at a time, and hands
 * each key found to `learn`. Failures are logged (an untrusted certificate at warn) and skipped.
 */
export async function discoverTicketKeys (trackers: readonly TrackerAddress[], missing: (address: string) => boolean,
  learn: (address: string, key: string) => Promise<void>, opts: ProbeOptions): Promise<void> {
  for (const tracker of trackers) {
    const address = addressKey(tracker.host, tracker.port)
    if (opts.signal?.aborted === true) return
    if (!missing(address)) continue
    try {
      await learn(address, await probeTicketKey(tracker, opts))
    } catch (err) {
      const e = err instanceof PeershareError ? err : new PeershareError('UNAVAILABLE', (err as Error).message)
      if (e.code === 'UNTRUSTED') log.warn('not trusting a tracker\'s ticket key: its certificate was refused', { address, error: e })
      else log.info('could not learn a tracker\'s ticket key (asked again later)', { address, code: e.code })
    }
  }
}
