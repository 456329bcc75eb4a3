// The peer server over TLS with tickets (issue 5): a client with a valid certificate but no valid
// ticket gets no piece - no ticket, expired, another file, another certificate, a flipped byte, an
// unknown key - and is closed; plain TCP gets a closed connection; garbage after the handshake drops
// only that connection; a renewed ticket keeps a connection past the old one's expiry.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import { PIECE_BYTES } from '../../src/protocol/file-meta.ts'
import { BLOCK_BYTES, encodeHandshake, encodeRequest } from '../../src/protocol/wire.ts'
import { PeerConnection } from '../../src/peer/connection.ts'
import { startPeerServer } from '../../src/peer/server.ts'
import type { PeerServer } from '../../src/peer/server.ts'
import type { Identity } from '../../src/security/identity.ts'
import { TICKET_CLOCK_SKEW_MS, generateTicketSigner, signTicket, trustedTicketKeys } from '../../src/security/tickets.ts'
import type { TicketSigner } from '../../src/security/tickets.ts'
import { connect } from '../../src/security/transport.ts'
import { testIdentity } from '../helpers/identity.ts'
import { makeFile, shareFile } from '../helpers/peer.ts'
import type { TestFile } from '../helpers/peer.ts'
import { defer } from '../helpers/cleanup.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { waitFor } from '../helpers/wait.ts'

interface Setup { server: PeerServer, serverId: Identity, tracker: TicketSigner, file: TestFile, other: TestFile }

async function setup (t: TestContext): Promise<Setup> {
  const dir = await tmpDir(t)
  const file = await makeFile(dir, 'secret.bin', 3 * PIECE_BYTES, 1)
  const other = await makeFile(dir, 'other.bin', PIECE_BYTES, 2)
  const serverId = await testIdentity()
  const tracker = generateTicketSigner()
  const sources = new Map([[file.id, await shareFile(t, file)], [other.id, await shareFile(t, other)]])
  const server = await startPeerServer({
    host: '127.0.0.1',
    port: 0,
    findSource: (id) => sources.get(id),
    security: { identity: serverId, trustedKeys: () => trustedTicketKeys([tracker.publicKey]) },
  })
  defer(t, () => server.close())
  return { server, serverId, tracker, file, other }
}

interface Client {
  conn: PeerConnection
  bitfields: number
  pieces: number
  closed: boolean
}

/** A TLS wire client presenting `identity`, pinned to the server's certificate. */
async function dialPeer (t: TestContext, s: Setup, identity: Identity): Promise<Client> {
  const { socket } = await connect('127.0.0.1', s.server.address.port, {
    tls: { identity, trust: { kind: 'pin', fingerprint: s.serverId.fingerprint } },
  })
  const conn = new PeerConnection(socket)
  t.after(() => conn.close())
  const c: Client = { conn, bitfields: 0, pieces: 0, closed: false }
  conn.allowBlocks()
  conn.on('bitfield', () => { c.bitfields++ })
  conn.on('piece', () => { c.pieces++ })
  conn.on('close', () => { c.closed = true })
  return c
}

function ticketFor (s: Setup, requester: Identity, over: { fileId?: string, expiresAt?: number, signer?: TicketSigner } = {}): Buffer {
  return signTicket({
    requester: requester.fingerprint,
    fileId: over.fileId ?? s.file.id,
    groupId: 'g1',
    expiresAt: over.expiresAt ?? Date.now() + 60_000,
  }, over.signer ?? s.tracker)
}

/** Handshake with `ticket`, then ask for a block right away (a peer that does not wait for an answer). */
function ask (c: Client, fileId: string, ticket: Buffer): void {
  c.conn.send(encodeHandshake(fileId, ticket))
  c.conn.send(encodeRequest(0, 0, BLOCK_BYTES))
}

test('a valid ticket for this certificate and file: served', async (t) => {
  const s = await setup(t)
  const me = await testIdentity()
  const c = await dialPeer(t, s, me)
  ask(c, s.file.id, ticketFor(s, me))
  await waitFor(() => c.pieces > 0 ? true : undefined, 'a piece')
  assert.equal(c.bitfields, 1)
})

test('a member of no group gets no piece: every bad ticket is refused and the connection closed', async (t) => {
  const s = await setup(t)
  const me = await testIdentity()
  const someoneElse = await testIdentity()
  const flipped = ticketFor(s, me)
  flipped[flipped.length - 20]! ^= 0x01
  const cases: Array<[string, Buffer, string]> = [
    ['no ticket', Buffer.alloc(0), s.file.id],
    ['an expired ticket', ticketFor(s, me, { expiresAt: Date.now() - TICKET_CLOCK_SKEW_MS - 1_000 }), s.file.id],
    ['a ticket for another file', ticketFor(s, me, { fileId: s.other.id }), s.file.id],
    ['a ticket for another certificate', ticketFor(s, someoneElse), s.file.id],
    ['a ticket with a flipped byte', flipped, s.file.id],
    ['a ticket signed by an unknown key', ticketFor(s, me, { signer: generateTicketSigner() }), s.file.id],
  ]
  for (const [what, ticket, fileId] of cases) {
    const c = await dialPeer(t, s, me)
    ask(c, fileId, ticket)
    await waitFor(() => c.closed ? true : undefined, `the server to close the connection with ${what}`)
    assert.equal(c.pieces, 0, `no piece with ${what}`)
    assert.equal(c.bitfields, 0, `not even a bitfield with ${what}`)
  }
  assert.equal(s.server.connectionCount(), 0)
})

test('plain TCP to the peer port gets nothing but a closed connection', async (t) => {
  const s = await setup(t)
  const socket = net.connect({ host: '127.0.0.1', port: s.server.address.port })
  await once(socket, 'connect')
  let got = 0
  socket.on('data', (b: Buffer) => { got += b.length })
  socket.on('error', () => {})
  socket.write(encodeHandshake(s.file.id))
  socket.write(encodeRequest(0, 0, BLOCK_BYTES))
  await once(socket, 'close')
  assert.equal(got, 0)
})

test('a peer sending garbage after the handshake is dropped; another transfer goes on', async (t) => {
  const s = await setup(t)
  const good = await testIdentity()
  const bad = await testIdentity()
  const a = await dialPeer(t, s, good)
  ask(a, s.file.id, ticketFor(s, good))
  await waitFor(() => a.pieces > 0 ? true : undefined, 'a first piece')
  const b = await dialPeer(t, s, bad)
  ask(b, s.file.id, ticketFor(s, bad))
  await waitFor(() => b.bitfields > 0 ? true : undefined, 'b\'s bitfield')
  b.conn.socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3])) // an oversized frame header
  await waitFor(() => b.closed ? true : undefined, 'the garbage sender to be dropped')
  a.conn.send(encodeRequest(1, 0, BLOCK_BYTES))
  await waitFor(() => a.pieces > 1 ? true : undefined, 'a second piece for the well-behaved peer')
  assert.equal(a.closed, false)
})

test('a connection ends when its ticket expires, unless a renewed ticket came in time', async (t) => {
  const s = await setup(t)
  const me = await testIdentity()
  // a ticket with a moment left (the server allows TICKET_CLOCK_SKEW_MS of clock skew past expiry)
  const short = ticketFor(s, me, { expiresAt: Date.now() - TICKET_CLOCK_SKEW_MS + 1_500 })
  const renewed = await dialPeer(t, s, me)
  const lapsing = await dialPeer(t, s, me)
  for (const c of [renewed, lapsing]) c.conn.send(encodeHandshake(s.file.id, short))
  await waitFor(() => renewed.bitfields > 0 && lapsing.bitfields > 0 ? true : undefined, 'both bitfields')
  renewed.conn.send(encodeHandshake(s.file.id, ticketFor(s, me)))
  await waitFor(() => lapsing.closed ? true : undefined, 'the connection without a renewal to end')
  renewed.conn.send(encodeRequest(2, 0, BLOCK_BYTES))
  await waitFor(() => renewed.pieces > 0 ? true : undefined, 'a piece on the renewed connection')
  assert.equal(renewed.closed, false)
  assert.equal(renewed.bitfields, 1, 'a renewal is not answered')
})
