// Parallel download between real client processes (--json) and a real tracker: one and three
// sharers, a sharer killed mid-download, two downloads at once, a downloader serving a third client
// before it has finished, and the refusals. Mid-download moments are made deterministic with
// --upload-limit on the sharers and waits on show_downloads progress, never sleeps.

import assert from 'node:assert/strict'
import { mkdir, open, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import type { Holder } from '../../src/protocol/control.ts'
import { runPeershare } from '../helpers/client.ts'
import { content } from '../helpers/peer.ts'
import { connectRaw, freePort } from '../helpers/tracker.ts'
import { waitFor } from '../helpers/wait.ts'
import {
  MiB, assertComplete, downloadOf, downloads, piecesFrom, piecesTotal, share, swarm, waitPieces,
} from './download-helpers.ts'

test('download from one sharer: byte-identical, [C], and the downloader becomes a sharer', async (t) => {
  const { peers: [alice, bob] } = await swarm(t, [{ user: 'alice' }, { user: 'bob' }])
  const bytes = await share(alice!, 'one.bin', 3 * MiB + 1234)
  const started = await bob!.client.ok(`download_file g1 one.bin ${bob!.dir}`)
  assert.deepEqual(started, { groupId: 'g1', name: 'one.bin', target: join(bob!.dir, 'one.bin'), size: bytes.length, pieces: 7, piecesDone: 0 })
  const [d] = (await bob!.client.ok('wait')).downloads
  await assertComplete(d, bytes)
  assert.deepEqual(d.peers.map((p: { addr: string, userId: string, pieces: number }) => [p.addr, p.userId, p.pieces]),
    [[alice!.client.peerAddr, 'alice', 7]])
  assert.equal(bob!.client.events.some((e) => e.event === 'downloadFinished'), true)
  const { files } = await alice!.client.ok('list_files g1')
  assert.deepEqual(files[0].sharers, ['alice', 'bob'])
  assert.equal(files[0].sharersOnline, 2)
})

test('download from three sharers: pieces from every one of them', async (t) => {
  // capped sharers: none of them can deliver the whole file alone in the time the others need
  const capped = ['--upload-limit', '4MB']
  const { peers } = await swarm(t, [{ user: 'a1', args: capped }, { user: 'a2', args: capped }, { user: 'a3', args: capped }, { user: 'bob' }])
  const sharers = peers.slice(0, 3)
  const bob = peers[3]!
  let bytes!: Buffer
  for (const p of sharers) bytes = await share(p, 'three.bin', 6 * MiB)
  await bob.client.ok(`download_file g1 three.bin ${join(bob.dir, 'renamed.bin')}`)
  const [d] = (await bob.client.ok('wait')).downloads
  assert.equal(d.target, join(bob.dir, 'renamed.bin'))
  await assertComplete(d, bytes)
  for (const p of sharers) assert.ok(piecesFrom(d, p) > 0, `no piece from ${p.user}: ${JSON.stringify(d.peers)}`)
  assert.equal(piecesTotal(d), 12)
})

test('a sharer killed mid-download costs nothing: the others finish it', async (t) => {
  const capped = ['--upload-limit', '4MB']
  const { peers: [alice, carol, bob] } = await swarm(t, [{ user: 'alice', args: capped }, { user: 'carol', args: capped }, { user: 'bob' }])
  const bytes = await share(alice!, 'big.bin', 16 * MiB)
  await share(carol!, 'big.bin', 16 * MiB)
  await bob!.client.ok(`download_file g1 big.bin ${bob!.dir}`)
  const mid = await waitPieces(bob!.client, 'big.bin', 4)
  assert.ok(mid.piecesDone < mid.pieces, 'the download should still be running')
  alice!.client.proc.kill('SIGKILL')
  const [d] = (await bob!.client.ok('wait')).downloads
  await assertComplete(d, bytes)
  assert.ok(piecesFrom(d, carol!) > 0)
  assert.equal(d.peers.find((p: { addr: string }) => p.addr === alice!.client.peerAddr)?.connected ?? false, false)
})

/** Overwrites the file in place with other bytes of the same size (a new mtime). */
async function overwrite (path: string, size: number): Promise<void> {
  const before = await stat(path)
  const fh = await open(path, 'r+')
  await fh.write(content(size, 99), 0, size, 0)
  await fh.close()
  // a coarse-mtime file system could leave the mtime as it was: move it on explicitly
  await utimes(path, before.atime, new Date(before.mtimeMs + 2000))
}

test('a sharer whose file changed on disk stops sharing it at the first request; the download uses the other', async (t) => {
  const { peers: [alice, carol, bob] } = await swarm(t, [{ user: 'alice' }, { user: 'carol' }, { user: 'bob' }])
  const bytes = await share(alice!, 'big.bin', 4 * MiB)
  await share(carol!, 'big.bin', 4 * MiB)
  await overwrite(join(alice!.dir, 'big.bin'), 4 * MiB) // same size, other bytes, new mtime
  await bob!.client.ok(`download_file g1 big.bin ${bob!.dir}`)
  const dropped = await alice!.client.waitEvent('sharesDropped', 20_000)
  assert.deepEqual(dropped.shares, [{ groupId: 'g1', name: 'big.bin', path: join(alice!.dir, 'big.bin'), reason: 'changed' }])
  const [d] = (await bob!.client.ok('wait')).downloads
  await assertComplete(d, bytes)
  assert.equal(piecesFrom(d, alice!), 0)
  // alice withdrew it on the tracker too
  const { files } = await carol!.client.ok('list_files g1')
  assert.deepEqual(files[0].sharers, ['bob', 'carol'])
})

test('two downloads at once, from different files', async (t) => {
  const { peers: [alice, bob] } = await swarm(t, [{ user: 'alice', args: ['--upload-limit', '4MB'] }, { user: 'bob' }])
  const one = await share(alice!, 'first.bin', 4 * MiB, 1)
  const two = await share(alice!, 'second.bin', 4 * MiB + 7, 2)
  await bob!.client.ok(`download_file g1 first.bin ${bob!.dir}`)
  await bob!.client.ok(`download_file g1 second.bin ${bob!.dir}`)
  // both make progress at the same time: each has pieces while neither is done
  await waitFor(async () => {
    const both = await downloads(bob!.client)
    assert.ok(both.every((d) => d.state !== 'completed' && d.state !== 'failed'), JSON.stringify(both))
    return both.every((d) => d.piecesDone > 0) ? true : undefined
  }, 'both downloads to have pieces')
  const done = (await bob!.client.ok('wait')).downloads
  await assertComplete(done.find((d: { file: string }) => d.file === 'first.bin'), one)
  await assertComplete(done.find((d: { file: string }) => d.file === 'second.bin'), two)
})

test('a downloader serves its verified pieces to a third client before it has finished', async (t) => {
  // alice is slow, so bob is still downloading when carol starts, and has pieces carol wants
  const { tracker, peers: [alice, bob, carol] } = await swarm(t, [{ user: 'alice', args: ['--upload-limit', '4MB'] }, { user: 'bob' }, { user: 'carol' }])
  const bytes = await share(alice!, 'movie.bin', 16 * MiB)
  await bob!.client.ok(`download_file g1 movie.bin ${bob!.dir}`)
  await waitPieces(bob!.client, 'movie.bin', 3)

  // the tracker lists bob as a partial holder
  const raw = await connectRaw(tracker.port)
  t.after(() => raw.close())
  await raw.hello('127.0.0.1:1')
  await raw.call('login', { userId: 'carol', password: 'pw-carol' })
  const holders = await waitFor(async () => {
    const r = await raw.call<{ holders: Holder[] }>('get_file', { groupId: 'g1', fileName: 'movie.bin' })
    return r.holders.some((h) => h.userId === 'bob') ? r.holders : undefined
  }, 'bob to be a partial holder')
  assert.deepEqual(holders, [
    { userId: 'alice', peerAddr: alice!.client.peerAddr, complete: true, fingerprint: 'SHA256:' + String(alice!.client.ready.clientId) },
    { userId: 'bob', peerAddr: bob!.client.peerAddr, complete: false, fingerprint: 'SHA256:' + String(bob!.client.ready.clientId) },
  ])
  await raw.close()

  await carol!.client.ok(`download_file g1 movie.bin ${carol!.dir}`)
  const [fromCarol] = (await carol!.client.ok('wait')).downloads
  await assertComplete(fromCarol, bytes)
  assert.ok(piecesFrom(fromCarol, bob!) > 0, `carol got nothing from bob: ${JSON.stringify(fromCarol.peers)}`)
  const [fromBob] = (await bob!.client.ok('wait')).downloads
  await assertComplete(fromBob, bytes)
})

test('refusals: an existing target, a name that is not a plain name, unknown files, non-members', async (t) => {
  const { peers: [alice, bob] } = await swarm(t, [{ user: 'alice' }, { user: 'bob' }])
  const bytes = await share(alice!, 'f.bin', MiB)
  const c = bob!.client
  const code = async (line: string): Promise<string | undefined> => (await c.run(line)).error?.code

  await writeFile(join(bob!.dir, 'taken.bin'), 'mine')
  assert.equal(await code(`download_file g1 f.bin ${join(bob!.dir, 'taken.bin')}`), 'EXISTS')
  await writeFile(join(bob!.dir, 'f.bin'), 'also mine')
  assert.equal(await code(`download_file g1 f.bin ${bob!.dir}`), 'EXISTS') // dir/f.bin exists
  // a .part that is not a download of this file is not taken over
  const other = join(bob!.dir, 'other')
  await mkdir(other)
  await writeFile(join(other, 'f.bin.part'), 'someone else')
  assert.equal(await code(`download_file g1 f.bin ${other}`), 'EXISTS')
  assert.equal(await code(`download_file g1 ../f.bin ${bob!.dir}`), 'BAD_REQUEST')
  assert.equal(await code(`download_file g1 a/b ${bob!.dir}`), 'BAD_REQUEST')
  assert.equal(await code(`download_file g1 missing.bin ${bob!.dir}`), 'NOT_FOUND')
  assert.equal(await code(`download_file nope f.bin ${bob!.dir}`), 'NOT_FOUND')
  assert.equal(await code(`download_file g1 f.bin ${join(bob!.dir, 'no', 'such', 'dir', 'x')}`), 'NOT_FOUND')
  assert.deepEqual(await downloads(c), [], 'a refused download leaves no record')

  // a destination with ../ is the user's own path: fine
  const sub = join(bob!.dir, 'sub')
  await mkdir(sub)
  await c.ok(`download_file g1 f.bin ${sub}/../fresh.bin`)
  await assertComplete((await c.ok('wait')).downloads[0], bytes)
  assert.equal((await downloadOf(c, 'f.bin'))?.target, join(bob!.dir, 'fresh.bin'))

  await c.ok('logout')
  assert.equal(await code(`download_file g1 f.bin ${sub}`), 'NOT_LOGGED_IN')
})

test('--upload-limit: a bad value is a usage error naming the option', async () => {
  const r = await runPeershare(['client', `127.0.0.1:${await freePort()}`, 'nope.txt', '--upload-limit', 'fast'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^peershare: --upload-limit 'fast' is not a rate: use e\.g\. 20MB/)
})

test('show_downloads and wait without downloads: empty lists', async (t) => {
  const { peers: [alice] } = await swarm(t, [{ user: 'alice' }])
  assert.deepEqual(await alice!.client.ok('show_downloads'), { downloads: [] })
  assert.deepEqual(await alice!.client.ok('wait'), { downloads: [] })
})
