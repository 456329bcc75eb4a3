import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { PeershareError } from '../../src/common/errors.ts'
import { openSqliteStore } from '../../src/store/sqlite.ts'
import { SESSION_MAX_AGE_MS, hashToken, issueSession, revokeSession, verifySession } from '../../src/tracker/sessions.ts'
import { defer } from '../helpers/cleanup.ts'
import { tmpDir } from '../helpers/tmp.ts'

const CLIENT = 'a'.repeat(32)
const OTHER = 'b'.repeat(32)

async function openStore (t: Parameters<typeof tmpDir>[0]): Promise<Awaited<ReturnType<typeof openSqliteStore>>> {
  const store = await openSqliteStore(join(await tmpDir(t), 'tracker.sqlite'))
  defer(t, () => store.close())
  return store
}

const expired = (err: unknown): boolean =>
  err instanceof PeershareError && err.code === 'NOT_LOGGED_IN' && err.message === 'session expired or revoked: login again'

test('issues a 43-char base64url token and stores only its SHA-256', async (t) => {
  const store = await openStore(t)
  const { token, record } = await issueSession(store, 'alice', CLIENT, 1000)
  assert.match(token, /^[A-Za-z0-9_-]{43}$/)
  assert.equal(record.tokenHash, hashToken(token))
  assert.match(record.tokenHash, /^[0-9a-f]{64}$/)
  assert.equal(await store.getSession(token), undefined, 'the token itself is not a key of the store')
  assert.deepEqual(await store.getSession(record.tokenHash), record)
})

test('verifies a token from the client it was issued to', async (t) => {
  const store = await openStore(t)
  const { token } = await issueSession(store, 'alice', CLIENT, 1000)
  const got = await verifySession(store, token, CLIENT, 2000)
  assert.equal(got.userId, 'alice')
})

test('refuses a token presented by another client, an unknown token, an old one and a revoked one', async (t) => {
  const store = await openStore(t)
  const { token, record } = await issueSession(store, 'alice', CLIENT, 1000)
  await assert.rejects(verifySession(store, token, OTHER, 2000), expired)
  await assert.rejects(verifySession(store, 'x'.repeat(43), CLIENT, 2000), expired)
  await assert.rejects(verifySession(store, token, CLIENT, 1000 + SESSION_MAX_AGE_MS + 1), expired)
  assert.equal(await revokeSession(store, record.tokenHash), true)
  await assert.rejects(verifySession(store, token, CLIENT, 2000), expired)
  assert.equal(await revokeSession(store, record.tokenHash), false)
})

test('two sessions get different tokens', async (t) => {
  const store = await openStore(t)
  const a = await issueSession(store, 'alice', CLIENT, 1)
  const b = await issueSession(store, 'alice', CLIENT, 1)
  assert.notEqual(a.token, b.token)
})
