import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type net from 'node:net'
import { PeershareError } from '../../src/common/errors.ts'
import { dial, listen } from '../../src/security/transport.ts'
import { freePort } from '../helpers/tracker.ts'

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
