// Client start-up and shutdown as a user sees them: refusals with one clear line, usage errors,
// the human (non-JSON) output, and a session that survives a client restart.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import net from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import { runPeershare, startClient } from '../helpers/client.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { freePort, startTracker } from '../helpers/tracker.ts'

test('refuses to start when the peer port is already in use', async (t) => {
  const dir = await tmpDir(t)
  const info = join(dir, 'trackers.txt')
  await writeFile(info, '127.0.0.1:6000\n')
  const taken = net.createServer().listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.after(() => taken.close())
  const { port } = taken.address() as net.AddressInfo
  const r = await runPeershare(['client', `127.0.0.1:${port}`, info, '--data-dir', join(dir, 'c'), '--json'])
  assert.equal(r.code, 1)
  assert.equal(r.stdout, '')
  assert.equal(r.stderr, `peershare: 127.0.0.1:${port} is already in use: pick another port\n`)
})

test('a bad trackers file is refused with the line at fault', async (t) => {
  const dir = await tmpDir(t)
  const info = join(dir, 'trackers.txt')
  await writeFile(info, '# trackers\n127.0.0.1:6000\nnot-a-tracker here\n')
  const port = await freePort()
  const r = await runPeershare(['client', `127.0.0.1:${port}`, info, '--data-dir', join(dir, 'c'), '--json'])
  assert.equal(r.code, 1)
  assert.equal(r.stdout, '')
  assert.match(r.stderr, /^peershare: .*trackers\.txt, line 3: expected "IP:PORT" or "IP PORT", got 'not-a-tracker here'\n$/)

  const missing = await runPeershare(['client', `127.0.0.1:${port}`, join(dir, 'nope.txt'), '--data-dir', join(dir, 'c')])
  assert.equal(missing.code, 1)
  assert.match(missing.stderr, /^peershare: cannot read the trackers file .*nope\.txt: no such file\n$/)
})

test('usage errors: one line on stderr, exit 2, no stack trace', async () => {
  for (const args of [[], ['client'], ['client', '127.0.0.1:7001'], ['client', '127.0.0.1:7001', 'x', '--bogus'], ['frobnicate']]) {
    const r = await runPeershare(args)
    assert.equal(r.code, 2, `peershare ${args.join(' ')}`)
    assert.doesNotMatch(r.stderr, /\n {4}at /, 'no stack trace')
    if (args.length > 0) assert.equal(r.stderr.trim().split('\n').length, 1, `one line for peershare ${args.join(' ')}: ${r.stderr}`)
  }
  const help = await runPeershare(['--help'])
  assert.equal(help.code, 0)
  assert.match(help.stdout, /peershare client <ip>:<port> <tracker_info_file>/)
})

test('without --json and without a terminal: commands from stdin, results for a person', async (t) => {
  const tracker = await startTracker(t)
  const dir = await tmpDir(t)
  const port = await freePort()
  const r = await runPeershare(['client', `127.0.0.1:${port}`, tracker.infoFile, '--data-dir', dir],
    'frobnicate\nlogin onlyone\ncreate_user hu pw\nlogin hu pw\ncreate_group hg\njoin_group hg\nlist_groups\nquit\nlist_groups\n')
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout, [
    "frobnicate: unknown command 'frobnicate': type help to see the commands",
    'login: usage: login <user_id> <passwd>',
    'user hu created: now login hu <passwd>',
    'logged in as hu',
    'group hg created; you own it. Others can join_group hg',
    'join_group: you are already a member of hg',
    'GROUP  OWNER  MEMBERS  YOU',
    'hg     hu           1  owner',
    '',
  ].join('\n'))
})

test('no tracker reachable: the command fails with UNAVAILABLE naming the trackers tried', async (t) => {
  const dir = await tmpDir(t)
  const [p1, p2] = [await freePort(), await freePort()]
  const info = join(dir, 'trackers.txt')
  await writeFile(info, `127.0.0.1:${p1}\n127.0.0.1:${p2}\n`)
  const c = await startClient(t, { infoFile: info })
  assert.equal(c.ready.tracker, null)
  const r = await c.run('list_groups')
  assert.deepEqual(r.error, { code: 'UNAVAILABLE', message: `no tracker reachable (tried 127.0.0.1:${p1}, 127.0.0.1:${p2}): start one with npm start` })
  assert.equal(await c.close(), 0)
})

test('restarting the client process resumes the session (no new login)', async (t) => {
  const tracker = await startTracker(t)
  const dataDir = await tmpDir(t)
  const port = await freePort()
  const first = await startClient(t, { infoFile: tracker.infoFile, dataDir, port })
  await first.ok('create_user rita pw')
  await first.ok('login rita pw')
  await first.ok('create_group rg')
  assert.equal(await first.close(), 0)

  const second = await startClient(t, { infoFile: tracker.infoFile, dataDir, port })
  assert.equal(second.ready.userId, 'rita')
  assert.equal((await second.ok('list_groups')).groups[0].role, 'owner')
  await second.ok('logout')
  assert.equal(await second.close(), 0)

  const third = await startClient(t, { infoFile: tracker.infoFile, dataDir, port })
  assert.equal(third.ready.userId, null)
  assert.equal((await third.run('create_group other')).error?.code, 'NOT_LOGGED_IN')
  assert.equal(await third.close(), 0)
})
