// Brute force (issue 5): failed logins slowed per account and per address, others served meanwhile.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { PeershareError } from '../../src/common/errors.ts'
import { openSqliteStore } from '../../src/store/sqlite.ts'
import {
  ACCOUNT_FREE_FAILURES, ADDRESS_FREE_FAILURES, FIRST_LOCK_MS, FORGET_AFTER_MS, LoginThrottle, MAX_LOCK_MS,
} from '../../src/tracker/login-throttle.ts'
import { startTrackerServer } from '../../src/tracker/server.ts'
import { testIdentity } from '../helpers/identity.ts'
import { defer } from '../helpers/cleanup.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { connectRaw } from '../helpers/tracker.ts'

function lockedFor (th: LoginThrottle, user: string, addr: string, now: number): number {
  try {
    th.check(user, addr, now)
    return 0
  } catch (err) {
    assert.ok(err instanceof PeershareError && err.code === 'BUSY')
    return Number(/try again in (\d+) s/.exec(err.message)![1])
  }
}

test('an account: free failures, then locks doubling up to the cap; a success clears it', () => {
  const th = new LoginThrottle()
  let now = 1_000_000
  for (let i = 0; i < ACCOUNT_FREE_FAILURES; i++) th.failed('alice', `10.0.0.${i}`, now)
  assert.equal(lockedFor(th, 'alice', '10.0.0.99', now), 0)
  th.failed('alice', '10.0.0.99', now)
  assert.equal(lockedFor(th, 'alice', '10.0.0.99', now), FIRST_LOCK_MS / 1000)
  assert.equal(lockedFor(th, 'bob', '10.0.0.99', now), 0, 'another account is not slowed')
  now += FIRST_LOCK_MS
  th.failed('alice', '10.0.0.99', now)
  assert.equal(lockedFor(th, 'alice', '10.0.0.99', now), 2 * FIRST_LOCK_MS / 1000)
  for (let i = 0; i < 30; i++) th.failed('alice', '10.0.0.99', now)
  assert.equal(lockedFor(th, 'alice', '10.0.0.99', now), MAX_LOCK_MS / 1000)
  th.succeeded('alice')
  assert.equal(lockedFor(th, 'alice', '10.0.0.98', now), 0)
})

test('an address: more free failures (many users behind one address), then locked for every account', () => {
  const th = new LoginThrottle()
  const now = 5_000_000
  for (let i = 0; i < ADDRESS_FREE_FAILURES; i++) th.failed(`user${i}`, '10.9.9.9', now)
  assert.equal(lockedFor(th, 'fresh', '10.9.9.9', now), 0)
  th.failed('another', '10.9.9.9', now)
  assert.equal(lockedFor(th, 'fresh', '10.9.9.9', now), FIRST_LOCK_MS / 1000)
  assert.equal(lockedFor(th, 'fresh', '10.1.1.1', now), 0, 'other addresses are not slowed')
})

test('counts are forgotten a while after the last failure', () => {
  const th = new LoginThrottle()
  const now = 9_000_000
  for (let i = 0; i <= ACCOUNT_FREE_FAILURES; i++) th.failed('carol', '10.0.0.1', now)
  assert.ok(lockedFor(th, 'carol', '10.0.0.1', now) > 0)
  th.failed('carol', '10.0.0.1', now + FORGET_AFTER_MS + 1) // counted from zero again: a free failure
  assert.equal(lockedFor(th, 'carol', '10.0.0.1', now + FORGET_AFTER_MS + 1), 0)
})

test('a tracker refuses a guessed account at once, even the right password, and keeps serving others', async (t) => {
  const store = await openSqliteStore(join(await tmpDir(t), 'tracker.sqlite'))
  const server = await startTrackerServer({ store, trackerNo: 1, host: '127.0.0.1', port: 0, tls: { identity: await testIdentity() } })
  defer(t, async () => {
    await server.close()
    await store.close()
  })
  const c = await connectRaw(server.address.port)
  t.after(() => c.close())
  await c.hello()
  await c.call('create_user', { userId: 'alice', password: 'right' })
  await c.call('create_user', { userId: 'bob', password: 'bobpw' })
  for (let i = 0; i < ACCOUNT_FREE_FAILURES + 1; i++) {
    const r = await c.request('login', { userId: 'alice', password: `guess${i}` })
    assert.equal(!r.ok && r.error.code, 'BAD_PASSWORD')
  }
  const locked = await c.request('login', { userId: 'alice', password: 'right' })
  assert.equal(!locked.ok && locked.error.code, 'BUSY')
  assert.match(!locked.ok ? locked.error.message : '', /too many failed logins for alice: try again in \d+ s/)
  // a guesser that reconnects is still slowed; bob logs in from the same address meanwhile
  const d = await connectRaw(server.address.port)
  t.after(() => d.close())
  await d.hello()
  const again = await d.request('login', { userId: 'alice', password: 'right' })
  assert.equal(!again.ok && again.error.code, 'BUSY')
  assert.deepEqual((await d.call<{ userId: string }>('login', { userId: 'bob', password: 'bobpw' })).userId, 'bob')
})
