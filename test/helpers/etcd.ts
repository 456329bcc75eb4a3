// Real etcd clusters for tests: startEtcdCluster spawns 1 or 3 members on free loopback ports with
// temporary data dirs, waits until every member reports healthy, and kills them in t.after. Members
// can be killed (kill -9 by default) and started again with their data, to test failures.
// Needs `etcd` on the PATH (npm test's pretest installs it); without it the test fails, saying how.

import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import {
  clientUrl, isHealthy, isListening, lostPortRace, peerUrl, spawnMember, waitUntil,
} from '../../scripts/etcd-member.ts'
import type { ClusterSpec, MemberProcess, MemberSpec } from '../../scripts/etcd-member.ts'
import { freePort } from './tracker.ts'

/** A first start includes the first election; a loaded 2-core machine has taken ~3 s here. */
const START_TIMEOUT_MS = 20_000
/** Ports chosen by the OS can be taken by someone else before etcd binds them: retry a few times. */
const START_ATTEMPTS = 3
/** The ports of a packaged system etcd: never ours, even by chance. */
const RESERVED_PORTS = new Set([2379, 2380])

export interface EtcdMember {
  name: string
  clientUrl: string
  peerUrl: string
  dataDir: string
  /** True while the member's process runs. */
  readonly running: boolean
  /** Sends `signal` (default SIGKILL, like a crash) and waits for the exit. No-op when not running. */
  kill (signal?: NodeJS.Signals): Promise<void>
  /**
   * Starts the member again with the same name, ports and data. Waits until it is healthy (which
   * needs a quorum of running members), or with `{ wait: 'listening' }` only until its client port
   * accepts connections (for a member that cannot reach quorum on its own).
   */
  start (opts?: { wait?: 'healthy' | 'listening' }): Promise<void>
  /** The tail of the current process's stderr (warn level and above). */
  stderr (): string
}

export interface EtcdCluster {
  /** Client URLs of every member, as the etcd3 client's `hosts` option takes them. */
  endpoints: string[]
  members: EtcdMember[]
  /** Kills every member (idempotent). Also done in t.after. */
  stop (): Promise<void>
}

export interface StartEtcdClusterOptions {
  members?: 1 | 3
  heartbeatMs?: number
  electionMs?: number
}

// A test process that dies leaves no etcd behind: these are killed when it exits.
const live = new Set<MemberProcess>()
process.once('exit', () => {
  for (const m of live) m.proc.kill('SIGKILL')
})

async function pickPort (taken: Set<number>): Promise<number> {
  for (;;) {
    const port = await freePort()
    if (!taken.has(port) && !RESERVED_PORTS.has(port)) {
      taken.add(port)
      return port
    }
  }
}

export async function startEtcdCluster (t: Pick<TestContext, 'after'>, opts: StartEtcdClusterOptions = {}): Promise<EtcdCluster> {
  const size = opts.members ?? 1
  const root = await mkdtemp(join(tmpdir(), 'peershare-etcd-'))
  const members: Member[] = []
  let stopped = false
  const stop = async (): Promise<void> => {
    stopped = true
    await Promise.all(members.map((m) => m.kill('SIGKILL')))
  }
  // one hook, in this order: the processes must be gone before their data dirs are removed
  t.after(async () => {
    await stop()
    await rm(root, { recursive: true, force: true })
  })

  for (let attempt = 1; ; attempt++) {
    const taken = new Set<number>()
    const specs: MemberSpec[] = []
    for (let i = 1; i <= size; i++) {
      specs.push({
        name: `m${i}`,
        dataDir: join(root, `attempt-${attempt}`, `m${i}`),
        clientPort: await pickPort(taken),
        peerPort: await pickPort(taken),
      })
    }
    const cluster: ClusterSpec = {
      members: specs,
      token: `peershare-test-${randomBytes(6).toString('hex')}`,
      heartbeatMs: opts.heartbeatMs,
      electionMs: opts.electionMs,
    }
    members.length = 0
    for (const spec of specs) members.push(new Member(cluster, spec, () => stopped))
    try {
      // all at once: a member of a new cluster waits for its peers before it can be healthy
      await Promise.all(members.map((m) => m.start()))
      break
    } catch (err) {
      const portRace = members.some((m) => lostPortRace(m.stderr()))
      await stop()
      stopped = false
      if (!portRace || attempt >= START_ATTEMPTS) throw err
    }
  }
  return { endpoints: members.map((m) => m.clientUrl), members, stop }
}

class Member implements EtcdMember {
  readonly name: string
  readonly clientUrl: string
  readonly peerUrl: string
  readonly dataDir: string
  #cluster: ClusterSpec
  #spec: MemberSpec
  #current: MemberProcess | undefined
  #stopped: () => boolean

  constructor (cluster: ClusterSpec, spec: MemberSpec, stopped: () => boolean) {
    this.name = spec.name
    this.clientUrl = clientUrl(spec)
    this.peerUrl = peerUrl(spec)
    this.dataDir = spec.dataDir
    this.#cluster = cluster
    this.#spec = spec
    this.#stopped = stopped
  }

  get running (): boolean {
    const p = this.#current?.proc
    return p !== undefined && p.exitCode === null && p.signalCode === null
  }

  stderr (): string {
    return this.#current?.stderr() ?? ''
  }

  async start (opts: { wait?: 'healthy' | 'listening' } = {}): Promise<void> {
    if (this.#stopped()) throw new Error(`etcd cluster already stopped; cannot start ${this.name}`)
    if (this.running) throw new Error(`etcd member ${this.name} is already running`)
    const proc = spawnMember(this.#cluster, this.#spec)
    this.#current = proc
    live.add(proc)
    void proc.exited().then(() => live.delete(proc))
    if (opts.wait === 'listening') {
      await waitUntil(() => isListening(this.#spec), proc, `etcd ${this.name} listening on ${this.clientUrl}`, START_TIMEOUT_MS)
    } else {
      await waitUntil(() => isHealthy(this.#spec), proc, `etcd ${this.name} healthy at ${this.clientUrl}/health`, START_TIMEOUT_MS)
    }
  }

  async kill (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.#current
    if (proc === undefined || !this.running) return
    proc.proc.kill(signal)
    await proc.exited()
  }
}
