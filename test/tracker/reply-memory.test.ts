// What a tracker holds for its clients' replies: a client that stops reading pins at most about
// the unread cap (its queued requests wait instead of being answered into memory), and big
// list_groups replies go out as slices of one shared list, byte for byte what encoding gives.
// In-process servers on port 0 over a real SQLite store, real TLS sockets.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { encodeFrame } from '../../src/protocol/frame.ts'
import { openSqliteStore } from '../../src/store/sqlite.ts'
import { startTrackerServer } from '../../src/tracker/server.ts'
import type { TrackerServer, TrackerServerOptions } from '../../src/tracker/server.ts'
import { testIdentity } from '../helpers/identity.ts'
import { defer } from '../helpers/cleanup.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { connectRaw } from '../helpers/tracker.ts'
import type { RawClient } from '../helpers/tracker.ts'
import { waitFor } from '../helpers/wait.ts'

async function inProcess (t: TestContext, opts: Partial<TrackerServerOptions> = {}): Promise<TrackerServer> {
  const store = await openSqliteStore(join(await tmpDir(t), 'tracker.sqlite'))
  const server = await startTrackerServer({ store, trackerNo: 1, host: '127.0.0.1', port: 0, tls: { identity: await testIdentity() }, ...opts })
  defer(t, async () => {
    await server.close()
    await store.close()
  })
  return server
}

let userSeq = 0
async function loggedIn (t: TestContext, port: number): Promise<RawClient & { userId: string }> {
  const c = await connectRaw(port)
  t.after(() => c.close())
  assert.equal((await c.hello()).ok, true)
  const userId = `user${process.pid}x${++userSeq}`
  await c.call('create_user', { userId, password: 'pw' })
  await c.call('login', { userId, password: 'pw' })
  return Object.assign(c, { userId })
}

/** Groups with long ids, so list_groups replies are big (~30 KiB for 400). */
async function makeGroups (c: RawClient, prefix: string, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}-${'x'.repeat(20)}`)
  await Promise.all(ids.map((groupId) => c.call('create_group', { groupId })))
  return ids
}

test('a client that stops reading pins about the unread cap of replies: its queued requests wait, then all run', async (t) => {
  const cap = 256 * 1024
  const maxInFlight = 8
  const server = await inProcess(t, { maxUnreadReplyBytes: cap, maxInFlight })
  const port = server.address.port
  const slow = await loggedIn(t, port)
  await makeGroups(slow, 'slow', 400)
  const replyBytes = (await slow.request('list_groups').then((r) => JSON.stringify(r).length))
  assert.ok(replyBytes > 25_000, `list_groups reply of ${replyBytes} bytes`)

  slow.socket.pause() // stops reading: replies pile up in the kernel, then in the tracker
  const flood = 1000 // ~30 MB of replies: beyond loopback socket buffers and far beyond the cap
  const firstId = 10_000
  // after the flood, a request whose effect another client can see: it runs only if all before it did
  const sentinel = `sentinel${process.pid}`
  slow.sendRaw(Buffer.concat([
    ...Array.from({ length: flood }, (_, i) => encodeFrame(Buffer.from(JSON.stringify({ id: firstId + i, op: 'list_groups', args: {} })))),
    encodeFrame(Buffer.from(JSON.stringify({ id: firstId + flood, op: 'create_group', args: { groupId: sentinel } }))),
  ]))
  const other = await loggedIn(t, port)
  const sentinelMade = async (): Promise<boolean> => {
    const { groups } = await other.call<{ groups: Array<{ groupId: string }> }>('list_groups')
    return groups.some((g) => g.groupId === sentinel)
  }

  // settled: nothing runs, and either requests wait (the tracker waits for the client to read) or
  // more than the cap is unread (what answering regardless of the client would give)
  const settled = await waitFor(() => {
    const s = server.stats()
    return s.inFlight === 0 && (s.queued > 0 || s.unreadReplyBytes > cap) ? s : undefined
  }, 'the tracker to stop answering the client that does not read')
  // what started before the cap was seen: at most a window of requests in flight past it
  assert.ok(settled.unreadReplyBytes <= cap + (maxInFlight + 1) * replyBytes,
    `${settled.unreadReplyBytes} bytes of replies unread for a cap of ${cap} (${settled.queued} requests waiting)`)
  assert.ok(settled.queued > 0)
  assert.equal(await sentinelMade(), false)

  slow.socket.resume()
  const replies = await Promise.all(Array.from({ length: flood + 1 }, (_, i) => slow.response(firstId + i)))
  assert.equal(replies.filter((r) => r.ok).length, flood + 1)
  assert.equal(await sentinelMade(), true)
  const s = await waitFor(() => { const x = server.stats(); return x.queued === 0 && x.inFlight === 0 ? x : undefined }, 'the queue to empty')
  assert.equal(s.connections, 2)
})

test('big list_groups replies (shared list with each caller\'s roles) arrive whole and right over a real socket', async (t) => {
  const server = await inProcess(t)
  const port = server.address.port
  const owner = await loggedIn(t, port)
  const ids = await makeGroups(owner, 'big', 400)
  const joiner = await loggedIn(t, port)
  const joined = [ids[0]!, ids[199]!, ids[399]!]
  for (const groupId of joined) await joiner.call('join_group', { groupId })
  await owner.call('accept_request', { groupId: ids[199]!, userId: joiner.userId })
  const outsider = await loggedIn(t, port)

  type Listing = { groups: Array<{ groupId: string, owner: string, members: number, role: string }> }
  const [byOwner, byJoiner, byOutsider] = await Promise.all([owner, joiner, outsider].map((c) => c.call<Listing>('list_groups')))
  const sorted = [...ids].sort()
  for (const l of [byOwner!, byJoiner!, byOutsider!]) assert.deepEqual(l.groups.map((g) => g.groupId), sorted)
  assert.ok(byOwner!.groups.every((g) => g.role === 'owner' && g.owner === owner.userId))
  assert.ok(byOutsider!.groups.every((g) => g.role === 'none'))
  const roles = Object.fromEntries(byJoiner!.groups.filter((g) => g.role !== 'none').map((g) => [g.groupId, g.role]))
  assert.deepEqual(roles, { [ids[0]!]: 'pending', [ids[199]!]: 'member', [ids[399]!]: 'pending' })
  assert.equal(byJoiner!.groups.find((g) => g.groupId === ids[199])!.members, 2)
})

test('an unread cap below the socket\'s highWaterMark does not stall a client that reads', async (t) => {
  // 'drain' only follows a write past the highWaterMark: a smaller cap must not wait for it
  const server = await inProcess(t, { maxUnreadReplyBytes: 1 })
  const c = await loggedIn(t, server.address.port)
  await makeGroups(c, 'tiny', 100)
  const replies = await Promise.all(Array.from({ length: 200 }, () => c.request('list_groups')))
  assert.equal(replies.filter((r) => r.ok).length, 200)
})
