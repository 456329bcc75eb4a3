// The tracker's network side: accepts connections (security/transport.ts) and runs one
// ControlConnection (connection.ts) per socket, with the state they share: presence holders, partial
// holders, the reply and ticket caches, the login throttle. Knows nothing of the ops' meaning.

import { primeDummyHash } from '../security/passwords.ts'
import type { Identity } from '../security/identity.ts'
import type { TicketSigner } from '../security/tickets.ts'
import { listen } from '../security/transport.ts'
import type { Store } from '../store/store.ts'
import { ControlConnection, HELLO_TIMEOUT_MS, MAX_IN_FLIGHT, MAX_QUEUED, MAX_UNREAD_REPLY_BYTES } from './connection.ts'
import type { Shared } from './connection.ts'
import { HolderRegistry } from './holders.ts'
import { LoginThrottle } from './login-throttle.ts'
import { ReplyCache } from './reply-cache.ts'
import { TicketCache } from './ticket-cache.ts'

export interface TrackerServerOptions {
  store: Store
  trackerNo: number
  host: string
  port: number
  /**
   * TLS 1.3 with the tracker's identity: each client's certificate fingerprint becomes its clientId
   * (sessions bind to it). Without it the server speaks plain TCP (--insecure-plaintext, old tests).
   */
  tls?: { identity: Identity }
  /** Signs download tickets for get_file (Ed25519); without it get_file hands out no ticket. */
  ticketSigner?: TicketSigner
  /** Lifetime of download tickets (tests shorten it to exercise renewal). */
  ticketTtlMs?: number
  helloTimeoutMs?: number
  maxInFlight?: number
  maxQueued?: number
  maxUnreadReplyBytes?: number
  now?: () => number
}

export interface TrackerServerStats {
  connections: number
  /** Requests running now, all connections together (those of connections already closed included). */
  inFlight: number
  /** Requests decoded and waiting for a slot, all connections together. */
  queued: number
  /** Reply bytes written to sockets and not yet taken by the kernel, all connections together. */
  unreadReplyBytes: number
}

export interface TrackerServer {
  readonly address: { host: string, port: number }
  /** What the connections hold right now (logs, tests). */
  stats (): TrackerServerStats
  /** Stops accepting, closes every connection, waits for the requests in flight. Idempotent. */
  close (): Promise<void>
}

export async function startTrackerServer (opts: TrackerServerOptions): Promise<TrackerServer> {
  const shared: Shared = {
    store: opts.store,
    trackerNo: opts.trackerNo,
    ticketSigner: opts.ticketSigner,
    ticketTtlMs: opts.ticketTtlMs,
    now: opts.now ?? Date.now,
    helloTimeoutMs: opts.helloTimeoutMs ?? HELLO_TIMEOUT_MS,
    maxInFlight: opts.maxInFlight ?? MAX_IN_FLIGHT,
    maxQueued: opts.maxQueued ?? MAX_QUEUED,
    maxUnreadReplyBytes: opts.maxUnreadReplyBytes ?? MAX_UNREAD_REPLY_BYTES,
    presenceHolders: new Map(),
    holders: new HolderRegistry(),
    replies: new ReplyCache(),
    tickets: new TicketCache(),
    loginThrottle: new LoginThrottle(),
    running: 0,
    allDone: undefined,
    connections: new Set(),
    stopping: false,
  }
  await primeDummyHash() // the first login of an unknown user must not cost two hashes
  let nextConnNo = 1
  const listener = await listen({
    host: opts.host,
    port: opts.port,
    // TLS on a thread of its own: this thread's requests are the tracker's bottleneck (tls-front.ts)
    ...(opts.tls === undefined ? { insecurePlaintext: true } : { tls: { ...opts.tls, offload: true } }),
    onConnection: (socket, peer) => new ControlConnection(socket, shared, nextConnNo++, peer),
  })
  let closing: Promise<void> | undefined
  return {
    address: listener.address,
    stats () {
      const out: TrackerServerStats = { connections: shared.connections.size, inFlight: shared.running, queued: 0, unreadReplyBytes: 0 }
      for (const c of shared.connections) {
        out.queued += c.queued
        out.unreadReplyBytes += c.unreadReplyBytes
      }
      return out
    },
    close () {
      closing ??= (async () => {
        shared.stopping = true // presence is not durable: closing sockets need not tell the store
        await listener.close()
        if (shared.running > 0) {
          shared.allDone = Promise.withResolvers()
          await shared.allDone.promise
        }
      })()
      return closing
    },
  }
}
