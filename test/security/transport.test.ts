import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type net from 'node:net'
import tls from 'node:tls'
import { PeershareError } from '../../src/common/errors.ts'
import { loadOrCreateIdentity } from '../../src/security/identity.ts'
import type { Identity } from '../../src/security/identity.ts'
import { KnownTrackers, addressKey, knownTrackersPath } from '../../src/security/tls.ts'
import { connect, dial, listen } from '../../src/security/transport.ts'
import type { Listener } from '../../src/security/transport.ts'
import { freePort } from '../helpers/tracker.ts'
import { tmpDir } from '../helpers/tmp.ts'

test('listen on port 0 reports the real port; dial connects to it both ways', async (t) => {
  const accepted: net.Socket[] = []
  const listener = await listen({ host: '127.0.0.1', port: 0, onConnection: (s) => { accepted.push(s); s.pipe(s) } })
  t.after(() => listener.close())
  assert.equal(listener.address.host, '127.0.0.1')
  assert.ok(listener.address.port > 0)
  const socket = await dial('127.0.0.1', listener.address.port)
  t.after(() => { socket.destroy() })
  socket.write('echo')
  const [data] = await once(socket, 'data') as [Buffer]
  assert.equal(data.toString(), 'echo')
  assert.equal(accepted.length, 1)
})

test('a taken port is UNAVAILABLE with a message naming it', async (t) => {
  const first = await listen({ host: '127.0.0.1', port: 0, onConnection: () => {} })
  t.after(() => first.close())
  await assert.rejects(listen({ host: '127.0.0.1', port: first.address.port, onConnection: () => {} }), (err: unknown) => {
    assert.ok(err instanceof PeershareError)
    assert.equal(err.code, 'UNAVAILABLE')
    assert.match(err.message, new RegExp(`port ${first.address.port} on 127\\.0\\.0\\.1 is already in use`))
    return true
  })
})

test('close() destroys the open connections and stops accepting; it is idempotent', async () => {
  const listener = await listen({ host: '127.0.0.1', port: 0, onConnection: () => {} })
  const socket = await dial('127.0.0.1', listener.address.port)
  socket.on('error', () => {})
  const closed = once(socket, 'close')
  await listener.close()
  await closed
  await assert.rejects(dial('127.0.0.1', listener.address.port), (err: unknown) => err instanceof PeershareError && err.code === 'UNAVAILABLE')
  await listener.close()
})

test('dial: a refused connection is UNAVAILABLE; an aborted signal rejects with its reason', async () => {
  const port = await freePort()
  await assert.rejects(dial('127.0.0.1', port), (err: unknown) =>
    err instanceof PeershareError && err.code === 'UNAVAILABLE' && /ECONNREFUSED/.test(err.message))
  const controller = new AbortController()
  controller.abort(new Error('user cancelled'))
  await assert.rejects(dial('127.0.0.1', port, { signal: controller.signal }), /user cancelled/)
})

// ---------------------------------------------------------------------------------------------
// TLS

async function identities (t: TestContext): Promise<{ server: Identity, client: Identity, other: Identity }> {
  const [server, client, other] = await Promise.all([1, 2, 3].map(async () => loadOrCreateIdentity(await tmpDir(t))))
  return { server: server!, client: client!, other: other! }
}

/** A TLS echo listener that records who connected and every byte it received. */
async function tlsEcho (t: TestContext, identity: Identity): Promise<{ listener: Listener, peers: Array<string | undefined>, received: () => number }> {
  const peers: Array<string | undefined> = []
  let received = 0
  const listener = await listen({
    host: '127.0.0.1',
    port: 0,
    tls: { identity },
    onConnection: (s, peer) => {
      peers.push(peer.fingerprint)
      s.on('error', () => {})
      s.on('data', (d: Buffer) => { received += d.length; s.write(d) })
    },
  })
  t.after(() => listener.close())
  return { listener, peers, received: () => received }
}

test('TLS: a pinned handshake connects both ways; each side learns the other\'s fingerprint', async (t) => {
  const ids = await identities(t)
  const { listener, peers } = await tlsEcho(t, ids.server)
  const conn = await connect('127.0.0.1', listener.address.port, { tls: { identity: ids.client, trust: { kind: 'pin', fingerprint: ids.server.fingerprint } } })
  t.after(() => { conn.socket.destroy() })
  assert.ok(conn.socket instanceof tls.TLSSocket)
  assert.equal(conn.socket.getProtocol(), 'TLSv1.3')
  assert.equal(conn.peerFingerprint, ids.server.fingerprint)
  conn.socket.write('secret')
  const [data] = await once(conn.socket, 'data') as [Buffer]
  assert.equal(data.toString(), 'secret')
  assert.deepEqual(peers, [ids.client.fingerprint])
})

test('TLS: a certificate other than the pinned one is refused before any byte is sent', async (t) => {
  const ids = await identities(t)
  const { listener, received } = await tlsEcho(t, ids.server)
  await assert.rejects(
    connect('127.0.0.1', listener.address.port, { tls: { identity: ids.client, trust: { kind: 'pin', fingerprint: ids.other.fingerprint, source: 'trackers.txt' }, label: 'tracker 1' } }),
    (err: unknown) => {
      assert.ok(err instanceof PeershareError)
      assert.equal(err.code, 'UNTRUSTED')
      assert.match(err.message, new RegExp(`^tracker 1 presented certificate ${ids.server.fingerprint}, but trackers\\.txt expects ${ids.other.fingerprint}`))
      return true
    })
  assert.equal(received(), 0)
})

test('TLS: trust on first use stores the tracker; a new certificate at that address is refused later', async (t) => {
  const ids = await identities(t)
  const known = await KnownTrackers.open(knownTrackersPath(await tmpDir(t)))
  const first = await tlsEcho(t, ids.server)
  const address = addressKey('127.0.0.1', first.listener.address.port)
  const trust = { kind: 'tofu', known, address } as const
  const c1 = await connect('127.0.0.1', first.listener.address.port, { tls: { identity: ids.client, trust } })
  c1.socket.destroy()
  assert.equal(known.get(address), ids.server.fingerprint)
  const c2 = await connect('127.0.0.1', first.listener.address.port, { tls: { identity: ids.client, trust } })
  c2.socket.destroy()
  // same address, another identity: what an impostor (or a tracker with a new data dir) looks like
  await first.listener.close()
  const impostor = await listen({ host: '127.0.0.1', port: first.listener.address.port, tls: { identity: ids.other }, onConnection: () => {} })
  t.after(() => impostor.close())
  await assert.rejects(connect('127.0.0.1', first.listener.address.port, { tls: { identity: ids.client, trust } }), (err: unknown) =>
    err instanceof PeershareError && err.code === 'UNTRUSTED' && err.message.includes(`remove the line for ${address} from ${known.path}`))
  assert.equal(known.get(address), ids.server.fingerprint)
})

test('TLS: plain TCP to a TLS port gets nothing but a closed connection, and reaches no handler', async (t) => {
  const ids = await identities(t)
  const { listener, peers } = await tlsEcho(t, ids.server)
  // a control frame as an old plaintext client would send it, then an HTTP request
  for (const bytes of [Buffer.from([0, 0, 0, 12, ...Buffer.from('{"op":"x"}\n\n')]), Buffer.from('GET / HTTP/1.1\r\n\r\n')]) {
    const socket = await dial('127.0.0.1', listener.address.port, { insecurePlaintext: true })
    socket.on('error', () => {})
    let got = 0
    socket.on('data', (d: Buffer) => { got += d.length })
    socket.write(bytes)
    await once(socket, 'close')
    assert.equal(got, 0)
  }
  assert.deepEqual(peers, [])
})

test('TLS: a client without a certificate is dropped before its handler runs', async (t) => {
  const ids = await identities(t)
  const { listener, peers, received } = await tlsEcho(t, ids.server)
  const socket = tls.connect({ host: '127.0.0.1', port: listener.address.port, minVersion: 'TLSv1.3', rejectUnauthorized: false })
  socket.on('error', () => {})
  socket.write('hello?')
  await once(socket, 'close')
  assert.deepEqual(peers, [])
  assert.equal(received(), 0)
})

test('TLS: a TLS 1.2 client is refused', async (t) => {
  const ids = await identities(t)
  const { listener, peers } = await tlsEcho(t, ids.server)
  const socket = tls.connect({ host: '127.0.0.1', port: listener.address.port, maxVersion: 'TLSv1.2', rejectUnauthorized: false, cert: ids.client.certPem, key: ids.client.keyPem })
  const [err] = await once(socket, 'error') as [NodeJS.ErrnoException]
  assert.match(String(err.code), /ERR_SSL/)
  socket.destroy()
  assert.deepEqual(peers, [])
})

test('TLS: dialling a plaintext server fails the handshake with UNAVAILABLE or TIMEOUT, never hangs', async (t) => {
  const ids = await identities(t)
  // a plaintext server that closes on bytes it does not understand, like the control server
  const plain = await listen({ host: '127.0.0.1', port: 0, insecurePlaintext: true, onConnection: (s) => { s.once('data', () => s.destroy()) } })
  t.after(() => plain.close())
  await assert.rejects(connect('127.0.0.1', plain.address.port, { tls: { identity: ids.client, trust: { kind: 'any' } } }), (err: unknown) =>
    err instanceof PeershareError && err.code === 'UNAVAILABLE' && /TLS handshake with 127\.0\.0\.1:\d+ failed/.test(err.message))
  // a plaintext server that never answers: the deadline covers the handshake
  const silent = await listen({ host: '127.0.0.1', port: 0, insecurePlaintext: true, onConnection: () => {} })
  t.after(() => silent.close())
  await assert.rejects(connect('127.0.0.1', silent.address.port, { timeoutMs: 300, tls: { identity: ids.client, trust: { kind: 'any' } } }), (err: unknown) =>
    err instanceof PeershareError && err.code === 'TIMEOUT' && /TLS handshake .* did not finish within 300 ms/.test(err.message))
})

test('TLS: close() also ends connections still in their handshake', async (t) => {
  const ids = await identities(t)
  const { listener } = await tlsEcho(t, ids.server)
  const idle = await dial('127.0.0.1', listener.address.port, { insecurePlaintext: true }) // connects, never says hello
  idle.on('error', () => {})
  const tlsConn = await connect('127.0.0.1', listener.address.port, { tls: { identity: ids.client, trust: { kind: 'any' } } })
  tlsConn.socket.on('error', () => {})
  const closed = Promise.all([once(idle, 'close'), once(tlsConn.socket, 'close')])
  await listener.close()
  await closed
})

test('listen/connect refuse tls together with insecurePlaintext', async (t) => {
  const ids = await identities(t)
  await assert.rejects(listen({ host: '127.0.0.1', port: 0, tls: { identity: ids.server }, insecurePlaintext: true, onConnection: () => {} }), TypeError)
  await assert.rejects(dial('127.0.0.1', 1, { tls: { identity: ids.client, trust: { kind: 'any' } }, insecurePlaintext: true }), TypeError)
})
