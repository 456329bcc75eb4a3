// The whole group workflow between three real client processes and a real tracker, over --json.
import assert from 'node:assert/strict'
import { appendFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { startClient } from '../helpers/client.ts'
import type { Reply, StartedClient } from '../helpers/client.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { startTracker } from '../helpers/tracker.ts'

function fileNamed (files: Array<{ name: string }>, name: string): any { // eslint-disable-line @typescript-eslint/no-explicit-any
  return files.find((f) => f.name === name)
}

test('group workflow: requests, sharing, logout/login, leaving with ownership transfer', async (t) => {
  const tracker = await startTracker(t)
  const files = await tmpDir(t)
  const [alice, bob, carol] = await Promise.all([1, 2, 3].map(() => startClient(t, { infoFile: tracker.infoFile }))) as [StartedClient, StartedClient, StartedClient]
  assert.equal(alice.ready.tracker, `127.0.0.1:${tracker.port}`)
  assert.equal(alice.ready.userId, null)

  for (const [c, u] of [[alice, 'alice'], [bob, 'bob'], [carol, 'carol']] as const) {
    await c.ok(`create_user ${u} pw-${u}`)
    assert.deepEqual(await c.ok(`login ${u} pw-${u}`), { userId: u, restored: 0, dropped: [] })
  }
  assert.equal((await bob.run('login bob pw-bob')).error?.code, 'ALREADY_LOGGED_IN')

  await alice.ok('create_group g1')
  const dup = await bob.run('create_group g1')
  assert.equal(dup.error?.code, 'EXISTS')

  assert.deepEqual(await bob.ok('join_group g1'), { groupId: 'g1', status: 'requested' })
  await carol.ok('join_group g1')
  assert.equal((await bob.run('list_files g1')).error?.code, 'NOT_MEMBER')
  assert.equal((await bob.run('list_requests g1')).error?.code, 'NOT_OWNER')

  const reqs = await alice.ok('list_requests g1')
  assert.deepEqual(reqs.requests.map((r: { userId: string }) => r.userId).sort(), ['bob', 'carol'])
  await alice.ok('accept_request g1 bob')
  await alice.ok('reject_request g1 carol')
  assert.deepEqual((await alice.ok('list_requests g1')).requests, [])
  assert.equal((await alice.run('join_group g1')).error?.message, 'you are already a member of g1')

  const role = async (c: StartedClient): Promise<string> => (await c.ok('list_groups')).groups.find((g: { groupId: string }) => g.groupId === 'g1').role
  assert.equal(await role(alice), 'owner')
  assert.equal(await role(bob), 'member')
  assert.equal(await role(carol), 'none')
  assert.equal((await carol.run('list_files g1')).error?.code, 'NOT_MEMBER')

  // alice and bob share the same content under the same name: one file, two sharers
  const content = 'hello peershare\n'.repeat(50_000) // 800,000 bytes: two pieces
  await writeFile(join(files, 'a.txt'), content)
  await writeFile(join(files, 'b.txt'), content)
  const up = await alice.ok(`upload_file ${join(files, 'a.txt')} g1`)
  assert.equal(up.name, 'a.txt')
  assert.equal(up.size, 800_000)
  assert.equal(up.pieces, 2)
  const bobDir = await tmpDir(t)
  await writeFile(join(bobDir, 'a.txt'), content)
  assert.equal((await bob.ok(`upload_file ${join(bobDir, 'a.txt')} g1`)).fileId, up.fileId)
  assert.equal((await carol.run(`upload_file ${join(files, 'b.txt')} g1`)).error?.code, 'NOT_MEMBER')
  assert.equal((await alice.run(`upload_file ${join(files, 'missing')} g1`)).error?.code, 'NOT_FOUND')

  let listed = fileNamed((await bob.ok('list_files g1')).files, 'a.txt')
  assert.deepEqual([listed.size, listed.sharers, listed.sharersOnline], [800_000, ['alice', 'bob'], 2])

  // stop_share makes a file that only alice shared disappear
  await alice.ok(`upload_file ${join(files, 'b.txt')} g1`)
  assert.ok(fileNamed((await bob.ok('list_files g1')).files, 'b.txt'))
  assert.deepEqual(await alice.ok('stop_share g1 b.txt'), { groupId: 'g1', name: 'b.txt', fileRemoved: true })
  assert.equal(fileNamed((await bob.ok('list_files g1')).files, 'b.txt'), undefined)

  // logout: alice's share goes offline; login on the same client restores it
  await writeFile(join(files, 'c.txt'), 'will change')
  await alice.ok(`upload_file ${join(files, 'c.txt')} g1`)
  assert.deepEqual(await alice.ok('logout'), { userId: 'alice' })
  assert.equal((await alice.run('list_files g1')).error?.code, 'NOT_LOGGED_IN')
  listed = fileNamed((await bob.ok('list_files g1')).files, 'a.txt')
  assert.equal(listed.sharersOnline, 1)
  await appendFile(join(files, 'c.txt'), ' and did')
  const back = await alice.ok('login alice pw-alice')
  assert.equal(back.restored, 1)
  assert.deepEqual(back.dropped.map((d: { name: string, reason: string }) => [d.name, d.reason]), [['c.txt', 'changed']])
  listed = fileNamed((await bob.ok('list_files g1')).files, 'a.txt')
  assert.equal(listed.sharersOnline, 2)
  assert.equal(fileNamed((await bob.ok('list_files g1')).files, 'c.txt'), undefined)

  // the owner leaves: bob (the earliest other member) owns g1; bob leaves: g1 is gone
  assert.deepEqual(await alice.ok('leave_group g1'), { groupId: 'g1', newOwner: 'bob', groupDeleted: false })
  assert.equal(await role(bob), 'owner')
  assert.deepEqual((await bob.ok('list_files g1')).files.map((f: { sharers: string[] }) => f.sharers), [['bob']])
  await bob.ok('list_requests g1')
  assert.deepEqual(await bob.ok('leave_group g1'), { groupId: 'g1', newOwner: null, groupDeleted: true })
  assert.equal((await carol.run('join_group g1')).error?.code, 'NOT_FOUND')

  for (const c of [alice, bob, carol]) assert.equal(await c.close(), 0)
})

test('--json: one reply line per command, in order, blank lines ignored, unknown commands refused', async (t) => {
  const tracker = await startTracker(t)
  const c = await startClient(t, { infoFile: tracker.infoFile })
  // all written at once: the replies must still come back one per command, in order
  c.proc.stdin!.write('\n')
  const lines = ['help', 'frobnicate x', 'login onlyone', 'create_user zed pw', 'login zed wrong', 'login zed pw', 'list_groups']
  const [help, unknown, usage, created, bad, good, groups] = await Promise.all(lines.map((l) => c.run(l))) as [Reply, Reply, Reply, Reply, Reply, Reply, Reply]
  assert.ok(help.ok && help.result.commands.some((x: { name: string }) => x.name === 'upload_file'))
  assert.ok(help.result.commands.some((x: { name: string, usage: string }) => x.usage === 'download_file <group_id> <file_name> <destination_path>'))
  assert.deepEqual(unknown, { command: 'frobnicate', ok: false, error: { code: 'BAD_REQUEST', message: "unknown command 'frobnicate': type help to see the commands" } })
  assert.deepEqual(usage, { command: 'login', ok: false, error: { code: 'BAD_REQUEST', message: 'usage: login <user_id> <passwd>' } })
  assert.equal(created.ok, true)
  assert.equal(bad.error?.code, 'BAD_PASSWORD')
  assert.equal(good.ok, true)
  assert.equal(groups.command, 'list_groups')
  assert.equal(await c.close(), 0)
})
