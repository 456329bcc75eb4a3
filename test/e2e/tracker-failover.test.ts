// Losing a tracker of an etcd-backed pair, with real processes: kill -9 while one client downloads
// and another issues commands (download completes, sessions kept, nothing acknowledged lost, the
// 'switched' event said once, presence back through the survivor); and a tracker that accepts TCP
// but never answers (SIGSTOP), which only the client's ping heartbeat can detect; and the text
// shell's one line when it switches.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { startClient } from '../helpers/client.ts'
import type { Reply, StartedClient } from '../helpers/client.ts'
import { content } from '../helpers/peer.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { ROOT, freePort } from '../helpers/tracker.ts'
import { waitFor } from '../helpers/wait.ts'
import { MiB, assertComplete, waitPieces } from './download-helpers.ts'
import { addressOf, startEtcdTrackers } from './etcd-trackers.ts'

async function member (owner: StartedClient, c: StartedClient, user: string, group: string): Promise<void> {
  await c.ok(`create_user ${user} pw-${user}`)
  await c.ok(`login ${user} pw-${user}`)
  await c.ok(`join_group ${group}`)
  // the owner may be on the other tracker: the request reaches it through etcd
  await waitFor(async () => (await owner.run(`accept_request ${group} ${user}`)).ok || undefined, `${user} accepted`, 5_000)
}

test('kill -9 of the tracker in use: download completes, commands go on, sessions kept', async (t) => {
  const { trackers: [t1, t2], fileFor } = await startEtcdTrackers(t, 2)
  const onFirst = await fileFor([0, 1])
  // alice shares, slowly (16 MiB at 4 MB/s: ~4 s), through tracker 2, which survives
  const alice = await startClient(t, { infoFile: await fileFor([1, 0]), extraArgs: ['--upload-limit', '4MB'] })
  const bob = await startClient(t, { infoFile: onFirst })
  const carol = await startClient(t, { infoFile: onFirst })
  // dave knows only tracker 1: when his presence expires, so has every presence tracker 1 held
  const dave = await startClient(t, { infoFile: await fileFor([0]) })
  await alice.ok('create_user alice pw-alice')
  await alice.ok('login alice pw-alice')
  await alice.ok('create_group g1')
  await member(alice, bob, 'bob', 'g1')
  await member(alice, carol, 'carol', 'g1')
  await member(alice, dave, 'dave', 'g1')
  const dir = await tmpDir(t, 'peershare-failover-')
  const bytes = content(16 * MiB, 3)
  await writeFile(join(dir, 'big.bin'), bytes)
  await alice.ok(`upload_file ${join(dir, 'big.bin')} g1`)
  // carol shares through tracker 1 too: her presence must come back through tracker 2
  await writeFile(join(dir, 'carol.bin'), content(1000, 4))
  await carol.ok(`upload_file ${join(dir, 'carol.bin')} g1`)
  await writeFile(join(dir, 'dave.bin'), content(1000, 5))
  await dave.ok(`upload_file ${join(dir, 'dave.bin')} g1`)
  await waitFor(async () => (await bob.run('list_files g1')).result?.files?.length === 3 || undefined, 'the files listed through tracker 1', 5_000)

  await bob.ok(`download_file g1 big.bin ${dir}/bob`)
  const mid = await waitPieces(bob, 'big.bin', 3)
  assert.ok(mid.piecesDone < mid.pieces, 'the download should still be running')

  // carol keeps issuing commands (one at a time, as a user would) across the kill
  const acked: string[] = []
  const failed: Reply[] = []
  let stop = false
  const commands = (async () => {
    for (let i = 0; !stop; i++) {
      const r = await carol.run(`create_group c${i}`)
      if (r.ok) acked.push(r.result.groupId)
      else failed.push(r)
      assert.ok((await carol.run('list_groups')).ok)
    }
  })()
  await waitFor(() => acked.length >= 2 || undefined, 'carol acknowledged before the kill', 10_000)
  const ackedBeforeKill = [...acked]
  await t1!.kill('SIGKILL')

  const [d] = (await bob.ok('wait')).downloads
  await assertComplete(d, bytes)
  stop = true
  await commands

  for (const c of [bob, carol]) {
    const switched = c.events.filter((e) => e.event === 'switched')
    assert.equal(switched.length, 1, JSON.stringify(c.events))
    assert.deepEqual(switched[0], { event: 'switched', tracker: addressOf(t2!), resumed: true })
    assert.equal(c.events.some((e) => e.event === 'sessionLost'), false)
  }
  assert.equal(alice.events.some((e) => e.event === 'switched'), false)
  // only a write in flight at the very moment of the kill may fail, and only as "lost the answer"
  assert.ok(failed.length <= 1, JSON.stringify(failed))
  for (const f of failed) assert.equal(f.error?.code, 'UNAVAILABLE')
  // nothing acknowledged is missing, through the survivor (carol's session works without a login)
  const groups = new Set((await carol.ok('list_groups')).groups.map((g: { groupId: string }) => g.groupId))
  for (const g of ackedBeforeKill) assert.ok(groups.has(g), `${g} acknowledged before the kill, missing after`)
  for (const g of acked) assert.ok(groups.has(g), `${g} acknowledged, missing`)
  assert.ok(acked.length > ackedBeforeKill.length, 'commands succeed after the failover')

  // presence: tracker 1's leases expire (dave, who cannot fail over, goes offline within a few
  // seconds); carol and bob (its download done, now a sharer) are online through tracker 2
  const online = async (name: string): Promise<number | undefined> =>
    (await alice.ok('list_files g1')).files.find((f: { name: string }) => f.name === name)?.sharersOnline
  await waitFor(async () => (await online('dave.bin')) === 0 || undefined, 'the presence held by tracker 1 to expire', 10_000)
  assert.equal(await online('carol.bin'), 1)
  await waitFor(async () => (await online('big.bin')) === 2 || undefined, 'bob sharing big.bin through tracker 2', 5_000)
  for (const c of [alice, bob, carol, dave]) assert.equal(await c.close(), 0)
})

test('a tracker that accepts TCP but never answers (SIGSTOP) is dropped by the heartbeat', async (t) => {
  const { trackers: [t1, t2], fileFor } = await startEtcdTrackers(t, 2)
  const c = await startClient(t, { infoFile: await fileFor([0, 1]) })
  assert.equal(c.ready.tracker, addressOf(t1!))
  await c.ok('create_user dora pw-dora')
  await c.ok('login dora pw-dora')
  await c.ok('create_group before')
  t1!.proc.kill('SIGSTOP')
  t.after(() => { t1!.proc.kill('SIGCONT') })
  const started = Date.now()
  // a read typed right after the stop: sent to the stopped tracker, re-sent after the failover
  const r = await c.ok('list_groups')
  const tookMs = Date.now() - started
  assert.deepEqual(r.groups.map((g: { groupId: string }) => g.groupId), ['before'])
  const switched = await c.waitEvent('switched')
  assert.deepEqual(switched, { event: 'switched', tracker: addressOf(t2!), resumed: true })
  // the request deadline is 10 s; the heartbeat must have caught it well before
  assert.ok(tookMs < 8_000, `failover took ${tookMs} ms`)
  t.diagnostic(`failover from a stopped tracker took ${tookMs} ms`)
  assert.deepEqual(await c.ok('create_group after'), { groupId: 'after' })
  assert.equal(await c.close(), 0)
})

test('the text shell says one short line when it switches trackers', async (t) => {
  const { trackers: [t1, t2], fileFor } = await startEtcdTrackers(t, 2)
  const dataDir = await tmpDir(t, 'peershare-shell-')
  const proc = spawn(process.execPath, [join(ROOT, 'bin', 'peershare.js'), 'client', `127.0.0.1:${await freePort()}`,
    await fileFor([0, 1]), '--data-dir', dataDir], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
  t.after(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL') })
  let stdout = ''
  proc.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  proc.stderr.resume()
  proc.stdin.write('create_user erin pw-erin\nlogin erin pw-erin\n')
  await waitFor(() => stdout.includes('logged in as erin') || undefined, 'the login answered', 15_000)
  await t1!.kill('SIGKILL')
  const line = `(now connected to tracker ${addressOf(t2!)}, session kept)`
  await waitFor(() => stdout.includes(line) || undefined, 'the switch line', 15_000)
  proc.stdin.end('list_groups\n')
  const [code] = await once(proc, 'close') as [number | null]
  assert.equal(code, 0)
  const switchLines = stdout.split('\n').filter((l) => /tracker/i.test(l) && /connect|switch|lost/i.test(l))
  assert.deepEqual(switchLines, [line], stdout)
})
