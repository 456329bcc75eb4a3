// npm run bench:download [-- --size 1G --runs 3 --sharers 1,3 --modes tls,plaintext --upload-limit 0 --cpu-prof]
// On loopback: generates a file, measures this machine's own limits on it (sha1sum, cp), then runs
// N sharer processes (bench/peer-share.ts) → 1 downloader process (bench/peer-get.ts), `--runs` times
// per N, and prints the median MB/s, its ratio to sha1sum's throughput, the downloader's peak RSS and
// CPU seconds per GiB for the downloader and each sharer. Each run's time ends when the file has its
// final name (fsync + whole-file hash included). --cpu-prof writes the downloader's profiles to the
// bench directory (kept, and named, at the end); --cpu-prof-sharers the sharers' profiles.
// Modes: tls (the default of real clients: TLS 1.3, pinned certificates, a tracker-signed ticket) and
// plaintext (--insecure-plaintext); the last lines compare them (issue 5: TLS at most 25% slower).

import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { encodeFileMeta, fileId } from '../src/protocol/file-meta.ts'
import { hashFile } from '../src/peer/hashing.ts'
import { loadOrCreateIdentity } from '../src/security/identity.ts'
import { loadOrCreateTicketKey } from '../src/security/ticket-key.ts'
import { rawPublicKey, signTicket } from '../src/security/tickets.ts'

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '1G' },
    runs: { type: 'string', default: '3' },
    sharers: { type: 'string', default: '1,3' },
    'upload-limit': { type: 'string', default: '0' },
    dir: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    'cpu-prof-sharers': { type: 'boolean', default: false },
    modes: { type: 'string', default: 'tls,plaintext' },
  },
})
const size = parseSize(values.size)
const runs = Number(values.runs)
const sharerCounts = values.sharers.split(',').map(Number)
const modes = values.modes.split(',')
for (const m of modes) if (m !== 'tls' && m !== 'plaintext') throw new Error(`--modes: tls or plaintext, not '${m}'`)
const root = new URL('..', import.meta.url).pathname
const GiB = 2 ** 30
const MB = 1e6

function parseSize (text: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMG]?)i?B?$/i.exec(text)
  if (m === null) throw new Error(`--size ${text}: use e.g. 256M or 1G`)
  return Math.round(Number(m[1]) * ({ '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 } as Record<string, number>)[m[2]!.toUpperCase()]!)
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

function timed (cmd: string, args: string[]): number {
  const start = performance.now()
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed`)
  return (performance.now() - start) / 1000
}

/** A child speaking one JSON object per stdout line. */
function child (script: string, args: string[], nodeFlags: string[] = []): { proc: ChildProcess, next: () => Promise<Record<string, unknown>> } {
  const proc = spawn(process.execPath, [...nodeFlags, join(root, 'bench', script), ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines: string[] = []
  const waiters: Array<(line: string) => void> = []
  createInterface({ input: proc.stdout! }).on('line', (line) => {
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
const sha1s = median([1, 2, 3].map(() => timed('sha1sum', [file])))
const cps = median([1, 2, 3].map(() => {
  const s = timed('cp', [file, join(dir, 'copy.bin')])
  spawnSync('rm', ['-f', join(dir, 'copy.bin')])
  return s
}))
const sha1Rate = size / sha1s
console.log(`machine: sha1sum ${(sha1Rate / MB).toFixed(0)} MB/s, cp ${(size / cps / MB).toFixed(0)} MB/s (median of 3)`)

// what a tracker and the clients would hold: identities in data dirs, a ticket key, one ticket
const ticketKey = await loadOrCreateTicketKey(join(dir, 'tracker'))
const getterId = join(dir, 'id-getter')
const ticket = signTicket({
  requester: (await loadOrCreateIdentity(getterId)).fingerprint, fileId: fileId(meta), groupId: 'bench', expiresAt: Date.now() + 3600_000,
}, ticketKey).toString('base64')
const summary: Array<{ mode: string, n: number, rate: number }> = []

for (const mode of modes) for (const n of sharerCounts) {
  const tls = mode === 'tls'
  const sharers = Array.from({ length: n }, (_, i) =>
    child('peer-share.ts', ['--file', file, '--meta', metaPath, '--mtime', String(mtimeMs), '--upload-limit', values['upload-limit'],
      ...(tls ? ['--tls-id', join(dir, `id-sharer-${i + 1}`), '--ticket-key', rawPublicKey(ticketKey.publicKey).toString('hex')] : [])],
    values['cpu-prof-sharers'] ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'profiles')}`, `--cpu-prof-name=share-${mode}-${n}sharers-${i + 1}.cpuprofile`] : []))
  const ready = await Promise.all(sharers.map(async (s) => await s.next()))
  const ports = ready.map((r) => Number(r.port))
  const tlsArgs = tls ? ['--tls-id', getterId, '--ticket', ticket, '--fingerprints', ready.map((r) => String(r.fingerprint)).join(',')] : []
  const results: Array<Record<string, number>> = []
  for (let r = 0; r < runs; r++) {
    const target = join(dir, `out-${n}-${r}.bin`)
    const flags = values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'profiles')}`, `--cpu-prof-name=get-${mode}-${n}sharers-run${r}.cpuprofile`] : []
    const getter = child('peer-get.ts', ['--meta', metaPath, '--target', target, '--peers', ports.map((p) => `127.0.0.1:${p}`).join(','), ...tlsArgs], flags)
    const res = await getter.next() as Record<string, number>
    await new Promise((resolve) => getter.proc.once('exit', resolve))
    await rm(target, { force: true })
    results.push(res)
    console.log(`  ${mode}, ${n} sharer(s) run ${r + 1}: ${(size / res.seconds! / MB).toFixed(0)} MB/s, ${res.seconds!.toFixed(2)} s, RSS ${(res.maxRssBytes! / 2 ** 20).toFixed(0)} MiB`)
  }
  const sharerStats = await Promise.all(sharers.map(async (s) => {
    s.proc.stdin!.end()
    return await s.next() as Record<string, number>
  }))
  const secs = median(results.map((x) => x.seconds!))
  const rate = size / secs
  const cpuPerGiB = median(results.map((x) => (x.cpuUserS! + x.cpuSystemS!) / (size / GiB)))
  const rss = Math.max(...results.map((x) => x.maxRssBytes!))
  summary.push({ mode, n, rate })
  console.log(`${mode}: ${n} sharer(s) → 1 downloader, ${(size / GiB).toFixed(2)} GiB, median of ${runs}: ${(rate / MB).toFixed(0)} MB/s = ` +
    `${(rate / sha1Rate).toFixed(2)}× sha1sum; downloader peak RSS ${(rss / 2 ** 20).toFixed(0)} MiB, ${cpuPerGiB.toFixed(2)} CPU s/GiB`)
  sharerStats.forEach((s, i) => {
    const served = s.servedBytes! / GiB
    console.log(`    sharer ${i + 1}: served ${served.toFixed(2)} GiB, ${((s.cpuUserS! + s.cpuSystemS!) / Math.max(served, 1e-9)).toFixed(2)} CPU s/GiB served, peak RSS ${(s.maxRssBytes! / 2 ** 20).toFixed(0)} MiB`)
  })
}
for (const n of sharerCounts) {
  const tlsRate = summary.find((s) => s.mode === 'tls' && s.n === n)?.rate
  const plainRate = summary.find((s) => s.mode === 'plaintext' && s.n === n)?.rate
  if (tlsRate !== undefined && plainRate !== undefined) {
    console.log(`TLS cost, ${n} sharer(s): ${(tlsRate / MB).toFixed(0)} vs ${(plainRate / MB).toFixed(0)} MB/s plaintext = ` +
      `${(100 * (1 - tlsRate / plainRate)).toFixed(0)}% lower throughput (target: at most 25%)`)
  }
}
if (values['cpu-prof'] || values['cpu-prof-sharers']) console.log(`downloader profiles: ${join(dir, 'profiles')} (open in Chrome DevTools → Performance)`)
else if (values.dir === undefined) await rm(dir, { recursive: true, force: true })
