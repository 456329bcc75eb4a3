// npm run bench:download [-- --size 1G --runs 3 --sharers 1,3 --modes tls,plaintext --upload-limit 0 --cpu-prof]
// On loopback: generates a file, measures this machine's own limits on it (sha1sum, cp), then runs
// N sharer processes (bench/peer-share.ts) → 1 downloader process (bench/peer-get.ts), `--runs` times
// per N, and prints the median MB/s, its ratio to sha1sum's throughput, the downloader's peak RSS and
// CPU seconds per GiB for the downloader and each sharer. Each run's time ends when the file has its
// final name (fsync + whole-file hash included). --cpu-prof writes the downloader's profiles to the
// bench directory (kept, and named, at the end); --cpu-prof-sharers the sharers' profiles.
// Modes: tls (the default of real clients: TLS 1.3, pinned certificates, a tracker-signed ticket) and
// plaintext (--insecure-plaintext); the last lines compare them (issue 5: TLS at most 25% slower).
// --upload-limit RATE caps every sharer, written as the client's option is (20MB, 500KB, 0 or none).
//
// npm run bench:download -- --limits [--size 512M --runs 3 --modes plaintext]
// The upload-limit targets of issue 4 instead of the sharer sweep (--sharers and --upload-limit do not
// apply), with the same file, runs and medians:
//  (a) 4 sharers each capped at 20MB → 1 downloader: the median MB/s against the 80 MB/s they can give
//      together (target: at least 90%).
//  (b) 3 unlimited sharers → 1 downloader (T3), and the same 3 plus a fourth capped at 1MB (T4), run
//      alternately so that load from elsewhere on the machine hits both alike: T4/T3 of the medians
//      (target: at most 1.15×), and what the slow sharer delivered.
// Its file defaults to 512 MiB (~7 s a run at 80 MB/s), and its modes to plaintext only.

import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { parseRate } from '../src/cli/rate.ts'
import { encodeFileMeta, fileId } from '../src/protocol/file-meta.ts'
import { hashFile } from '../src/peer/hashing.ts'
import { loadOrCreateIdentity } from '../src/security/identity.ts'
import { loadOrCreateTicketKey } from '../src/security/ticket-key.ts'
import { rawPublicKey, signTicket } from '../src/security/tickets.ts'
import { parseSize } from '../scripts/size.ts'
import { median } from './stats.ts'

// issue 4: the cap of each of the 4 sharers of (a), and of the slow fourth sharer of (b), with the targets
const FAIR_CAP = '20MB'
const FAIR_SHARERS = 4
const FAIR_TARGET = 0.9 // of FAIR_SHARERS × FAIR_CAP
const SLOW_CAP = '1MB'
const FAST_SHARERS = 3
const SLOW_TARGET = 1.15 // T4 / T3 at most

const { values } = parseArgs({
  options: {
    size: { type: 'string' },
    runs: { type: 'string', default: '3' },
    sharers: { type: 'string' },
    'upload-limit': { type: 'string' },
    limits: { type: 'boolean', default: false },
    dir: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    'cpu-prof-sharers': { type: 'boolean', default: false },
    modes: { type: 'string' },
  },
})
const limits = values.limits
if (limits && (values.sharers !== undefined || values['upload-limit'] !== undefined)) {
  fail('--limits runs its own sharers and caps: leave out --sharers and --upload-limit')
}
const size = sizeOption(values.size ?? (limits ? '512M' : '1G'))
const runs = Number(values.runs)
if (!(Number.isInteger(runs) && runs >= 1)) fail(`--runs ${values.runs}: a whole number of runs, at least 1`)
const sharerCounts = (values.sharers ?? '1,3').split(',').map(Number)
if (!sharerCounts.every((n) => Number.isInteger(n) && n >= 1)) fail(`--sharers ${values.sharers}: counts such as 1,3`)
const uploadLimit = rate('--upload-limit', values['upload-limit'] ?? '0')
const fairCap = rate('FAIR_CAP', FAIR_CAP)
const slowCap = rate('SLOW_CAP', SLOW_CAP)
const modes = (values.modes ?? (limits ? 'plaintext' : 'tls,plaintext')).split(',')
for (const m of modes) if (m !== 'tls' && m !== 'plaintext') fail(`--modes: tls or plaintext, not '${m}'`)
const root = new URL('..', import.meta.url).pathname
const GiB = 2 ** 30
const MiB = 2 ** 20
const MB = 1e6

function sizeOption (text: string): number {
  try {
    return parseSize(text)
  } catch (err) {
    return fail((err as Error).message)
  }
}

function fail (message: string): never {
  console.error(`bench:download: ${message}`)
  process.exit(2)
}

function rate (name: string, text: string): number {
  const bps = parseRate(text)
  if (bps === undefined) fail(`${name} ${text}: not a rate (e.g. 20MB, 500KB, 1.5MB, 0 or none)`)
  return bps
}


function timed (cmd: string, args: string[]): number {
  const start = performance.now()
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed`)
  return (performance.now() - start) / 1000
}

const mbps = (bps: number): string => `${(bps / MB).toFixed(bps < 10 * MB ? 1 : 0)} MB/s`
const capText = (bps: number): string => bps === 0 ? 'unlimited' : `capped at ${mbps(bps)}`
const met = (ok: boolean): string => ok ? 'target met' : 'target NOT met'

/**
 * A child speaking one JSON object per stdout line. Other lines (a Node flag's trace, say
 * --trace-gc in NODE_OPTIONS) go to stderr, named by the script, instead of failing the parse.
 */
// The children run with Node's compile cache, as the peershare command does (bin/peershare.js): a
// client does not keep the TypeScript stripper in memory. Each child script runs once first (it stops
// at its usage error) so the first measured run starts with the cache filled, like the later ones.
const childEnv = { ...process.env, NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), 'node-compile-cache') }
for (const script of ['peer-share.ts', 'peer-get.ts']) spawnSync(process.execPath, [join(root, 'bench', script)], { env: childEnv, stdio: 'ignore' })

function child (script: string, args: string[], nodeFlags: string[] = []): { proc: ChildProcess, next: () => Promise<Record<string, unknown>> } {
  const proc = spawn(process.execPath, [...nodeFlags, join(root, 'bench', script), ...args], { stdio: ['pipe', 'pipe', 'inherit'], env: childEnv })
  const lines: string[] = []
  const waiters: Array<(line: string) => void> = []
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    if (!line.startsWith('{')) {
      process.stderr.write(`[${script}] ${line}\n`)
      return
    }
    const w = waiters.shift()
    if (w !== undefined) w(line)
    else lines.push(line)
  })
  const exited = new Promise<never>((_resolve, reject) => proc.once('exit', (code) => reject(new Error(`${script} exited with ${code}`))))
  exited.catch(() => {})
  return {
    proc,
    next: async () => {
      const line = lines.shift() ?? await Promise.race([new Promise<string>((resolve) => waiters.push(resolve)), exited])
      return JSON.parse(line) as Record<string, unknown>
    },
  }
}

const dir = values.dir ?? await mkdtemp(join(tmpdir(), 'peershare-bench-'))
await mkdir(dir, { recursive: true })
const file = join(dir, 'data.bin')
console.log(`bench directory ${dir}; generating ${(size / GiB).toFixed(2)} GiB`)
{
  const fh = await open(file, 'w')
  const chunk = Buffer.allocUnsafe(4 * 2 ** 20)
  for (let at = 0; at < size; at += chunk.length) {
    const n = Math.min(chunk.length, size - at)
    randomFillSync(chunk, 0, n)
    await fh.write(chunk, 0, n, at)
  }
  await fh.close()
}
const { meta, mtimeMs } = await hashFile(file)
const metaPath = join(dir, 'meta.json')
await writeFile(metaPath, JSON.stringify(encodeFileMeta(meta)))

timed('cat', [file]) // warm the page cache so every contender reads from memory
let sha1Rate = 0
if (!limits) { // the limits scenario compares with the caps, not with this machine
  const sha1s = median([1, 2, 3].map(() => timed('sha1sum', [file])))
  const cps = median([1, 2, 3].map(() => {
    const s = timed('cp', [file, join(dir, 'copy.bin')])
    spawnSync('rm', ['-f', join(dir, 'copy.bin')])
    return s
  }))
  sha1Rate = size / sha1s
  console.log(`machine: sha1sum ${(sha1Rate / MB).toFixed(0)} MB/s, cp ${(size / cps / MB).toFixed(0)} MB/s (median of 3)`)
}

// what a tracker and the clients would hold: identities in data dirs, a ticket key, one ticket
const ticketKey = await loadOrCreateTicketKey(join(dir, 'tracker'))
const getterId = join(dir, 'id-getter')
const ticket = signTicket({
  requester: (await loadOrCreateIdentity(getterId)).fingerprint, fileId: fileId(meta), groupId: 'bench', expiresAt: Date.now() + 3600_000,
}, ticketKey).toString('base64')

interface Sharer { proc: ChildProcess, next: () => Promise<Record<string, unknown>>, port: number, fingerprint: string, cap: number }
interface GetResult { seconds: number, transferS: number, cpuUserS: number, cpuSystemS: number, maxRssBytes: number, peers: Array<{ addr: string, pieces: number }> }
interface SharerStats { cpuUserS: number, cpuSystemS: number, maxRssBytes: number, readBytes: number, sentBytes?: number }

/** One sharer process per cap (bytes/s, 0 = none), ready to serve. `tag` names their profiles. */
async function startSharers (mode: string, caps: number[], tag: string): Promise<Sharer[]> {
  const tls = mode === 'tls'
  const started = caps.map((cap, i) => ({
    cap,
    ...child('peer-share.ts', ['--file', file, '--meta', metaPath, '--mtime', String(mtimeMs), '--upload-limit', String(cap),
      ...(tls ? ['--tls-id', join(dir, `id-sharer-${i + 1}`), '--ticket-key', rawPublicKey(ticketKey.publicKey).toString('hex')] : [])],
    values['cpu-prof-sharers'] ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'profiles')}`, `--cpu-prof-name=share-${mode}-${tag}-${i + 1}.cpuprofile`] : []),
  }))
  return await Promise.all(started.map(async (s) => {
    const ready = await s.next()
    return { ...s, port: Number(ready.port), fingerprint: String(ready.fingerprint) }
  }))
}

/** One download from `sharers` (run `r` of the scenario `tag`), its output removed afterwards. */
async function getOnce (mode: string, sharers: Sharer[], tag: string, r: number): Promise<GetResult> {
  const target = join(dir, `out-${tag}-${r}.bin`)
  const tlsArgs = mode === 'tls' ? ['--tls-id', getterId, '--ticket', ticket, '--fingerprints', sharers.map((s) => s.fingerprint).join(',')] : []
  const flags = values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'profiles')}`, `--cpu-prof-name=get-${mode}-${tag}-run${r}.cpuprofile`] : []
  const getter = child('peer-get.ts', ['--meta', metaPath, '--target', target, '--peers', sharers.map((s) => `127.0.0.1:${s.port}`).join(','), ...tlsArgs], flags)
  const res = await getter.next() as unknown as GetResult
  await new Promise((resolve) => getter.proc.once('exit', resolve))
  await rm(target, { force: true })
  return res
}

/** Ends the sharers and prints what each one served and what it cost. */
async function stopSharers (sharers: Sharer[]): Promise<void> {
  const stats = await Promise.all(sharers.map(async (s) => {
    s.proc.stdin!.end()
    return await s.next() as unknown as SharerStats
  }))
  stats.forEach((s, i) => {
    const served = (s.sentBytes ?? s.readBytes) / GiB
    const cap = sharers[i]!.cap === 0 ? '' : ` (${capText(sharers[i]!.cap)})`
    const sent = s.sentBytes === undefined ? '' : `sent ${(s.sentBytes / MiB).toFixed(1)} MiB (read ${(s.readBytes / MiB).toFixed(1)})`
    console.log(`    sharer ${i + 1}${cap}: ${sent === '' ? `read ${(s.readBytes / MiB).toFixed(1)} MiB to serve` : sent}, ` +
      `${((s.cpuUserS + s.cpuSystemS) / Math.max(served, 1e-9)).toFixed(2)} CPU s/GiB served, peak RSS ${(s.maxRssBytes / MiB).toFixed(0)} MiB`)
  })
}

/** Pieces the downloader credited to each peer, e.g. "140+131+127+2". */
const credits = (res: GetResult): string => res.peers.map((p) => p.pieces).join('+')

function runLine (label: string, res: GetResult, extra = ''): void {
  console.log(`  ${label}: ${(size / res.seconds / MB).toFixed(0)} MB/s, ${res.seconds.toFixed(2)} s (${(res.seconds - res.transferS).toFixed(2)} s of it after the last piece), RSS ${(res.maxRssBytes / MiB).toFixed(0)} MiB, ` +
    `pieces per peer ${credits(res)}${extra}`)
}

async function sweep (): Promise<void> {
  const summary: Array<{ mode: string, n: number, rate: number }> = []
  for (const mode of modes) for (const n of sharerCounts) {
    const sharers = await startSharers(mode, Array.from({ length: n }, () => uploadLimit), `${n}sharers`)
    const results: GetResult[] = []
    for (let r = 0; r < runs; r++) {
      const res = await getOnce(mode, sharers, `${n}sharers`, r)
      results.push(res)
      runLine(`${mode}, ${n} sharer(s) run ${r + 1}`, res)
    }
    const rate = size / median(results.map((x) => x.seconds))
    const cpuPerGiB = median(results.map((x) => (x.cpuUserS + x.cpuSystemS) / (size / GiB)))
    const rss = Math.max(...results.map((x) => x.maxRssBytes))
    summary.push({ mode, n, rate })
    console.log(`${mode}: ${n} sharer(s)${uploadLimit === 0 ? '' : ` ${capText(uploadLimit)}`} → 1 downloader, ${(size / GiB).toFixed(2)} GiB, ` +
      `median of ${runs}: ${(rate / MB).toFixed(0)} MB/s = ${(rate / sha1Rate).toFixed(2)}× sha1sum; downloader peak RSS ${(rss / MiB).toFixed(0)} MiB, ` +
      `${cpuPerGiB.toFixed(2)} CPU s/GiB`)
    await stopSharers(sharers)
  }
  for (const n of sharerCounts) {
    const tlsRate = summary.find((s) => s.mode === 'tls' && s.n === n)?.rate
    const plainRate = summary.find((s) => s.mode === 'plaintext' && s.n === n)?.rate
    if (tlsRate !== undefined && plainRate !== undefined) {
      console.log(`TLS cost, ${n} sharer(s): ${(tlsRate / MB).toFixed(0)} vs ${(plainRate / MB).toFixed(0)} MB/s plaintext = ` +
        `${(100 * (1 - tlsRate / plainRate)).toFixed(0)}% lower throughput (target: at most 25%)`)
    }
  }
}

/** (a): FAIR_SHARERS sharers at FAIR_CAP each; the downloader should get nearly their sum. */
async function fairScenario (mode: string): Promise<void> {
  const sharers = await startSharers(mode, Array.from({ length: FAIR_SHARERS }, () => fairCap), 'capped')
  const seconds: number[] = []
  for (let r = 0; r < runs; r++) {
    const res = await getOnce(mode, sharers, 'capped', r)
    seconds.push(res.seconds)
    runLine(`${mode}, ${FAIR_SHARERS} sharers ${capText(fairCap)} run ${r + 1}`, res)
  }
  const rate = size / median(seconds)
  const ceiling = FAIR_SHARERS * fairCap
  console.log(`${mode}: ${FAIR_SHARERS} sharers ${capText(fairCap)} each → 1 downloader, ${(size / MiB).toFixed(0)} MiB, median of ${runs}: ` +
    `${mbps(rate)} = ${(100 * rate / ceiling).toFixed(1)}% of ${mbps(ceiling)} (target: at least ${100 * FAIR_TARGET}%): ${met(rate >= FAIR_TARGET * ceiling)}`)
  await stopSharers(sharers)
}

/** (b): FAST_SHARERS unlimited sharers, without (T3) and with (T4) one more at SLOW_CAP, run alternately. */
async function slowScenario (mode: string): Promise<void> {
  const sharers = await startSharers(mode, [...Array.from({ length: FAST_SHARERS }, () => 0), slowCap], 'slow')
  const fast = sharers.slice(0, FAST_SHARERS)
  const t3: number[] = []
  const t4: number[] = []
  for (let r = 0; r < runs; r++) {
    const without = await getOnce(mode, fast, 'fast', r)
    t3.push(without.seconds)
    runLine(`${mode}, ${FAST_SHARERS} unlimited run ${r + 1}`, without)
    const withSlow = await getOnce(mode, sharers, 'slow', r)
    t4.push(withSlow.seconds)
    const slowPieces = withSlow.peers[FAST_SHARERS]?.pieces ?? 0
    runLine(`${mode}, ${FAST_SHARERS} unlimited + 1 ${capText(slowCap)} run ${r + 1}`, withSlow,
      `; ${(withSlow.seconds / without.seconds).toFixed(2)}× the run before; the slow peer gave ${slowPieces} piece(s)`)
  }
  const m3 = median(t3)
  const m4 = median(t4)
  console.log(`${mode}: ${FAST_SHARERS} unlimited sharers → 1 downloader, ${(size / MiB).toFixed(0)} MiB, median of ${runs}: T3 ${m3.toFixed(2)} s (${mbps(size / m3)}); ` +
    `with a fourth ${capText(slowCap)}: T4 ${m4.toFixed(2)} s (${mbps(size / m4)}); T4/T3 = ${(m4 / m3).toFixed(2)}× (target: at most ${SLOW_TARGET}×): ` +
    met(m4 <= SLOW_TARGET * m3))
  await stopSharers(sharers)
}

if (limits) {
  for (const mode of modes) {
    await fairScenario(mode)
    await slowScenario(mode)
  }
} else {
  await sweep()
}
if (values['cpu-prof'] || values['cpu-prof-sharers']) console.log(`profiles: ${join(dir, 'profiles')} (open in Chrome DevTools → Performance)`)
else if (values.dir === undefined) await rm(dir, { recursive: true, force: true })
