// The tracker's socket boundary: hello first, framing limits, malformed requests, per-connection
// limits, slow clients. A real tracker process (startTracker) unless a test needs small limits, then
// an in-process server on port 0 over a real SQLite store.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import type { ControlResponse } from '../../src/protocol/control.ts'
import { encodeFrame, encodeFrameHeader } from '../../src/protocol/frame.ts'
import { openSqliteStore } from '../../src/store/sqlite.ts'
import { startTrackerServer } from '../../src/tracker/server.ts'
import type { TrackerServerOptions } from '../../src/tracker/server.ts'
import { defer } from '../helpers/cleanup.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { waitFor } from '../helpers/wait.ts'
import { testIdentity } from '../helpers/identity.ts'
import { connectRaw, fakeMeta, startTracker } from '../helpers/tracker.ts'
import type { RawClient } from '../helpers/tracker.ts'

function errorOf (r: ControlResponse): { code: string, message: string } {
  assert.equal(r.ok, false, `expected an error, got ${JSON.stringify(r)}`)
  return (r as Extract<ControlResponse, { ok: false }>).error
}

async function inProcess (t: TestContext, opts: Partial<TrackerServerOptions> = {}): Promise<number> {
  const store = await openSqliteStore(join(await tmpDir(t), 'tracker.sqlite'))
  const server = await startTrackerServer({ store, trackerNo: 1, host: '127.0.0.1', port: 0, tls: { identity: await testIdentity() }, ...opts })
  defer(t, async () => {
    await server.close()
    await store.close()
  })
  return server.address.port
}

let userSeq = 0
/** A connected client that said hello and is logged in as a fresh user. */
async function loggedIn (port: number): Promise<RawClient & { userId: string }> {
  const c = await connectRaw(port)
  assert.equal((await c.hello()).ok, true)
  const userId = `user${process.pid}x${++userSeq}`
  await c.call('create_user', { userId, password: 'pw' })
  await c.call('login', { userId, password: 'pw' })
  return Object.assign(c, { userId })
}

test('tracker process', async (t) => {
  const tracker = await startTracker(t, { trackerNo: 2 })
  const port = tracker.port
  const clients: RawClient[] = []
  const connect = async (): Promise<RawClient> => {
    const c = await connectRaw(port)
    clients.push(c)
    return c
  }
  t.after(() => Promise.all(clients.map((c) => c.close())))

  await t.test('answers hello with the protocol version and its tracker number', async () => {
    const c = await connect()
    const r = await c.hello()
    assert.equal(r.ok, true)
    const { ticketKey, ...rest } = (r as { result: { ticketKey?: unknown } }).result
    assert.deepEqual(rest, { version: 1, trackerNo: 2 })
    assert.match(String(ticketKey), /^[0-9a-f]{64}$/, 'over TLS hello names the tracker\'s ticket key')
    assert.deepEqual(await c.call('ping'), {})
  })

  await t.test('refuses any request before hello, then closes the connection', async () => {
    for (const op of ['ping', 'login', 'list_groups']) {
      const c = await connect()
      const err = errorOf(await c.request(op, op === 'login' ? { userId: 'a', password: 'b' } : {}))
      assert.equal(err.code, 'PROTOCOL')
      assert.match(err.message, /first request must be hello/)
      await c.closed
    }
  })

  await t.test('refuses a hello with bad arguments or another protocol version, then closes', async () => {
    const bad = [
      { version: 2, clientId: 'ab'.repeat(16), peerAddr: '127.0.0.1:7000' },
      { version: 1, clientId: 'not hex', peerAddr: '127.0.0.1:7000' },
      { version: 1, clientId: 'ab'.repeat(16), peerAddr: 'nowhere' },
      { version: '1', clientId: 'ab'.repeat(16), peerAddr: '127.0.0.1:7000' },
    ]
    for (const args of bad) {
      const c = await connect()
      const err = errorOf(await c.request('hello', args))
      assert.ok(['PROTOCOL', 'BAD_REQUEST'].includes(err.code), err.code)
      await c.closed
    }
  })

  await t.test('a second hello on the same connection is a protocol error', async () => {
    const c = await connect()
    await c.hello()
    assert.equal(errorOf(await c.hello()).code, 'PROTOCOL')
    await c.closed
  })

  await t.test('an oversize frame closes only that connection', async () => {
    const other = await loggedIn(port)
    clients.push(other)
    const c = await connect()
    await c.hello()
    c.sendRaw(encodeFrameHeader(64 * 1024 + 1)) // MAX_UNAUTH_FRAME_BYTES + 1: refused on the header alone
    await c.closed
    assert.deepEqual(await other.call('ping'), {})
    assert.ok(Array.isArray((await other.call<{ groups: unknown[] }>('list_groups')).groups))
  })

  await t.test('frames above 64 KiB are refused before login and accepted after it', async () => {
    const meta = fakeMeta('big.bin', 3 * 1024 ** 3) // 6144 pieces: ~160 KiB of JSON
    const anon = await connect()
    await anon.hello()
    const pending = anon.request('upload_file', { groupId: 'g', meta })
    await assert.rejects(pending, /connection closed/)

    const c = await loggedIn(port)
    clients.push(c)
    const groupId = `big${process.pid}`
    await c.call('create_group', { groupId })
    const r = await c.call<{ pieces: number }>('upload_file', { groupId, meta })
    assert.equal(r.pieces, 6144)
  })

  await t.test('invalid JSON closes the connection', async () => {
    const c = await connect()
    await c.hello()
    c.sendRaw(encodeFrame(Buffer.from('{"id": 2, "op": "ping"')))
    await c.closed
  })

  await t.test('a request without a usable id closes the connection', async () => {
    for (const body of [{ op: 'ping' }, { id: -1, op: 'ping' }, { id: 1.5, op: 'ping' }, { id: '2', op: 'ping' }, [1, 2], 'ping', null]) {
      const c = await connect()
      await c.hello()
      c.sendJson(body)
      await c.closed
    }
  })

  await t.test('an unknown op gets BAD_REQUEST and the connection keeps working', async () => {
    const c = await connect()
    await c.hello()
    const err = errorOf(await c.request('format_disk', {}))
    assert.equal(err.code, 'BAD_REQUEST')
    assert.match(err.message, /unknown operation 'format_disk'/)
    assert.deepEqual(await c.call('ping'), {})
  })

  await t.test('wrong argument types get BAD_REQUEST with the request id, and the connection keeps working', async () => {
    const c = await loggedIn(port)
    clients.push(c)
    const cases: Array<[string, unknown]> = [
      ['create_user', { userId: 5, password: 'x' }],
      ['create_user', { userId: 'bob', password: null }],
      ['create_user', { userId: '../etc', password: 'x' }],
      ['create_group', []],
      ['create_group', { groupId: { nested: true } }],
      ['join_group', {}],
      ['accept_request', { groupId: 'g1', userId: ['a'] }],
      ['stop_share', { groupId: 'g1', fileName: '../../passwd' }],
      ['get_file', { groupId: 'g1', fileName: 'a/b' }],
      ['upload_file', { groupId: 'g1', meta: { name: 'x', size: -1 } }],
      ['upload_file', { groupId: 'g1', meta: 'x' }],
      ['reshare', { shares: 'all' }],
      ['reshare', { shares: [{ groupId: 'g1', fileId: 'zz' }] }],
      ['resume', { token: 'short' }],
    ]
    for (const [op, args] of cases) {
      c.sendJson({ id: 900, op, args })
      const r = await c.response(900)
      assert.equal(errorOf(r).code, 'BAD_REQUEST', `${op} ${JSON.stringify(args)}`)
    }
    assert.deepEqual(await c.call('ping'), {})
  })

  await t.test('huge strings are refused with a short message', async () => {
    const c = await connect()
    await c.hello()
    const huge = 'a'.repeat(60_000)
    for (const args of [{ userId: huge, password: 'x' }, { userId: 'alice', password: huge }]) {
      const err = errorOf(await c.request('create_user', args))
      assert.equal(err.code, 'BAD_REQUEST')
      assert.ok(err.message.length < 200, `message of ${err.message.length} chars`)
    }
    const err = errorOf(await c.request(huge.slice(0, 50_000), {}))
    assert.equal(err.code, 'BAD_REQUEST')
    assert.ok(err.message.length < 200)
  })

  await t.test('every op that needs a session answers NOT_LOGGED_IN before login', async () => {
    const c = await connect()
    await c.hello()
    const ops: Array<[string, unknown]> = [
      ['logout', {}], ['create_group', { groupId: 'g1' }], ['join_group', { groupId: 'g1' }], ['leave_group', { groupId: 'g1' }],
      ['list_requests', { groupId: 'g1' }], ['accept_request', { groupId: 'g1', userId: 'bob' }],
      ['reject_request', { groupId: 'g1', userId: 'bob' }], ['list_groups', {}], ['list_files', { groupId: 'g1' }],
      ['upload_file', { groupId: 'g1', meta: fakeMeta('a.txt', 10) }], ['stop_share', { groupId: 'g1', fileName: 'a.txt' }],
      ['reshare', { shares: [] }], ['get_file', { groupId: 'g1', fileName: 'a.txt' }],
    ]
    for (const [op, args] of ops) {
      const err = errorOf(await c.request(op, args))
      assert.equal(err.code, 'NOT_LOGGED_IN', op)
      assert.equal(err.message, 'not logged in: login <user_id> <passwd> first, or create_user')
    }
  })

  await t.test('pipelined requests are all answered, each under its own id', async () => {
    const c = await loggedIn(port)
    clients.push(c)
    const n = 500
    const replies = await Promise.all(Array.from({ length: n }, (_, i) => c.request(i % 2 === 0 ? 'ping' : 'list_groups')))
    assert.equal(replies.filter((r) => r.ok).length, n)
  })

  await t.test('a client that never reads its replies does not delay another client', async () => {
    const slow = await loggedIn(port)
    clients.push(slow)
    // make list_groups replies big: 150 groups, ~10 KiB per reply
    const prefix = `slow${process.pid}`
    await Promise.all(Array.from({ length: 150 }, (_, i) => slow.call('create_group', { groupId: `${prefix}-${i}` })))
    slow.socket.pause() // stops reading: the tracker's replies pile up on its side
    const flood = 2_000 // ~20 MB of replies: far beyond socket buffers and the 1 MiB unread cap
    const floodReplies = Array.from({ length: flood }, () => slow.request('list_groups'))

    const fast = await loggedIn(port)
    clients.push(fast)
    for (let i = 0; i < 20; i++) {
      const started = performance.now()
      await fast.call('ping')
      await fast.call('list_files', { groupId: `${prefix}-0` }).catch(() => {}) // NOT_MEMBER: still a store round trip
      const ms = performance.now() - started
      assert.ok(ms < 1_000, `round trip ${i} took ${ms.toFixed(0)} ms while another client floods`)
    }
    slow.socket.resume()
    const all = await Promise.all(floodReplies)
    assert.equal(all.length, flood)
    for (const r of all) assert.ok(r.ok || errorOf(r).code === 'BUSY')
  })
})

test('a connection that never says hello is dropped after the hello timeout', async (t) => {
  const port = await inProcess(t, { helloTimeoutMs: 100 })
  const idle = await connectRaw(port)
  const started = Date.now()
  await idle.closed
  assert.ok(Date.now() - started < 5_000)
  const ok = await connectRaw(port)
  t.after(() => ok.close())
  await ok.hello()
  // past the hello the timer no longer applies: keep using the connection well beyond the timeout
  const helloAt = Date.now()
  await waitFor(async () => {
    assert.deepEqual(await ok.call('ping'), {})
    return Date.now() - helloAt > 500 ? true : undefined
  }, 'the hello timeout to pass')
})

test('past the per-connection queue, requests get BUSY and the connection keeps working', async (t) => {
  const port = await inProcess(t, { maxInFlight: 1, maxQueued: 4 })
  const c = await connectRaw(port)
  t.after(() => c.close())
  await c.hello()
  // one write: every frame is decoded before any handler runs
  const ids = Array.from({ length: 20 }, (_, i) => 100 + i)
  c.sendRaw(Buffer.concat(ids.map((id) => encodeFrame(Buffer.from(JSON.stringify({ id, op: 'ping', args: {} }))))))
  const replies = await Promise.all(ids.map((id) => c.response(id)))
  const busy = replies.filter((r) => !r.ok)
  assert.ok(busy.length > 0)
  for (const r of busy) assert.equal(errorOf(r).code, 'BUSY')
  assert.ok(replies.filter((r) => r.ok).length >= 4)
  assert.deepEqual(await c.call('ping'), {})
})

test('requests pipelined around login and logout see them in order', async (t) => {
  const port = await inProcess(t)
  const c = await connectRaw(port)
  t.after(() => c.close())
  await c.hello()
  await c.call('create_user', { userId: 'ordered', password: 'pw' })
  const frame = (id: number, op: string, args: Record<string, unknown> = {}): Buffer =>
    encodeFrame(Buffer.from(JSON.stringify({ id, op, args })))
  // one write: login (a scrypt hash, slow) is still running when the frames after it are decoded
  c.sendRaw(Buffer.concat([
    frame(1, 'list_groups'),
    frame(2, 'login', { userId: 'ordered', password: 'pw' }),
    frame(3, 'list_groups'),
    frame(4, 'create_group', { groupId: 'ordered-g' }),
    frame(5, 'logout'),
    frame(6, 'list_groups'),
  ]))
  const [before, login, during, created, logout, after] = await Promise.all([1, 2, 3, 4, 5, 6].map((id) => c.response(id)))
  assert.equal(errorOf(before!).code, 'NOT_LOGGED_IN')
  assert.equal(login!.ok, true)
  assert.equal(during!.ok, true, 'the request after login waited for it')
  assert.equal(created!.ok, true)
  assert.equal(logout!.ok, true)
  assert.equal(errorOf(after!).code, 'NOT_LOGGED_IN', 'the request after logout waited for it')
  // and with no session op pending, requests run at once again
  await c.call('login', { userId: 'ordered', password: 'pw' })
  assert.equal((await c.call('list_groups') as { groups: unknown[] }).groups.length, 1)
})

/** A server the test closes itself, its store, and one client past hello. */
async function serverAndClient (t: TestContext) {
  const store = await openSqliteStore(join(await tmpDir(t), 'tracker.sqlite'))
  defer(t, () => store.close())
  const server = await startTrackerServer({ store, trackerNo: 1, host: '127.0.0.1', port: 0, tls: { identity: await testIdentity() } })
  const c = await connectRaw(server.address.port)
  await c.hello()
  return { store, server, c }
}

test('close() waits for the requests still running', async (t) => {
  const { store, server, c } = await serverAndClient(t)
  // a scrypt hash: still running below; its reply may or may not go out before the socket closes
  const creating = c.request('create_user', { userId: 'closing', password: 'pw' }).catch(() => undefined)
  await waitFor(async () => (server.stats().inFlight > 0 ? true : undefined), 'the request to start')
  await server.close()
  assert.equal(server.stats().inFlight, 0)
  assert.ok((await store.getUser('closing')) !== undefined, 'the running request finished before close() returned')
  await creating
})

test('close() ends every connection and the listener', async (t) => {
  const { server, c } = await serverAndClient(t)
  await server.close()
  await c.closed
  await assert.rejects(connectRaw(server.address.port), /ECONNREFUSED/)
  await server.close() // idempotent
})
