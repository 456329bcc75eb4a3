// The TLS front (TLS on its own thread, connections handed over decrypted) with real sockets: what
// reaches the handler, what never does, and closing in both directions.

import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import tls from 'node:tls'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import { PeershareError } from '../../src/common/errors.ts'
import { loadOrCreateIdentity } from '../../src/security/identity.ts'
import type { Identity } from '../../src/security/identity.ts'
import { randomBytes } from 'node:crypto'
import { FRONT_SECRET_BYTES, encodeFrontHeader } from '../../src/security/front-header.ts'
import { startFront } from '../../src/security/tls-front.ts'
import type { Front } from '../../src/security/tls-front.ts'
import { connect, listen } from '../../src/security/transport.ts'
import type { PeerInfo } from '../../src/security/transport.ts'
import { tmpDir } from '../helpers/tmp.ts'

async function ids (t: TestContext): Promise<{ server: Identity, client: Identity }> {
  const [server, client] = await Promise.all([1, 2].map(async () => loadOrCreateIdentity(await tmpDir(t))))
  return { server: server!, client: client! }
}

/** Resolves on 'close', whether the other end closed or reset the connection. */
function closeOf (socket: net.Socket): Promise<void> {
  socket.on('error', () => {})
  return new Promise((resolve) => socket.once('close', () => resolve()))
}

/** A front whose handler echoes, recording what it was told about each connection. */
async function echoFront (t: TestContext, identity: Identity, headerTimeoutMs?: number): Promise<{ front: Front, peers: PeerInfo[], sockets: net.Socket[] }> {
  const peers: PeerInfo[] = []
  const sockets: net.Socket[] = []
  const front = await startFront({
    host: '127.0.0.1',
    port: 0,
    identity,
    onConnection: (socket, peer) => { peers.push(peer); sockets.push(socket); socket.pipe(socket) },
    ...(headerTimeoutMs === undefined ? {} : { headerTimeoutMs }),
  })
  t.after(() => front.close())
  return { front, peers, sockets }
}

test('a TLS client reaches the handler decrypted, with its certificate fingerprint and its address', async (t) => {
  const { server, client } = await ids(t)
  const { front, peers } = await echoFront(t, server)
  const conn = await connect('127.0.0.1', front.port, { tls: { identity: client, trust: { kind: 'pin', fingerprint: server.fingerprint } } })
  t.after(() => { conn.socket.destroy() })
  const localPort = conn.socket.localPort
  // more than one TLS record and more than one socket read on the way, both ways
  const payload = Buffer.alloc(300_000, 'x')
  conn.socket.write(payload)
  let echoed = 0
  for await (const chunk of conn.socket) {
    echoed += (chunk as Buffer).length
    if (echoed >= payload.length) break
  }
  assert.equal(echoed, payload.length)
  assert.equal(peers.length, 1)
  assert.equal(peers[0]!.fingerprint, client.fingerprint)
  assert.equal(peers[0]!.remoteAddress, '127.0.0.1')
  assert.equal(peers[0]!.remotePort, localPort)
})

test('a client without a certificate, plain TCP, and a hand-over without the secret never reach the handler', async (t) => {
  const { server } = await ids(t)
  // no header timeout within the test: the forged hand-over below can only be closed by the secret check
  const { front, peers } = await echoFront(t, server, 600_000)
  const noCert = tls.connect({ host: '127.0.0.1', port: front.port, rejectUnauthorized: false, minVersion: 'TLSv1.3' })
  await closeOf(noCert)
  const plain = net.connect({ host: '127.0.0.1', port: front.port })
  plain.write('hello\n'.repeat(100))
  await closeOf(plain)
  // straight to the hand-over socket, with a complete, well-formed header whose secret is wrong
  const forged = net.connect({ path: front.handoverPath })
  forged.write(encodeFrontHeader(randomBytes(FRONT_SECRET_BYTES), { fingerprint: 'SHA256:' + 'ab'.repeat(32), remoteAddress: '127.0.0.1', remotePort: 1 }))
  await closeOf(forged)
  assert.equal(peers.length, 0)
})

test('closing either end closes the other', async (t) => {
  const { server, client } = await ids(t)
  const { front, sockets } = await echoFront(t, server)
  const dialOnce = async (): Promise<net.Socket> => {
    const conn = await connect('127.0.0.1', front.port, { tls: { identity: client, trust: { kind: 'any' } } })
    conn.socket.on('error', () => {})
    conn.socket.write('x')
    await once(conn.socket, 'data') // handed over and echoed
    return conn.socket
  }
  const first = await dialOnce()
  const handedOver = sockets.at(-1)!
  const closedInside = closeOf(handedOver)
  first.destroy()
  await closedInside
  const second = await dialOnce()
  const closedOutside = closeOf(second)
  sockets.at(-1)!.destroy() // the handler drops its client
  await closedOutside
})

test('listen with offload: a taken port is UNAVAILABLE naming it; close() stops accepting', async (t) => {
  const { server, client } = await ids(t)
  const first = await listen({ host: '127.0.0.1', port: 0, tls: { identity: server, offload: true }, onConnection: (s) => s.pipe(s) })
  await assert.rejects(listen({ host: '127.0.0.1', port: first.address.port, tls: { identity: server, offload: true }, onConnection: () => {} }), (err: unknown) =>
    err instanceof PeershareError && err.code === 'UNAVAILABLE' && err.message.includes(`port ${first.address.port} on 127.0.0.1 is already in use`))
  const conn = await connect('127.0.0.1', first.address.port, { tls: { identity: client, trust: { kind: 'any' } } })
  const closed = closeOf(conn.socket)
  await first.close()
  await closed
  await assert.rejects(connect('127.0.0.1', first.address.port, { tls: { identity: client, trust: { kind: 'any' } } }), (err: unknown) =>
    err instanceof PeershareError && err.code === 'UNAVAILABLE')
})

test('a handler that reads late gets every byte, in order; a hand-over without a header is dropped', async (t) => {
  const { server, client } = await ids(t)
  const handed: net.Socket[] = []
  const arrived = Promise.withResolvers<void>()
  const front = await startFront({
    host: '127.0.0.1',
    port: 0,
    identity: server,
    headerTimeoutMs: 200,
    onConnection: (socket) => { handed.push(socket); arrived.resolve() }, // no listener yet: it reads later
  })
  t.after(() => front.close())
  const conn = await connect('127.0.0.1', front.port, { tls: { identity: client, trust: { kind: 'any' } } })
  conn.socket.on('error', () => {})
  const payload = Buffer.alloc(1_000_000)
  for (let i = 0; i < payload.length; i++) payload[i] = i % 251
  conn.socket.end(payload)
  await arrived.promise
  // a later turn: bytes that flowed with nobody listening would be gone by now
  await new Promise<void>((resolve) => setImmediate(resolve))
  const got: Buffer[] = []
  for await (const chunk of handed[0]!) got.push(chunk as Buffer)
  assert.ok(Buffer.concat(got).equals(payload))

  const silent = net.connect({ path: front.handoverPath })
  await closeOf(silent) // nothing sent: the header timeout closes it
  assert.equal(handed.length, 1)
})

test('a handler that writes its last bytes and ends: a client that reads slowly still gets them all', async (t) => {
  const { server, client } = await ids(t)
  // more than the loopback socket buffers hold, so the front still holds bytes when the hand-over closes
  const payload = Buffer.alloc(16_000_000)
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) % 251
  const front = await startFront({
    host: '127.0.0.1',
    port: 0,
    identity: server,
    onConnection: (socket) => { socket.on('error', () => {}); socket.resume(); socket.end(payload) }, // a last reply, then close
  })
  t.after(() => front.close())
  const conn = await connect('127.0.0.1', front.port, { tls: { identity: client, trust: { kind: 'any' } } })
  conn.socket.on('error', () => {})
  const got: Buffer[] = []
  for await (const chunk of conn.socket) {
    got.push(chunk as Buffer)
    await new Promise<void>((resolve) => setImmediate(resolve)) // one chunk per turn: the front stays ahead
  }
  assert.equal(Buffer.concat(got).length, payload.length)
  assert.ok(Buffer.concat(got).equals(payload))
})
