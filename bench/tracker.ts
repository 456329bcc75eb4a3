// npm run bench:tracker [-- --connections 100,2000 --seconds 10 --modes tls,plaintext --store sqlite|etcd --rate R]
// Starts a tracker (embedded SQLite store, fresh data dir) and, as a ratio baseline, a bare echo
// server doing only framing + JSON; drives each with a load generator in a separate process and
// prints requests/s, p50/p99 latency and the tracker's RSS for each connection count. Each mode
// (TLS 1.3, the default; plaintext, the tracker's --insecure-plaintext) gets its own echo baseline
// and its own tracker.
// --store etcd: a 3-member etcd cluster on free loopback ports (temporary data dirs) and, per mode, two
// trackers over it (one trackers file with both, a key prefix of their own); the load generator's
// connections alternate between them, and the setup runs across them. Before the load runs, the
// propagation delay between the two (a group made through one, polled through the other) is measured
// in the same run. At the end the trackers stop first (while etcd still answers), then etcd.
// --rate R: also an open-loop run at R requests/s with the first connection count (tracker-load.ts:
// paced like wrk2, latency counted from when each request was due), for latency at a given load
// rather than at saturation.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { loadOrCreateIdentity } from '../src/security/identity.ts'
import { startBenchEtcd } from './etcd-cluster.ts'
import type { BenchEtcd } from './etcd-cluster.ts'
import { LoadConnection } from './load-client.ts'
import { measurePropagation, summary } from './propagation-probe.ts'
import type { PropagationSamples } from './propagation-probe.ts'

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '100,2000' },
    seconds: { type: 'string', default: '10' },
    modes: { type: 'string', default: 'tls,plaintext' },
    store: { type: 'string', default: 'sqlite' },
    changes: { type: 'string', default: '200' },
    rate: { type: 'string' },
  },
})
const counts = values.connections.split(',').map(Number)
const modes = values.modes.split(',')
for (const m of modes) if (m !== 'tls' && m !== 'plaintext') throw new Error(`--modes: tls or plaintext, not '${m}'`)
const storeKind = values.store
if (storeKind !== 'sqlite' && storeKind !== 'etcd') throw new Error(`--store: sqlite or etcd, not '${storeKind}'`)
const changes = Number(values.changes)
if (!Number.isInteger(changes) || changes < 1) throw new Error(`--changes: a positive count, not '${values.changes}'`)
const rate = values.rate
if (rate !== undefined && !(Number(rate) > 0)) throw new Error(`--rate: requests per second, not '${rate}'`)
const root = new URL('..', import.meta.url).pathname
/** After SIGTERM, how long a child gets before SIGKILL. */
const STOP_GRACE_MS = 3_000

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
  // the tracker starts as users start it (npm start, npx peershare): the command itself, whose
  // first line sets the process up (bin/peershare.js), with this Node first on the PATH
  const proc = args[0] === 'bin/peershare.js'
    ? spawn(join(root, args[0]), args.slice(1), { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` } })
    : spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
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

/** A failure the bench explains in one line (no stack trace). */
class BenchFailure extends Error {}

/** Set while we stop processes ourselves: any other tracker exit is a failure of the run. */
let stopping = false
const died: string[] = []

interface LoadResult {
  connections: number, requests: number, rps: number, p50ms: number, p99ms: number, errors: Record<string, number>
  /** Cores the load generator itself used while measuring: it shares the machine with the tracker. */
  loadCpuShare?: number
  ops?: Record<string, { share: number, p50ms: number, p99ms: number }>
}

// /proc/<pid>/stat counts CPU time in clock ticks: 100 per second on Linux (USER_HZ)
const TICKS_PER_S = 100

/** CPU time (user + system, every thread) the process has used so far, ms. */
async function cpuMsOf (pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // fields from the 3rd (state) on
  return (Number(fields[11]) + Number(fields[12])) * 1000 / TICKS_PER_S // utime, stime
}

/** Runs the load generator against `ports` (connections spread round-robin); samples each target's RSS. */
async function load (ports: number[], n: number, targets: ChildProcess[], extra: string[] = []): Promise<LoadResult & { peakRss: number[], cpuUsPerReq: number }> {
  const proc = spawn(process.execPath, ['bench/tracker-load.ts', '--port', ports.join(','), '--connections', String(n),
    '--seconds', values.seconds, ...extra], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  const peakRss = targets.map(() => 0)
  const sampler = setInterval(() => {
    targets.forEach((t, i) => { rssOf(t.pid!).then((r) => { peakRss[i] = Math.max(peakRss[i]!, r.rss) }, () => {}) })
  }, 250)
  // the targets' CPU time over the measured window: per request, it does not depend on how busy
  // the machine is the way requests/s does (other work on a shared machine only slows them down)
  const cpuTotal = (): Promise<number> => Promise.all(targets.map((t) => cpuMsOf(t.pid!))).then((ms) => ms.reduce((a, b) => a + b, 0))
  let cpuStart: Promise<number> | undefined
  let cpuEnd: Promise<number> | undefined
  let last = ''
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    if (line === 'measuring') cpuStart = cpuTotal()
    else if (line === 'measured') cpuEnd = cpuTotal()
    else if (line.trim() !== '') last = line
  })
  const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve))
  clearInterval(sampler)
  if (code !== 0) throw new BenchFailure([...died, `the load generator exited with ${code}; its stderr is above`].join('\n'))
  const result = JSON.parse(last) as LoadResult
  const cpuMs = cpuStart === undefined || cpuEnd === undefined ? NaN : await cpuEnd - await cpuStart
  return { ...result, peakRss, cpuUsPerReq: cpuMs * 1000 / result.requests }
}

/** SIGTERM, then SIGKILL after a grace; resolves once the process has exited. */
async function stop (proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return
  const exited = once(proc, 'exit')
  const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_GRACE_MS)
  proc.kill('SIGTERM')
  await exited
  clearTimeout(timer)
}

/** A logged-in bench connection (a fresh user created through the same tracker). */
async function loggedIn (port: number, user: string, identityDir: string | undefined): Promise<LoadConnection> {
  const c = await LoadConnection.open('127.0.0.1', port, identityDir === undefined ? undefined : await loadOrCreateIdentity(identityDir))
  const ok = async (op: string, args: Record<string, unknown>): Promise<void> => {
    const r = await c.request(op, args)
    if (!r.ok) throw new Error(`propagation probe: ${op} through port ${port}: ${r.error?.code} ${r.error?.message}`)
  }
  await ok('hello', { version: 1, clientId: randomBytes(16).toString('hex'), peerAddr: '127.0.0.1:7000' })
  await ok('create_user', { userId: user, password: 'bench-password' })
  await ok('login', { userId: user, password: 'bench-password' })
  return c
}

/** Propagation delay from tracker `from` to tracker `to`: create_group through one, list_groups through the other. */
async function propagation (from: number, to: number, mode: string, plain: boolean): Promise<PropagationSamples> {
  const tag = randomBytes(3).toString('hex')
  const writer = await loggedIn(from, `pw${tag}`, plain ? undefined : join(dir, `probe-w-${mode}`))
  const reader = await loggedIn(to, `pr${tag}`, plain ? undefined : join(dir, `probe-r-${mode}`))
  try {
    return await measurePropagation({
      write: async (groupId) => {
        const r = await writer.request('create_group', { groupId })
        if (!r.ok) throw new Error(`create_group ${groupId}: ${r.error?.code} ${r.error?.message}`)
      },
      visible: async (groupId) => {
        const r = await reader.request('list_groups')
        if (!r.ok) throw new Error(`list_groups: ${r.error?.code} ${r.error?.message}`)
        return (r.result.groups as Array<{ groupId: string }>).some((g) => g.groupId === groupId)
      },
    }, changes, `p${tag}`)
  } finally {
    writer.close()
    reader.close()
  }
}

const mb = (b: number): string => (b / 1024 / 1024).toFixed(0) + ' MB'
const mbs = (bs: number[]): string => bs.map((b) => (b / 1024 / 1024).toFixed(0)).join('+') + ' MB'
const row = (cells: string[]): string => cells.map((c, i) => i === 0 ? c.padEnd(36) : c.padStart(12)).join('')

const dir = await mkdtemp(join(tmpdir(), 'peershare-bench-'))
const procs: ChildProcess[] = []
let etcd: BenchEtcd | undefined
try {
  console.log(`tracker bench: closed loop, 1 request in flight per connection, ${values.seconds} s per run` +
    (rate === undefined ? '' : `; and paced at ${rate} req/s (open loop, latency from when each request was due)`))
  console.log('mix: 50% list_files, 30% list_groups, 10% get_file, 6% upload_file/stop_share, 4% create_group/leave_group')
  if (storeKind === 'etcd') {
    etcd = await startBenchEtcd(dir, 3)
    console.log(`store: etcd, 3 members (${etcd.hosts.join(', ')}), two trackers over it, connections alternate between them`)
  } else {
    console.log('store: sqlite (embedded), one tracker')
  }
  // A first start after an install or an edit compiles the TypeScript, which loads Node's type stripper
  // (~35 MB that stays for the life of that process); later starts use the compile cache
  // (bin/peershare.js). Measure what a tracker is once installed: one throwaway TLS start first.
  {
    const warmPort = await freePort()
    const warmInfo = join(dir, 'trackers-warm-up.txt')
    await writeFile(warmInfo, `127.0.0.1:${warmPort}\n`)
    const warm = await start(['bin/peershare.js', 'tracker', warmInfo, '1', '--data-dir', join(dir, 'tracker-warm-up')], /listening on/)
    await stop(warm.proc)
  }
  console.log('\n' + row(['run', 'req/s', 'p50', 'p99', 'vs echo', 'tracker RSS', 'CPU/req']))
  for (const mode of modes) {
    const plain = mode === 'plaintext'
    const modeArgs = plain ? ['--insecure-plaintext'] : []
    // 1. the machine's limit for this protocol shape: a bare echo server
    const echo = await start(['bench/echo-server.ts', ...(plain ? [] : ['--tls', join(dir, 'echo-id')])], /^echo listening on/)
    procs.push(echo.proc)
    const echoPort = Number(/:(\d+)$/.exec(echo.line)![1])
    const base = await load([echoPort], counts[0]!, [echo.proc], ['--echo', ...modeArgs])
    await stop(echo.proc)

    // 2. the tracker(s): one over SQLite, or two over one etcd (its own key prefix per mode)
    const trackerCount = etcd === undefined ? 1 : 2
    const ports: number[] = []
    for (let t = 0; t < trackerCount; t++) ports.push(await freePort())
    const info = join(dir, `trackers-${mode}.txt`)
    await writeFile(info, ports.map((p) => `127.0.0.1:${p}\n`).join(''))
    const storeArgs = etcd === undefined ? [] : ['--store', etcd.store(`bench-${mode}-${randomBytes(4).toString('hex')}`)]
    const trackers: ChildProcess[] = []
    for (let t = 0; t < trackerCount; t++) {
      const dataDir = join(dir, trackerCount === 1 ? `tracker-${mode}` : `tracker-${mode}-${t + 1}`)
      const tracker = await start(['bin/peershare.js', 'tracker', info, String(t + 1), '--data-dir', dataDir, ...storeArgs, ...modeArgs], /listening on/)
      procs.push(tracker.proc)
      trackers.push(tracker.proc)
      const no = t + 1
      tracker.proc.once('exit', (code, signal) => { if (!stopping) died.push(`tracker ${no} (${mode}) exited during the run (code ${code}, signal ${signal}); its stderr is above`) })
    }
    const idle = await Promise.all(trackers.map((t) => rssOf(t.pid!)))
    const label = etcd === undefined ? `tracker ${mode}` : `etcd×2 ${mode}`
    console.log(row([`echo ${mode}, N=${counts[0]}`, base.rps.toFixed(0), base.p50ms.toFixed(2) + ' ms', base.p99ms.toFixed(2) + ' ms', '1.00', '',
      base.cpuUsPerReq.toFixed(1) + ' µs']))
    // propagation between the two trackers, idle (before the load, which may bring a tracker down), both ways
    if (trackerCount === 2) {
      const ab = await propagation(ports[0]!, ports[1]!, mode, plain)
      const ba = await propagation(ports[1]!, ports[0]!, mode, plain)
      const all = (k: keyof PropagationSamples): number[] => [...ab[k], ...ba[k]]
      console.log([`  propagation ${mode}, idle, ${changes} changes each way (create_group through one tracker, list_groups through the other):`,
        '    ' + summary('write (send → ack)', all('writeMs')),
        '    ' + summary('end to end (send → seen on the other)', all('endToEndMs')),
        '    ' + summary('seen on the other after the ack', all('afterAckMs'))].join('\n'))
    }
    const runs = counts.map((n) => ({ n, paced: false }))
    if (rate !== undefined) runs.splice(1, 0, { n: counts[0]!, paced: true })
    for (const { n, paced } of runs) {
      const r = await load(ports, n, trackers, paced ? [...modeArgs, '--rate', rate!] : modeArgs)
      console.log(row([`${label}, N=${n}${paced ? ` at ${rate}/s` : ''}`, r.rps.toFixed(0), r.p50ms.toFixed(2) + ' ms', r.p99ms.toFixed(2) + ' ms',
        (r.rps / base.rps).toFixed(2), trackerCount === 1 ? mb(r.peakRss[0]!) : mbs(r.peakRss), r.cpuUsPerReq.toFixed(1) + ' µs']))
      if (r.ops !== undefined) {
        console.log('  by operation (share, p50, p99): ' + Object.entries(r.ops).sort((a, b) => b[1].share - a[1].share)
          .map(([op, o]) => `${op} ${(100 * o.share).toFixed(0)}% ${o.p50ms.toFixed(1)}/${o.p99ms.toFixed(1)} ms`).join(', '))
      }
      if (r.loadCpuShare !== undefined) console.log(`  load generator: ${(100 * r.loadCpuShare).toFixed(0)}% of a core (same machine)`)
      const errs = Object.entries(r.errors)
      if (errs.length > 0) console.log('  errors: ' + errs.map(([k, v]) => `${k}=${v}`).join(' '))
      // a dead tracker makes every later figure meaningless: stop here, and say why
      if (died.length > 0) throw new BenchFailure(died.join('\n'))
    }
    const end = await Promise.all(trackers.map((t) => rssOf(t.pid!)))
    trackers.forEach((_t, i) => {
      const who = trackerCount === 1 ? `tracker ${mode}` : `tracker ${i + 1} ${mode}`
      console.log(`  ${who} RSS: idle ${mb(idle[i]!.rss)}, peak ${mb(end[i]!.hwm)}`)
    })
    // trackers first: they end their clients' presence while etcd still answers
    stopping = true
    await Promise.all(trackers.map(stop))
    stopping = false
  }
  console.log('\ntargets: >= 20000 req/s at N=100 with p99 < 10 ms; 2000 connections under 300 MB RSS')
} catch (err) {
  if (!(err instanceof BenchFailure)) throw err
  console.log(`\nbench stopped: ${err.message}`)
  process.exitCode = 1
} finally {
  stopping = true
  await Promise.all(procs.map(stop))
  await etcd?.stop()
  await rm(dir, { recursive: true, force: true })
}
