// A download over TLS with tickets, end to end at the peer layer (issue 5): holders dialled with their
// pinned certificate, the ticket in the handshake, tickets renewed on open connections during a long
// download, and - through a TCP proxy the test controls - a marker inside the file never seen in clear.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { readFile, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import { PIECE_BYTES, fileId } from '../../src/protocol/file-meta.ts'
import { Download } from '../../src/peer/download.ts'
import type { PeerDial, PeerLocation } from '../../src/peer/download.ts'
import { hashFile } from '../../src/peer/hashing.ts'
import { startPeerServer } from '../../src/peer/server.ts'
import type { PeerServerOptions } from '../../src/peer/server.ts'
import type { Identity } from '../../src/security/identity.ts'
import { TICKET_CLOCK_SKEW_MS, generateTicketSigner, signTicket, trustedTicketKeys } from '../../src/security/tickets.ts'
import { connect, dial as plainDial } from '../../src/security/transport.ts'
import { testIdentity } from '../helpers/identity.ts'
import { content, shareFile } from '../helpers/peer.ts'
import type { TestFile } from '../helpers/peer.ts'
import { defer } from '../helpers/cleanup.ts'
import { tmpDir } from '../helpers/tmp.ts'

const MARKER = Buffer.from('PEERSHARE-SECRET-MARKER-5c8cc3c0')

/** A file whose every piece carries MARKER a few times. */
async function markedFile (dir: string, size: number): Promise<TestFile> {
  const bytes = content(size, 7)
  for (let at = 1000; at + MARKER.length < size; at += 100_003) MARKER.copy(bytes, at)
  const path = join(dir, 'marked.bin')
  await writeFile(path, bytes)
  const { meta, mtimeMs } = await hashFile(path)
  return { path, bytes, meta, id: fileId(meta), mtimeMs }
}

/** Forwards 127.0.0.1:<port> to `to`, keeping every byte that crosses it, both ways. */
async function recordingProxy (t: TestContext, to: number): Promise<{ port: number, seen: () => Buffer }> {
  const chunks: Buffer[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((down) => {
    const up = net.connect({ host: '127.0.0.1', port: to })
    for (const [from, other] of [[down, up], [up, down]] as const) {
      sockets.add(from)
      from.on('data', (b: Buffer) => { chunks.push(Buffer.from(b)); other.write(b) })
      from.on('error', () => {})
      from.on('close', () => other.destroy())
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  defer(t, () => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  return { port: (server.address() as net.AddressInfo).port, seen: () => Buffer.concat(chunks) }
}

function tlsDial (identity: Identity, dials: { n: number }): PeerDial {
  return async (host, port, opts) => {
    dials.n++
    assert.ok(opts.fingerprint !== undefined, 'the holder comes with its certificate')
    const trust = { kind: 'pin' as const, fingerprint: opts.fingerprint }
    return (await connect(host, port, { ...(opts.signal === undefined ? {} : { signal: opts.signal }), tls: { identity, trust } })).socket
  }
}

async function sharer (t: TestContext, file: TestFile, extra: Partial<PeerServerOptions>): Promise<number> {
  const share = await shareFile(t, file)
  const server = await startPeerServer({ host: '127.0.0.1', port: 0, findSource: (id) => id === file.id ? share : undefined, ...extra })
  defer(t, () => server.close())
  return server.address.port
}

test('over TLS the file\'s bytes never cross the wire in clear (and the proxy would have seen them in plaintext)', async (t) => {
  const dir = await tmpDir(t)
  const file = await markedFile(dir, 3 * PIECE_BYTES + 777)
  const tracker = generateTicketSigner()
  const holderId = await testIdentity()
  const me = await testIdentity()

  // control: over plaintext the marker is there to be seen
  const plainPort = await sharer(t, file, {})
  const plainProxy = await recordingProxy(t, plainPort)
  const plain = await Download.open({
    meta: file.meta, fileId: file.id, groupId: 'g1', target: join(dir, 'plain.bin'), dial: plainDial,
    locate: async () => [{ peerAddr: `127.0.0.1:${plainProxy.port}`, userId: 'h' }],
  })
  t.after(() => plain.stop())
  assert.equal(await plain.run(), 'completed')
  assert.ok(plainProxy.seen().includes(MARKER), 'the check can see a marker in clear')

  const port = await sharer(t, file, { security: { identity: holderId, trustedKeys: () => trustedTicketKeys([tracker.publicKey]) } })
  const proxy = await recordingProxy(t, port)
  const ticket = signTicket({ requester: me.fingerprint, fileId: file.id, groupId: 'g1', expiresAt: Date.now() + 60_000 }, tracker)
  const d = await Download.open({
    meta: file.meta, fileId: file.id, groupId: 'g1', target: join(dir, 'tls.bin'), dial: tlsDial(me, { n: 0 }),
    locate: async () => [{ peerAddr: `127.0.0.1:${proxy.port}`, userId: 'h', fingerprint: holderId.fingerprint, ticket }],
  })
  t.after(() => d.stop())
  assert.equal(await d.run(), 'completed')
  assert.deepEqual(await readFile(join(dir, 'tls.bin')), file.bytes)
  const seen = proxy.seen()
  assert.ok(seen.length > file.bytes.length, `the whole file crossed the proxy (${seen.length} bytes)`)
  assert.equal(seen.includes(MARKER), false, 'the marker never appears in clear')
  assert.equal(seen.includes(file.bytes.subarray(5000, 5064)), false, 'nor any stretch of the file')
})

test('a holder presenting another certificate than the tracker named is not used', async (t) => {
  const dir = await tmpDir(t)
  const file = await markedFile(dir, PIECE_BYTES)
  const tracker = generateTicketSigner()
  const me = await testIdentity()
  const port = await sharer(t, file, { security: { identity: await testIdentity(), trustedKeys: () => trustedTicketKeys([tracker.publicKey]) } })
  const ticket = signTicket({ requester: me.fingerprint, fileId: file.id, groupId: 'g1', expiresAt: Date.now() + 60_000 }, tracker)
  const d = await Download.open({
    meta: file.meta, fileId: file.id, groupId: 'g1', target: join(dir, 'out.bin'), dial: tlsDial(me, { n: 0 }), noPeerTimeoutMs: 300, waitingRelocateMs: 100,
    locate: async () => [{ peerAddr: `127.0.0.1:${port}`, userId: 'h', fingerprint: (await testIdentity()).fingerprint, ticket }],
  })
  t.after(() => d.stop())
  await assert.rejects(d.run(), { code: 'TIMEOUT' })
  assert.equal(d.progress().piecesDone, 0)
})

test('tickets that expire during a long download are renewed on the open connection, transparently', async (t) => {
  const dir = await tmpDir(t)
  const file = await markedFile(dir, 8 * PIECE_BYTES)
  const tracker = generateTicketSigner()
  const holderId = await testIdentity()
  const me = await testIdentity()
  // ~4 s at 1 MB/s, while each ticket lets the server serve ~1.5 s (past its expiry plus the clock skew allowance)
  const port = await sharer(t, file, { uploadLimit: 1_000_000, security: { identity: holderId, trustedKeys: () => trustedTicketKeys([tracker.publicKey]) } })
  let locates = 0
  const locate = async (): Promise<PeerLocation[]> => {
    locates++
    const expiresAt = Date.now() - TICKET_CLOCK_SKEW_MS + 1_500
    const ticket = signTicket({ requester: me.fingerprint, fileId: file.id, groupId: 'g1', expiresAt }, tracker)
    return [{ peerAddr: `127.0.0.1:${port}`, userId: 'h', fingerprint: holderId.fingerprint, ticket, ticketExpiresAt: expiresAt }]
  }
  const dials = { n: 0 }
  const d = await Download.open({ meta: file.meta, fileId: file.id, groupId: 'g1', target: join(dir, 'out.bin'), dial: tlsDial(me, dials), locate, waitingRelocateMs: 200 })
  t.after(() => d.stop())
  const started = Date.now()
  assert.equal(await d.run(), 'completed')
  assert.ok(Date.now() - started > 2_000, 'the download outlived a ticket')
  assert.deepEqual(await readFile(join(dir, 'out.bin')), file.bytes)
  assert.ok(locates >= 2, `tickets were renewed (${locates} locates)`)
  assert.equal(dials.n, 1, 'on the one connection: no reconnection was needed')
})
