// Resume: kill -9 of the downloading client, restart with the same data dir (the saved session is
// resumed), and the download continues from the verified pieces without fetching them again. Also
// logout pausing a download and login resuming it.

import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { Bitfield } from '../../src/common/bitfield.ts'
import { startClient } from '../helpers/client.ts'
import { waitFor } from '../helpers/wait.ts'
import { MiB, assertComplete, downloadOf, piecesTotal, share, swarm, waitPieces, waitState } from './download-helpers.ts'

/** Verified pieces according to the resume record on disk (what a restart trusts). */
async function recordedPieces (target: string, pieces: number): Promise<number> {
  try {
    const v = JSON.parse(await readFile(`${target}.part.resume`, 'utf8')) as { verified: string }
    return Bitfield.fromBuffer(pieces, Buffer.from(v.verified, 'base64')).count()
  } catch {
    return 0 // not written yet, or being replaced: ask again
  }
}

test('kill -9 the downloader, restart: the download resumes from the verified pieces', async (t) => {
  const { tracker, peers: [alice, bob] } = await swarm(t, [{ user: 'alice', args: ['--upload-limit', '4MB'] }, { user: 'bob' }])
  const bytes = await share(alice!, 'big.bin', 16 * MiB)
  const target = join(bob!.dir, 'big.bin')
  await bob!.client.ok(`download_file g1 big.bin ${bob!.dir}`)
  await waitPieces(bob!.client, 'big.bin', 8)
  const kept = await waitFor(async () => {
    const n = await recordedPieces(target, 32)
    return n >= 8 ? n : undefined
  }, 'the resume record to hold 8 pieces')
  bob!.client.proc.kill('SIGKILL')
  await waitFor(() => bob!.client.proc.exitCode !== null || bob!.client.proc.signalCode !== null ? true : undefined, 'bob to die')
  const before = await recordedPieces(target, 32) // the last record written before the kill
  assert.ok(before >= kept && before < 32)

  const port = Number(bob!.client.peerAddr.split(':')[1])
  const again = await startClient(t, { infoFile: tracker.infoFile, dataDir: bob!.client.dataDir, port })
  assert.equal(again.ready.userId, 'bob') // the saved session
  const resumed = await waitFor(async () => {
    const d = await downloadOf(again, 'big.bin')
    return d !== undefined && d.state !== 'waiting' ? d : undefined
  }, 'the download to run again')
  assert.ok(resumed.piecesDone >= before, `resumed with ${resumed.piecesDone} pieces, ${before} were recorded`)
  const d = await waitState(again, 'big.bin', 'completed')
  await assertComplete(d, bytes)
  // pieces given in this run: only those that were not verified on disk before
  assert.equal(piecesTotal(d), 32 - before, JSON.stringify(d.peers))
  const { files } = await alice!.client.ok('list_files g1')
  assert.deepEqual(files[0].sharers, ['alice', 'bob'])
})

test('logout pauses a download, login resumes it', async (t) => {
  const { peers: [alice, bob] } = await swarm(t, [{ user: 'alice', args: ['--upload-limit', '4MB'] }, { user: 'bob' }])
  const bytes = await share(alice!, 'big.bin', 12 * MiB)
  await bob!.client.ok(`download_file g1 big.bin ${bob!.dir}`)
  await waitPieces(bob!.client, 'big.bin', 2)
  await bob!.client.ok('logout')
  assert.deepEqual(await bob!.client.ok('show_downloads'), { downloads: [] }) // nobody logged in
  assert.deepEqual(await bob!.client.ok('wait'), { downloads: [] })
  await bob!.client.ok('login bob pw-bob')
  const d = (await bob!.client.ok('wait')).downloads[0]
  await assertComplete(d, bytes)
})
