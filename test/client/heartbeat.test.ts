// The link's heartbeat against a scripted tracker (plaintext, frames by hand): a tracker that stops
// answering after hello is dropped and the link moves on; one that answers pings, even with an
// error, is kept.
import assert from 'node:assert/strict'
import net from 'node:net'
import { once } from 'node:events'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import { PeershareError } from '../../src/common/errors.ts'
import { TrackerLink } from '../../src/client/tracker-link.ts'
import { decodeRequest, encodeMessage, errorResponse } from '../../src/protocol/control.ts'
import type { ControlRequest } from '../../src/protocol/control.ts'
import { FrameDecoder, encodeFrame } from '../../src/protocol/frame.ts'
import { waitFor } from '../helpers/wait.ts'

/** A tracker that answers hello, then hands every other request to `onRequest` (which may ignore it). */
async function scripted (t: TestContext, onRequest: (req: ControlRequest, reply: (body: Buffer) => void) => void): Promise<number> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    const decoder = new FrameDecoder(64 * 1024)
    const reply = (body: Buffer): void => { socket.write(encodeFrame(body)) }
    socket.on('data', (chunk: Buffer) => {
      for (const body of decoder.push(chunk)) {
        const req = decodeRequest(body)
        if (req.op === 'hello') reply(encodeMessage({ id: req.id, ok: true, result: { version: 1, trackerNo: 1 } }))
        else onRequest(req, reply)
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return (server.address() as net.AddressInfo).port
}

function startLink (t: TestContext, port: number): TrackerLink {
  const link = new TrackerLink({
    trackers: [{ no: 1, line: 1, host: '127.0.0.1', port }],
    clientId: 'c'.repeat(32),
    peerAddr: '127.0.0.1:7000',
    security: { insecurePlaintext: true },
  })
  t.after(() => link.close())
  return link
}

test('a tracker silent after hello is dropped by the heartbeat ping', async (t) => {
  const pings: number[] = []
  const port = await scripted(t, (req) => { if (req.op === 'ping') pings.push(Date.now()) })
  const link = startLink(t, port)
  const disconnected = once(link, 'disconnected')
  await link.start()
  const connectedAt = Date.now()
  const [address] = await disconnected as [string]
  assert.equal(address, `127.0.0.1:${port}`)
  assert.ok(pings.length >= 1, 'dropped without a ping')
  // idle 1.5 s before the ping, 2.5 s for its answer (timers run at a third of the idle time)
  assert.ok(Date.now() - connectedAt < 6_000, `took ${Date.now() - connectedAt} ms`)
})

test('a ping answered with an error is an answer: the connection is kept', async (t) => {
  let pings = 0
  const port = await scripted(t, (req, reply) => {
    if (req.op === 'ping') pings++
    reply(encodeMessage(errorResponse(req.id, new PeershareError('BUSY', 'busy'))))
  })
  const link = startLink(t, port)
  let drops = 0
  link.on('disconnected', () => { drops++ })
  await link.start()
  await waitFor(() => pings >= 3 || undefined, 'three pings answered', 15_000)
  assert.equal(drops, 0)
  assert.equal(link.connected?.address, `127.0.0.1:${port}`)
})

