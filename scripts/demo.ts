// `npm run demo [-- --size 256M]`: the whole system in one command, on loopback. Starts a tracker and
// three real clients (alice, carol, bob) in --json mode, shares one generated file from alice and
// carol, downloads it with bob while showing progress, checks it against the original's SHA-1 and
// prints how many pieces came from each peer. Everything lives in one temp dir, removed on exit
// (Ctrl-C included); any failure ends with one clear line and a non-zero exit.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { finished } from 'node:stream/promises'
import { parseArgs } from 'node:util'
import { startClient } from '../test/helpers/client.ts'
import type { StartedClient } from '../test/helpers/client.ts'
import { ROOT, freePort, trackerCommand, waitForLine } from '../test/helpers/tracker.ts'
import { parseSize } from './size.ts'

const POLL_MS = 200
const CHUNK_BYTES = 1 << 20
const MB = 1e6
/** A download that makes no progress for this long is reported as stuck rather than waited on forever. */
const STALL_MS = 60_000

const say = (line: string): void => { process.stdout.write(line + '\n') }

// Cleanups run in reverse order at exit: the test helpers' `t.after` contract, reused here.
const cleanups: Array<() => unknown> = []
const scope = { after: (fn: () => unknown) => { cleanups.push(fn) } }
let cleaning: Promise<void> | undefined
function cleanup (): Promise<void> {
  cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) {
      try { await fn() } catch { /* best effort: the rest must still run */ }
    }
  })()
  return cleaning
}

function fail (message: string, code = 1): never {
  // once cleanup has begun (Ctrl-C, or an earlier failure) the children dying is expected, not news
  if (cleaning === undefined) {
    process.stderr.write(`\ndemo failed: ${message}\n`)
    void cleanup().finally(() => process.exit(code))
  }
  // keep the event loop from continuing the demo while cleanup runs
  throw new DemoAborted()
}
class DemoAborted extends Error {}


/** Streams `size` random bytes to `path` (never the whole file in memory); returns its SHA-1 hex. */
async function generateFile (path: string, size: number): Promise<string> {
  const hash = createHash('sha1')
  const out = createWriteStream(path)
  let left = size
  while (left > 0) {
    const chunk = randomBytes(Math.min(CHUNK_BYTES, left))
    hash.update(chunk)
    left -= chunk.length
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()))
  }
  out.end()
  await finished(out)
  return hash.digest('hex')
}

async function sha1File (path: string): Promise<string> {
  const hash = createHash('sha1')
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK_BYTES })) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

async function startTrackerProcess (dir: string): Promise<{ infoFile: string, addr: string }> {
  const port = await freePort()
  const addr = `127.0.0.1:${port}`
  const infoFile = join(dir, 'tracker_info.txt')
  await writeFile(infoFile, `${addr}\n`)
  const child: ChildProcess = spawn(process.execPath, trackerCommand([infoFile, '1', '--data-dir', join(dir, 'tracker')]), {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  scope.after(() => stopProcess(child))
  await waitForLine(child, /^tracker \d+ listening on /, () => stderr)
  child.once('exit', (code, signal) => {
    if (stoppedBySignal(code, signal)) interrupted()
    else if (cleaning === undefined) fail(`the tracker exited (code ${code}, signal ${signal})${stderr === '' ? '' : `:\n${stderr}`}`)
  })
  return { infoFile, addr }
}

/**
 * Ctrl-C in a terminal reaches the whole process group: the tracker and the clients stop cleanly on
 * SIGINT (exit code 0), possibly before our own SIGINT handler runs. That is an interruption, not a
 * failure to report (they never exit cleanly otherwise: stdin stays open until cleanup).
 */
function stoppedBySignal (code: number | null, signal: NodeJS.Signals | null): boolean {
  return code === 0 || signal === 'SIGINT'
}

async function stopProcess (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}

async function client (name: string, infoFile: string, dir: string): Promise<StartedClient> {
  const dataDir = join(dir, name)
  await mkdir(dataDir)
  const c = await startClient(scope, { infoFile, dataDir })
  c.proc.once('exit', (code, signal) => {
    if (stoppedBySignal(code, signal)) interrupted()
    else if (cleaning === undefined) fail(`client ${name} exited (code ${code}, signal ${signal}):\n${c.stderr()}`)
  })
  return c
}

interface PeerRow { addr: string, userId: string, pieces: number, connected: boolean }
interface DownloadRow {
  state: string, piecesDone: number, pieces: number, bytesDone: number, bytes: number,
  speedBps: number, peers: PeerRow[], error?: { code: string, message: string }
}

/** `rateBps`: the client's own speed estimate, or ours from the last poll while it has none yet. */
function bar (d: DownloadRow, rateBps: number, elapsedS: number): string {
  const width = 30
  const frac = d.bytes === 0 ? 1 : d.bytesDone / d.bytes
  const filled = Math.round(frac * width)
  const peers = d.peers.filter((p) => p.connected).length
  const avg = elapsedS > 0 ? d.bytesDone / MB / elapsedS : 0
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(1).padStart(5)}%  ` +
    `${(rateBps / MB).toFixed(1).padStart(6)} MB/s (avg ${avg.toFixed(1)})  ${d.piecesDone}/${d.pieces} pieces  ${peers} peers`
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: 'string', default: '256M' } } })
  let size: number
  try { size = parseSize(values.size) } catch (err) { return fail((err as Error).message) }

  const dir = await mkdtemp(join(tmpdir(), 'peershare-demo-'))
  scope.after(() => rm(dir, { recursive: true, force: true }))
  const name = 'demo.bin'
  const source = join(dir, 'share', name)
  await mkdir(join(dir, 'share'))
  await mkdir(join(dir, 'downloads'))

  say(`demo: working in ${dir}`)
  let t0 = performance.now()
  const expected = await generateFile(source, size)
  say(`generated ${name}: ${(size / 2 ** 20).toFixed(1)} MiB of random bytes, SHA-1 ${expected} (${((performance.now() - t0) / 1000).toFixed(1)} s)`)

  const { infoFile, addr } = await startTrackerProcess(dir)
  say(`tracker listening on ${addr}`)
  const [alice, carol, bob] = await Promise.all(['alice', 'carol', 'bob'].map((n) => client(n, infoFile, dir))) as [StartedClient, StartedClient, StartedClient]
  say(`clients: alice ${alice.peerAddr}, carol ${carol.peerAddr}, bob ${bob.peerAddr}`)

  await alice.ok('create_user alice pw-alice')
  await alice.ok('login alice pw-alice')
  await alice.ok('create_group g1')
  t0 = performance.now()
  const upA = await alice.ok(`upload_file ${source} g1`)
  say(`alice created group g1 and shares ${upA.name} (${upA.pieces} pieces, fileId ${upA.fileId}, hashed in ${((performance.now() - t0) / 1000).toFixed(1)} s)`)

  await carol.ok('create_user carol pw-carol')
  await carol.ok('login carol pw-carol')
  await carol.ok('join_group g1')
  await alice.ok('accept_request g1 carol')
  const upC = await carol.ok(`upload_file ${source} g1`)
  if (upC.fileId !== upA.fileId) fail(`carol's fileId ${upC.fileId} differs from alice's ${upA.fileId} for the same content`)
  say('carol joined g1 (accepted by alice) and shares the same file')

  await bob.ok('create_user bob pw-bob')
  await bob.ok('login bob pw-bob')
  await bob.ok('join_group g1')
  await alice.ok('accept_request g1 bob')
  const listed = await bob.ok('list_files g1')
  const entry = (listed.files as Array<{ name: string, sharers: string[], sharersOnline: number }>).find((f) => f.name === name)
  if (entry === undefined) fail(`bob does not see ${name} in g1`)
  say(`bob joined g1 (accepted by alice); ${name} is shared by ${entry.sharers.join(', ')} (${entry.sharersOnline} online)`)

  const target = join(dir, 'downloads')
  const start = performance.now()
  await bob.ok(`download_file g1 ${name} ${target}`)
  say('bob downloads:')
  const tty = process.stdout.isTTY === true
  let last: DownloadRow | undefined
  let lastPrintedTenth = -1
  let lastProgressAt = start
  let lastBytes = -1
  let lastPollAt: number | undefined
  let lastPollBytes = 0
  for (;;) {
    const r = await bob.ok('show_downloads')
    const d = (r.downloads as DownloadRow[])[0]
    if (d === undefined) fail('bob\'s show_downloads lists no download')
    last = d
    const now = performance.now()
    const elapsedS = (now - start) / 1000
    const polledBps = lastPollAt === undefined ? 0 : Math.max(0, d.bytesDone - lastPollBytes) / ((now - lastPollAt) / 1000)
    lastPollAt = now
    lastPollBytes = d.bytesDone
    // a finished download has no current speed: show its average rather than 0
    const rateBps = d.state === 'completed' ? d.bytes / elapsedS : d.speedBps > 0 ? d.speedBps : polledBps
    const line = bar(d, rateBps, elapsedS)
    if (tty) {
      process.stdout.write(`\r${line}\x1b[K`)
    } else {
      // not a terminal: one line per 10% instead of a redrawn bar
      const tenth = Math.floor((d.bytes === 0 ? 1 : d.bytesDone / d.bytes) * 10)
      if (tenth !== lastPrintedTenth) { say(line); lastPrintedTenth = tenth }
    }
    if (d.state === 'failed') { if (tty) say(''); fail(`the download failed: ${d.error === undefined ? 'no reason given' : `${d.error.code} ${d.error.message}`}`) }
    if (d.state === 'completed') break
    if (d.bytesDone !== lastBytes) { lastBytes = d.bytesDone; lastProgressAt = performance.now() }
    if (performance.now() - lastProgressAt > STALL_MS) { if (tty) say(''); fail(`no progress for ${STALL_MS / 1000} s (state ${d.state})`) }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
  if (tty) say('')
  const waited = await bob.ok('wait')
  const done = (waited.downloads as DownloadRow[])[0] ?? last
  const seconds = (performance.now() - start) / 1000

  const downloaded = join(target, name)
  const got = await sha1File(downloaded)
  if (got !== expected) fail(`${downloaded} has SHA-1 ${got}, the original ${expected}`)
  say(`verified: ${downloaded} has the original's SHA-1 ${expected}`)

  say('pieces per peer:')
  const owners = new Map([[alice.peerAddr, 'alice'], [carol.peerAddr, 'carol']])
  let total = 0
  for (const p of done.peers) {
    total += p.pieces
    const pct = done.pieces === 0 ? 0 : (p.pieces / done.pieces) * 100
    say(`  ${p.addr.padEnd(22)} ${(p.userId || owners.get(p.addr) || '?').padEnd(8)} ${String(p.pieces).padStart(6)} pieces  ${pct.toFixed(1).padStart(5)}%`)
  }
  if (total !== done.pieces) say(`  (${total} pieces counted over peers, ${done.pieces} in the file: re-requested or duplicate blocks)`)
  say(`done: ${(size / MB).toFixed(1)} MB in ${seconds.toFixed(2)} s = ${(size / MB / seconds).toFixed(1)} MB/s`)
}

function interrupted (): void {
  if (cleaning !== undefined) return
  process.stderr.write('\ninterrupted; stopping the tracker and clients, removing the temp dir\n')
  void cleanup().finally(() => process.exit(130))
}
process.once('SIGINT', interrupted)
process.once('SIGTERM', () => { void cleanup().finally(() => process.exit(143)) })
process.on('uncaughtException', (err) => {
  if (err instanceof DemoAborted) return
  try { fail(err.message) } catch { /* DemoAborted: cleanup is under way */ }
})

try {
  await main()
  await cleanup()
} catch (err) {
  if (!(err instanceof DemoAborted)) {
    try { fail((err as Error).message) } catch { /* DemoAborted: cleanup is under way, it exits */ }
  }
}
