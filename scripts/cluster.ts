// `npm run cluster [-- --no-trackers] [--trackers FILE]`: a local highly-available setup on
// loopback. Starts a 3-member etcd cluster (data in ./data/etcd-<n>, fixed ports so a restart finds
// its members again), then every tracker of tracker_info.txt with `--store etcd://...`. Ctrl-C stops
// the trackers first (they close their clients' presence cleanly while etcd still answers), then the
// etcd members. etcd comes from Debian's etcd-server; when it is missing this says how to install it.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import net from 'node:net'
import { once } from 'node:events'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { INSTALL_COMMAND, findOnPath } from './ensure-etcd.ts'
import { clientUrl, isHealthy, spawnMember, waitUntil } from './etcd-member.ts'
import type { ClusterSpec, MemberProcess, MemberSpec } from './etcd-member.ts'
import { parseTrackerInfo } from '../src/common/tracker-info.ts'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const MEMBERS = 3
/** Client ports 23791-23793, peer ports 23801-23803: below the ephemeral range, and never 2379/2380. */
const CLIENT_PORT_BASE = 23790
const PEER_PORT_BASE = 23800
/** A first start includes the first election; a restart replays the member's log. */
const START_TIMEOUT_MS = 30_000
/** After SIGTERM, how long a child gets before SIGKILL (the last etcd member, without quorum, may never finish). */
const STOP_GRACE_MS = 3_000

const say = (line: string): void => { process.stdout.write(line + '\n') }

function prefixLines (stream: NodeJS.ReadableStream, prefix: string): void {
  let buffered = ''
  stream.setEncoding('utf8')
  stream.on('data', (s: string) => {
    buffered += s
    const lines = buffered.split('\n')
    buffered = lines.pop()!
    for (const line of lines) say(`${prefix} ${line}`)
  })
}

async function portTaken (port: number): Promise<boolean> {
  const server = net.createServer()
  server.listen(port, '127.0.0.1')
  try {
    await once(server, 'listening')
    return false
  } catch {
    return true
  } finally {
    server.close()
  }
}

/** SIGTERM to each running child, SIGKILL after STOP_GRACE_MS; resolves when all have exited. */
async function stopChildren (children: ReadonlySet<ChildProcess>): Promise<void> {
  await Promise.all([...children].map(async (child) => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
    await exited
    clearTimeout(timer)
  }))
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      trackers: { type: 'string', default: 'tracker_info.txt' },
      'no-trackers': { type: 'boolean', default: false },
    },
  })
  if (findOnPath('etcd') === undefined) {
    process.stderr.write('etcd is not installed (not found on the PATH).\n' +
      `Install Debian's etcd server and client:\n  sudo sh -c '${INSTALL_COMMAND}'\n` +
      '(or, as root on Debian: node scripts/ensure-etcd.ts)\n')
    process.exit(1)
  }

  const specs: MemberSpec[] = []
  for (let n = 1; n <= MEMBERS; n++) {
    specs.push({ name: `etcd-${n}`, dataDir: join(ROOT, 'data', `etcd-${n}`), clientPort: CLIENT_PORT_BASE + n, peerPort: PEER_PORT_BASE + n })
  }
  for (const s of specs) {
    for (const port of [s.clientPort, s.peerPort]) {
      if (await portTaken(port)) {
        process.stderr.write(`port ${port} (${s.name}) is taken: is another \`npm run cluster\` running?\n`)
        process.exit(1)
      }
    }
  }
  // a fixed token is right here: the data dirs persist and must rejoin the same cluster
  // error level: at warn, etcd 3.4 logs every peer connection it makes; exits are reported here anyway
  const cluster: ClusterSpec = { members: specs, token: 'peershare-local-cluster', logLevel: 'error' }

  const trackerProcs = new Set<ChildProcess>()
  const etcdProcs = new Set<ChildProcess>()
  let stopping = false
  const stopAll = async (code: number): Promise<never> => {
    if (!stopping) {
      stopping = true
      // trackers first: a tracker whose etcd is gone would wait out its store deadlines on the way
      // out, and its clients would see errors instead of a closed connection
      if (trackerProcs.size > 0) {
        say('stopping the trackers ...')
        await stopChildren(trackerProcs)
      }
      say('stopping the etcd cluster ...')
      await stopChildren(etcdProcs)
    }
    process.exit(code)
  }
  // Children run in process groups of their own (detached): a terminal's Ctrl-C reaches only this
  // script, which stops them in order. Were it to exit any other way, they go with it.
  process.once('exit', () => {
    for (const child of [...trackerProcs, ...etcdProcs]) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
  })
  // a second Ctrl-C while stopping changes nothing: the grace timers end it anyway
  process.on('SIGINT', () => { void stopAll(0) })
  process.on('SIGTERM', () => { void stopAll(0) })

  const members: MemberProcess[] = []
  // only the parent: etcd creates its data dir itself, private (0700)
  await mkdir(join(ROOT, 'data'), { recursive: true })
  for (const s of specs) {
    const member = spawnMember(cluster, s, undefined, { detached: true })
    prefixLines(member.proc.stderr!, `[${s.name}]`)
    etcdProcs.add(member.proc)
    member.proc.once('exit', (code, signal) => {
      if (!stopping) say(`[${s.name}] exited (code ${code}, signal ${signal}); the cluster keeps quorum while 2 of 3 run`)
    })
    members.push(member)
  }
  try {
    await Promise.all(specs.map((s, i) => waitUntil(() => isHealthy(s), members[i]!, `${s.name} healthy`, START_TIMEOUT_MS)))
  } catch (err) {
    process.stderr.write(`the etcd cluster did not start: ${(err as Error).message}\n` +
      `If ./data/etcd-* holds a cluster made with other settings, remove those directories and try again.\n`)
    await stopAll(1)
  }
  const store = 'etcd://' + specs.map((s) => `127.0.0.1:${s.clientPort}`).join(',')
  say(`etcd cluster up: ${specs.map((s) => `${s.name} ${clientUrl(s)}`).join(', ')} (data in ./data/etcd-<n>)`)
  say(`trackers use: --store ${store}`)

  if (values['no-trackers']) {
    say('not starting trackers (--no-trackers). Ctrl-C stops the cluster.')
    return
  }
  const infoFile = values.trackers
  let trackers
  try {
    trackers = parseTrackerInfo(readFileSync(resolve(infoFile), 'utf8'), infoFile)
  } catch (err) {
    process.stderr.write(`cannot read the trackers file ${infoFile}: ${(err as Error).message}\n`)
    return await stopAll(1)
  }
  for (const tr of trackers) {
    const args = ['bin/peershare.js', 'tracker', infoFile, String(tr.no), '--store', store, '--data-dir', join('data', `tracker-${tr.no}`)]
    say(`[tracker ${tr.no}] starting: node ${args.join(' ')}  (${tr.host}:${tr.port})`)
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    trackerProcs.add(child)
    prefixLines(child.stdout!, `[tracker ${tr.no}]`)
    prefixLines(child.stderr!, `[tracker ${tr.no}]`)
    child.once('exit', (code, signal) => {
      if (stopping) return
      // the other trackers and etcd keep serving: clients of this one fail over to them
      say(`[tracker ${tr.no}] exited (code ${code}, signal ${signal}); the others and the etcd cluster keep running. Ctrl-C stops them.`)
    })
  }
  say('Ctrl-C stops everything.')
}

await main()
