// npm run bench:tracker [-- --connections 100,2000 --seconds 10 --modes tls,plaintext]
// Starts a tracker (embedded SQLite store, fresh data dir) and, as a ratio baseline, a bare echo
// server doing only framing + JSON; drives each with a load generator in a separate process and
// prints requests/s, p50/p99 latency and the tracker's RSS for each connection count. Each mode
// (TLS 1.3, the default; plaintext, the tracker's --insecure-plaintext) gets its own echo baseline
// and its own tracker.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '100,2000' },
    seconds: { type: 'string', default: '10' },
    modes: { type: 'string', default: 'tls,plaintext' },
  },
})
const counts = values.connections.split(',').map(Number)
const modes = values.modes.split(',')
for (const m of modes) if (m !== 'tls' && m !== 'plaintext') throw new Error(`--modes: tls or plaintext, not '${m}'`)
const root = new URL('..', import.meta.url).pathname

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      s.close(() => typeof a === 'object' && a !== null ? resolve(a.port) : reject(new Error('no port')))
    })
  })
}

/** Spawns a process and resolves once a stdout line matches `ready`. */
function start (args: string[], ready: RegExp): Promise<{ proc: ChildProcess, line: string }> {
  const proc = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! })
    rl.on('line', (line) => { if (ready.test(line)) resolve({ proc, line }) })
    proc.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code} before it was ready`)))
  })
}

async function rssOf (pid: number): Promise<{ rss: number, hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (key: string): number => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0)
  return { rss: kb('VmRSS') * 1024, hwm: kb('VmHWM') * 1024 }
}

interface LoadResult { connections: number, rps: number, p50ms: number, p99ms: number, errors: Record<string, number> }

async function load (port: number, n: number, target: ChildProcess, extra: string[] = []): Promise<LoadResult & { peakRss: number }> {
  const proc = spawn(process.execPath, ['bench/tracker-load.ts', '--port', String(port), '--connections', String(n),
    '--seconds', values.seconds, ...extra], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  let peakRss = 0
  const sampler = setInterval(() => {
    rssOf(target.pid!).then((r) => { peakRss = Math.max(peakRss, r.rss) }, () => {})
  }, 250)
  let out = ''
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve))
  clearInterval(sampler)
  if (code !== 0) throw new Error(`load generator exited with ${code}`)
  return { ...(JSON.parse(out.trim().split('\n').at(-1)!) as LoadResult), peakRss }
}

const mb = (b: number): string => (b / 1024 / 1024).toFixed(0) + ' MB'
const row = (cells: string[]): string => cells.map((c, i) => i === 0 ? c.padEnd(22) : c.padStart(12)).join('')

const dir = await mkdtemp(join(tmpdir(), 'peershare-bench-'))
const procs: ChildProcess[] = []
try {
  console.log(`tracker bench: closed loop, 1 request in flight per connection, ${values.seconds} s per run`)
  console.log('mix: 50% list_files, 30% list_groups, 10% get_file, 6% upload_file/stop_share, 4% create_group/leave_group\n')
  console.log(row(['run', 'req/s', 'p50', 'p99', 'vs echo', 'tracker RSS']))
  for (const mode of modes) {
    const plain = mode === 'plaintext'
    const modeArgs = plain ? ['--insecure-plaintext'] : []
    // 1. the machine's limit for this protocol shape: a bare echo server
    const echo = await start(['bench/echo-server.ts', ...(plain ? [] : ['--tls', join(dir, 'echo-id')])], /^echo listening on/)
    procs.push(echo.proc)
    const echoPort = Number(/:(\d+)$/.exec(echo.line)![1])
    const base = await load(echoPort, counts[0]!, echo.proc, ['--echo', ...modeArgs])
    echo.proc.kill('SIGTERM')

    // 2. the tracker
    const port = await freePort()
    const info = join(dir, `trackers-${mode}.txt`)
    await writeFile(info, `127.0.0.1:${port}\n`)
    const tracker = await start(['bin/peershare.js', 'tracker', info, '1', '--data-dir', join(dir, `tracker-${mode}`), ...modeArgs], /listening on/)
    procs.push(tracker.proc)
    const idle = await rssOf(tracker.proc.pid!)
    console.log(row([`echo ${mode}, N=${counts[0]}`, base.rps.toFixed(0), base.p50ms.toFixed(2) + ' ms', base.p99ms.toFixed(2) + ' ms', '1.00', '']))
    for (const n of counts) {
      const r = await load(port, n, tracker.proc, modeArgs)
      console.log(row([`tracker ${mode}, N=${n}`, r.rps.toFixed(0), r.p50ms.toFixed(2) + ' ms', r.p99ms.toFixed(2) + ' ms',
        (r.rps / base.rps).toFixed(2), mb(r.peakRss)]))
      const errs = Object.entries(r.errors)
      if (errs.length > 0) console.log('  errors: ' + errs.map(([k, v]) => `${k}=${v}`).join(' '))
    }
    const end = await rssOf(tracker.proc.pid!)
    console.log(`  tracker ${mode} RSS: idle ${mb(idle.rss)}, peak ${mb(end.hwm)}`)
    tracker.proc.kill('SIGTERM')
  }
  console.log('\ntargets: >= 20000 req/s at N=100 with p99 < 10 ms; 2000 connections under 300 MB RSS')
} finally {
  for (const p of procs) p.kill('SIGTERM')
  await rm(dir, { recursive: true, force: true })
}
