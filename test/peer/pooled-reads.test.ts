// PooledReads: a connection reading into a few reused buffers (Node's `onread`) gets every block
// intact, over plaintext and TLS, and reuses a handful of buffers instead of one per read.

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import type net from 'node:net'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import { BLOCK_BYTES, encodeHave } from '../../src/protocol/wire.ts'
import { connect, listen } from '../../src/security/transport.ts'
import type { DialTls } from '../../src/security/transport.ts'
import { PeerConnection } from '../../src/peer/connection.ts'
import { PooledReads } from '../../src/peer/pooled-reads.ts'
import { testIdentity } from '../helpers/identity.ts'
import { waitFor } from '../helpers/wait.ts'

const BLOCKS = 200 // 25 MiB: thousands of reads

for (const mode of ['plaintext', 'tls'] as const) {
  test(`every block arrives intact through reused read buffers (${mode})`, async (t) => {
    const { receiver, sender, reads } = await pair(t, mode)
    receiver.allowBlocks()
    sender.allowBlocks()
    const sent = Array.from({ length: BLOCKS }, (_, i) => i % 7 === 0 ? randomBytes(1 + (i * 977) % BLOCK_BYTES) : randomBytes(BLOCK_BYTES))
    const got: string[] = []
    const haves: number[] = []
    // hash the parts during the event, as download.ts copies them: they are only valid until it returns
    receiver.on('piece', (m) => {
      const h = createHash('sha1')
      for (const part of m.parts) h.update(part)
      got.push(`${m.piece}:${m.offset}:${m.length}:${h.digest('hex')}`)
    })
    receiver.on('have', (p) => haves.push(p))
    const pump = async (): Promise<void> => {
      for (let i = 0; i < BLOCKS; i++) {
        // small frames between blocks: they must come out as copies, whole
        if (i % 5 === 0) sender.send(encodeHave(i))
        if (!sender.sendPiece(i, i % 4, sent[i]!)) await sender.waitDrain()
      }
    }
    await pump()
    await waitFor(() => got.length === BLOCKS || undefined, 'every block', 30_000)
    assert.deepEqual(got, sent.map((b, i) => `${i}:${i % 4}:${b.length}:${createHash('sha1').update(b).digest('hex')}`))
    assert.deepEqual(haves, Array.from({ length: BLOCKS / 5 }, (_, k) => k * 5))
    // a block straddles its reads (over TLS one per 16 KiB record): those are held until it is whole
    assert.ok(reads.allocated <= 2 + Math.ceil(BLOCK_BYTES / 16384), `${reads.allocated} read buffers for ${BLOCKS} blocks`)
  })
}

test('bytes read before the connection attaches are delivered first, in order', async () => {
  const reads = new PooledReads()
  const buf = reads.onread.buffer as () => Uint8Array
  const first = buf()
  first.set([1, 2, 3])
  reads.onread.callback(3, first)
  const second = buf()
  second.set([4, 5])
  reads.onread.callback(2, second)
  const seen: number[] = []
  reads.attach((chunk) => seen.push(...chunk), () => false)
  assert.deepEqual(seen, [1, 2, 3, 4, 5])
})

async function pair (t: TestContext, mode: 'plaintext' | 'tls'): Promise<{ receiver: PeerConnection, sender: PeerConnection, reads: PooledReads }> {
  const serverId = await testIdentity()
  const clientId = await testIdentity()
  let accepted: net.Socket | undefined
  const listener = await listen({
    host: '127.0.0.1', port: 0, onConnection: (s) => { accepted = s },
    ...(mode === 'tls' ? { tls: { identity: serverId } } : { insecurePlaintext: true }),
  })
  t.after(() => listener.close())
  const reads = new PooledReads()
  const tls: DialTls | undefined = mode === 'tls' ? { identity: clientId, trust: { kind: 'pin', fingerprint: serverId.fingerprint } } : undefined
  const socket = (await connect('127.0.0.1', listener.address.port, tls === undefined ? { insecurePlaintext: true, onread: reads.onread } : { tls, onread: reads.onread })).socket
  const receiver = new PeerConnection(socket, { reads })
  const sender = new PeerConnection(await waitFor(() => accepted, 'the accepted socket'))
  t.after(() => { receiver.close(); sender.close() })
  return { receiver, sender, reads }
}
