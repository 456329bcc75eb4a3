import assert from 'node:assert/strict'
import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { defaultDataDir, loadClientId, loadSession, openDataDir, readJson, saveSession, writeJsonAtomic } from '../../src/client/data-dir.ts'
import { tmpDir } from '../helpers/tmp.ts'

test('the default data dir is per peer address under ~/.peershare', () => {
  assert.equal(defaultDataDir('127.0.0.1:7001', '/home/u'), '/home/u/.peershare/client-127.0.0.1-7001')
  assert.equal(defaultDataDir('[::1]:7001', '/home/u'), '/home/u/.peershare/client-1-7001')
})

test('creates the data dir with mode 0700', async (t) => {
  const root = join(await tmpDir(t), 'a', 'b')
  const layout = await openDataDir(root)
  assert.equal(layout.root, root)
  assert.equal((await stat(root)).mode & 0o777, 0o700)
})

test('refuses a data dir path that is a file', async (t) => {
  const dir = await tmpDir(t)
  await writeFile(join(dir, 'f'), 'x')
  await assert.rejects(openDataDir(join(dir, 'f')), { code: 'BAD_REQUEST' })
})

test('the client id is made once and reused', async (t) => {
  const layout = await openDataDir(await tmpDir(t))
  const id = await loadClientId(layout)
  assert.match(id, /^[0-9a-f]{32}$/)
  assert.equal(await loadClientId(layout), id)
  assert.equal((await stat(layout.clientIdFile)).mode & 0o777, 0o600)
})

test('writeJsonAtomic replaces the file and leaves no temp file', async (t) => {
  const dir = await tmpDir(t)
  const path = join(dir, 'x.json')
  await writeJsonAtomic(path, { a: 1 })
  await writeJsonAtomic(path, { a: 2 })
  assert.deepEqual(JSON.parse(await readFile(path, 'utf8')), { a: 2 })
  assert.deepEqual(await readdir(dir), ['x.json'])
})

test('a damaged file is moved aside and reads as missing', async (t) => {
  const dir = await tmpDir(t)
  const path = join(dir, 'x.json')
  await writeFile(path, '{"a": ')
  assert.equal(await readJson(path, (v) => v), undefined)
  const names = await readdir(dir)
  assert.equal(names.length, 1)
  assert.match(names[0]!, /^x\.json\.bad-\d+$/)
  assert.equal(await readJson(join(dir, 'missing.json'), (v) => v), undefined)
})

test('the session is saved with mode 0600 and removed on logout', async (t) => {
  const layout = await openDataDir(await tmpDir(t))
  assert.equal(await loadSession(layout), undefined)
  await saveSession(layout, { userId: 'alice', token: 'tok' })
  assert.deepEqual(await loadSession(layout), { userId: 'alice', token: 'tok' })
  assert.equal((await stat(layout.sessionFile)).mode & 0o777, 0o600)
  await saveSession(layout, undefined)
  assert.equal(await loadSession(layout), undefined)
})
