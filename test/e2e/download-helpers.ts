// Shared set-up of the download e2e tests: a real tracker, real client processes in --json mode,
// users logged in and members of one group, files of known content, and probes over show_downloads.

import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { startClient } from '../helpers/client.ts'
import type { StartedClient } from '../helpers/client.ts'
import { content } from '../helpers/peer.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { startTracker } from '../helpers/tracker.ts'
import type { StartedTracker } from '../helpers/tracker.ts'
import { waitFor } from '../helpers/wait.ts'

export const MiB = 1024 * 1024

export interface Peer {
  user: string
  client: StartedClient
  /** A directory of this peer's own (shared files, downloads). */
  dir: string
}

export interface Swarm {
  tracker: StartedTracker
  peers: Peer[]
}

export interface PeerSpec {
  user: string
  /** e.g. ['--upload-limit', '4MB'] */
  args?: string[]
}

/** A tracker, one client per spec (logged in), all members of g1 (created by the first). */
export async function swarm (t: TestContext, specs: PeerSpec[]): Promise<Swarm> {
  const tracker = await startTracker(t)
  const peers = await Promise.all(specs.map(async (s) => ({
    user: s.user,
    client: await startClient(t, { infoFile: tracker.infoFile, extraArgs: s.args ?? [] }),
    dir: await tmpDir(t, `peershare-${s.user}-`),
  })))
  for (const p of peers) {
    await p.client.ok(`create_user ${p.user} pw-${p.user}`)
    await p.client.ok(`login ${p.user} pw-${p.user}`)
  }
  const owner = peers[0]!
  await owner.client.ok('create_group g1')
  for (const p of peers.slice(1)) {
    await p.client.ok('join_group g1')
    await owner.client.ok(`accept_request g1 ${p.user}`)
  }
  return { tracker, peers }
}

/** Writes `size` bytes of seeded content as `name` in the peer's dir and shares it in g1. */
export async function share (p: Peer, name: string, size: number, seed = 7): Promise<Buffer> {
  const bytes = content(size, seed)
  const path = join(p.dir, name)
  await writeFile(path, bytes)
  await p.client.ok(`upload_file ${path} g1`)
  return bytes
}

export interface PeerLine { addr: string, userId: string, pieces: number, connected: boolean }
export interface DownloadLine {
  groupId: string
  file: string
  target: string
  state: string
  piecesDone: number
  pieces: number
  bytesDone: number
  bytes: number
  speedBps: number
  etaS: number | null
  peers: PeerLine[]
  error?: { code: string, message: string }
}

export async function downloads (c: StartedClient): Promise<DownloadLine[]> {
  return (await c.ok('show_downloads')).downloads as DownloadLine[]
}

export async function downloadOf (c: StartedClient, file: string): Promise<DownloadLine | undefined> {
  return (await downloads(c)).find((d) => d.file === file)
}

/** Waits until the download of `file` has at least `pieces` verified pieces (and still runs). */
export async function waitPieces (c: StartedClient, file: string, pieces: number, timeoutMs = 20_000): Promise<DownloadLine> {
  return await waitFor(async () => {
    const d = await downloadOf(c, file)
    if (d?.state === 'failed') assert.fail(`download of ${file} failed: ${d.error?.message}`)
    return d !== undefined && d.piecesDone >= pieces ? d : undefined
  }, `${pieces} pieces of ${file}`, timeoutMs)
}

export async function waitState (c: StartedClient, file: string, state: string, timeoutMs = 30_000): Promise<DownloadLine> {
  return await waitFor(async () => {
    const d = await downloadOf(c, file)
    return d?.state === state ? d : undefined
  }, `${file} to be ${state}`, timeoutMs)
}

/** The download completed and the file on disk is exactly `bytes`, with no .part left. */
export async function assertComplete (d: DownloadLine, bytes: Buffer): Promise<void> {
  assert.equal(d.state, 'completed', d.error?.message)
  assert.equal(d.piecesDone, d.pieces)
  assert.equal(d.bytesDone, bytes.length)
  assert.ok((await readFile(d.target)).equals(bytes), `${d.target} differs from what was shared`)
  await assert.rejects(readFile(`${d.target}.part`), { code: 'ENOENT' })
  await assert.rejects(readFile(`${d.target}.part.resume`), { code: 'ENOENT' })
}

export function piecesFrom (d: DownloadLine, peer: Peer): number {
  return d.peers.filter((x) => x.addr === peer.client.peerAddr).reduce((n, x) => n + x.pieces, 0)
}

export function piecesTotal (d: DownloadLine): number {
  return d.peers.reduce((n, x) => n + x.pieces, 0)
}
