// get_file over a real tracker (in process, real TLS sockets, real SQLite store): the signed ticket
// is reused while it has more than half its lifetime left, and the membership check still comes
// first — a user who left the group gets no ticket, cached or not.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { decodeTicket, generateTicketSigner } from '../../src/security/tickets.ts'
import { openSqliteStore } from '../../src/store/sqlite.ts'
import { startTrackerServer } from '../../src/tracker/server.ts'
import { defer } from '../helpers/cleanup.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { testIdentity } from '../helpers/identity.ts'
import { connectRaw, fakeMeta } from '../helpers/tracker.ts'
import type { RawClient } from '../helpers/tracker.ts'

const TTL = 60_000

test('get_file reuses its ticket for half its life and never past membership', async (t) => {
  let clock = 1_000_000
  const store = await openSqliteStore(join(await tmpDir(t), 'tracker.sqlite'))
  const server = await startTrackerServer({
    store, trackerNo: 1, host: '127.0.0.1', port: 0, tls: { identity: await testIdentity() },
    ticketSigner: generateTicketSigner(), ticketTtlMs: TTL, now: () => clock,
  })
  const clients: RawClient[] = []
  defer(t, async () => {
    await Promise.all(clients.map((c) => c.close()))
    await server.close()
    await store.close()
  })
  const user = async (userId: string): Promise<RawClient> => {
    const c = await connectRaw(server.address.port)
    clients.push(c)
    assert.equal((await c.hello()).ok, true)
    await c.call('create_user', { userId, password: 'pw' })
    await c.call('login', { userId, password: 'pw' })
    return c
  }
  const alice = await user(`alice${process.pid}`)
  const bob = await user(`bob${process.pid}`)
  await alice.call('create_group', { groupId: 'g1' })
  await alice.call('upload_file', { groupId: 'g1', meta: fakeMeta('a.txt', 1000) })
  await bob.call('join_group', { groupId: 'g1' })
  await alice.call('accept_request', { groupId: 'g1', userId: `bob${process.pid}` })

  type Got = { ticket: string, ticketExpiresAt: number }
  const get = (c: RawClient): Promise<Got> => c.call<Got>('get_file', { groupId: 'g1', fileName: 'a.txt' })

  const first = await get(bob)
  assert.equal(first.ticketExpiresAt, clock + TTL)
  const decoded = decodeTicket(Buffer.from(first.ticket, 'base64'))
  assert.equal(decoded.requester, 'SHA256:' + bob.clientId)
  assert.equal(decoded.expiresAt, first.ticketExpiresAt)

  clock += TTL / 2 - 1
  assert.deepEqual(await get(bob), first, 'reused while more than half its life is left')
  const alices = await get(alice)
  assert.notEqual(alices.ticket, first.ticket, 'another requester gets its own ticket')

  clock += 1
  const renewed = await get(bob)
  assert.equal(renewed.ticketExpiresAt, clock + TTL, 'a fresh ticket once half its life is gone')
  assert.notEqual(renewed.ticket, first.ticket)

  await bob.call('leave_group', { groupId: 'g1' })
  const r = await bob.request('get_file', { groupId: 'g1', fileName: 'a.txt' })
  assert.equal(r.ok, false, 'a user who left gets no (cached) ticket')
  assert.equal((r as { error: { code: string } }).error.code, 'NOT_MEMBER')
})
