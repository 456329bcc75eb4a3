import assert from 'node:assert/strict'
import { once } from 'node:events'
import type net from 'node:net'
import { test } from 'node:test'
import type { PeershareError } from '../../src/common/errors.ts'
import { BLOCK_BYTES, encodeHave, encodeRequest } from '../../src/protocol/wire.ts'
import type { WirePiece, WireRequest } from '../../src/protocol/wire.ts'
import { dial, listen } from '../../src/security/transport.ts'
import { PeerConnection } from '../../src/peer/connection.ts'
import type { PeerConnectionOptions } from '../../src/peer/connection.ts'
import type { TestContext } from 'node:test'
import { waitFor } from '../helpers/wait.ts'

/** Two PeerConnections over a real loopback socket pair. */
async function pair (t: TestContext, opts: PeerConnectionOptions = {}): Promise<{ a: PeerConnection, b: PeerConnection, rawB: net.Socket }> {
  let accepted: net.Socket | undefined
  const listener = await listen({ host: '127.0.0.1', port: 0, onConnection: (s) => { accepted = s } })
  t.after(() => listener.close())
  const a = new PeerConnection(await dial('127.0.0.1', listener.address.port), opts)
  const rawB = await waitFor(() => accepted, 'the accepted socket')
  const b = new PeerConnection(rawB, opts)
  t.after(() => { a.close(); b.close() })
  return { a, b, rawB }
}

test('delivers typed messages; a piece is sent without copying and arrives intact', async (t) => {
  const { a, b } = await pair(t)
  a.allowBlocks()
  b.allowBlocks()
  const requests: WireRequest[] = []
  const pieces: WirePiece[] = []
  const haves: number[] = []
  b.on('request', (m) => requests.push(m))
  b.on('have', (p) => haves.push(p))
  a.on('piece', (m) => pieces.push({ ...m, data: Buffer.from(m.data) }))
  a.batch(() => {
    a.send(encodeRequest(1, BLOCK_BYTES, BLOCK_BYTES))
    a.send(encodeHave(7))
  })
  await waitFor(() => requests[0], 'the request')
  assert.deepEqual(requests[0], { type: 6, piece: 1, offset: BLOCK_BYTES, length: BLOCK_BYTES })
  assert.deepEqual(haves, [7])
  const data = Buffer.alloc(BLOCK_BYTES, 0xab)
  const written = new Promise<unknown>((resolve) => b.sendPiece(1, BLOCK_BYTES, data, resolve))
  await waitFor(() => pieces[0], 'the piece')
  assert.deepEqual(pieces[0]?.data, data)
  assert.ok(await written == null, 'the write callback reports success once the socket is done with the block')
})

test('a block-sized frame before allowBlocks() is a protocol error: the connection closes with PROTOCOL', async (t) => {
  const { a, b } = await pair(t)
  const closed = once(b, 'close') as Promise<[PeershareError | undefined]>
  a.sendPiece(0, 0, Buffer.alloc(BLOCK_BYTES))
  const [reason] = await closed
  assert.equal(reason?.code, 'PROTOCOL')
  assert.ok(b.closed)
  await waitFor(() => a.closed || undefined, 'the other end to close')
})

test('an unknown message id closes the connection with PROTOCOL', async (t) => {
  const { a, b } = await pair(t)
  const closed = once(b, 'close') as Promise<[PeershareError | undefined]>
  a.send(Buffer.from([0, 0, 0, 1, 99]))
  const [reason] = await closed
  assert.equal(reason?.code, 'PROTOCOL')
})

test('keep-alives hold a quiet connection open', async (t) => {
  const { a, b } = await pair(t, { keepAliveMs: 50, idleTimeoutMs: 300 })
  // both ends quiet but alive: keep-alives flow both ways, nothing closes for several timeouts
  const start = performance.now()
  await waitFor(() => performance.now() - start > 1000 || undefined, 'a second of quiet')
  assert.equal(a.closed, false)
  assert.equal(b.closed, false)
})

test('a peer that sends nothing is closed with TIMEOUT', async (t) => {
  const listener = await listen({ host: '127.0.0.1', port: 0, onConnection: () => {} }) // accepts, never writes
  t.after(() => listener.close())
  const a = new PeerConnection(await dial('127.0.0.1', listener.address.port), { keepAliveMs: 50, idleTimeoutMs: 300 })
  t.after(() => a.close())
  const [reason] = await once(a, 'close') as [PeershareError | undefined]
  assert.equal(reason?.code, 'TIMEOUT')
})

test('close() is idempotent and waitDrain() resolves once closed', async (t) => {
  const { a } = await pair(t)
  a.close()
  a.close()
  await a.waitDrain()
  assert.equal(a.send(encodeHave(1)), false)
  assert.equal(a.sendPiece(0, 0, Buffer.alloc(10)), false)
})
