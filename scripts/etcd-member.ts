// One etcd member as a child process: the command line for etcd 3.4 (Debian's etcd-server), spawning
// with a bounded stderr tail, and health probes with deadlines. Shared by test/helpers/etcd.ts and
// scripts/cluster.ts; choosing ports and directories, and cleaning up, is left to them.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { INSTALL_COMMAND, findOnPath } from './ensure-etcd.ts'

/**
 * Raft timing. etcd's defaults (100 ms / 1000 ms) make a leader failover take 1-2 s; 50/500 halves
 * that and stays well above loopback round trips. etcd requires election >= 5 × heartbeat.
 */
export const HEARTBEAT_MS = 50
export const ELECTION_MS = 500
/** Each /health probe gets this long: without quorum etcd 3.4 answers false after ~1 s, or hangs. */
const HEALTH_PROBE_MS = 1_500
const POLL_MS = 25
/** Enough of etcd's stderr to explain a failed start; older lines are dropped. */
const STDERR_TAIL_BYTES = 32 * 1024

export interface MemberSpec {
  name: string
  dataDir: string
  clientPort: number
  peerPort: number
}

export interface ClusterSpec {
  members: MemberSpec[]
  /** Distinct per cluster, so a member never joins a stranger's cluster that reused its ports. */
  token: string
  heartbeatMs?: number
  electionMs?: number
  logLevel?: 'debug' | 'info' | 'warn' | 'error'
}

export const clientUrl = (m: MemberSpec): string => `http://127.0.0.1:${m.clientPort}`
export const peerUrl = (m: MemberSpec): string => `http://127.0.0.1:${m.peerPort}`

/** The path of the etcd binary, or an error that says how to install it (never a silent skip). */
export function etcdBinary (): string {
  const bin = findOnPath('etcd')
  if (bin === undefined) {
    throw new Error(`etcd is not on the PATH; install it with: ${INSTALL_COMMAND} (or run: node scripts/ensure-etcd.ts)`)
  }
  return bin
}

/** etcd 3.4 flags for one member of `cluster`. --initial-* only matter on the first start (empty data dir). */
export function memberArgs (cluster: ClusterSpec, m: MemberSpec): string[] {
  const initialCluster = cluster.members.map((x) => `${x.name}=${peerUrl(x)}`).join(',')
  return [
    '--name', m.name,
    '--data-dir', m.dataDir,
    '--listen-client-urls', clientUrl(m),
    '--advertise-client-urls', clientUrl(m),
    '--listen-peer-urls', peerUrl(m),
    '--initial-advertise-peer-urls', peerUrl(m),
    '--initial-cluster', initialCluster,
    '--initial-cluster-state', 'new',
    '--initial-cluster-token', cluster.token,
    '--heartbeat-interval', String(cluster.heartbeatMs ?? HEARTBEAT_MS),
    '--election-timeout', String(cluster.electionMs ?? ELECTION_MS),
    // pre-vote: a member coming back after kill -9 does not depose a healthy leader
    '--pre-vote=true',
    '--logger', 'zap',
    '--log-outputs', 'stderr',
    '--log-level', cluster.logLevel ?? 'warn',
  ]
}

/** etcd reads ETCD_* variables as flags (and etcdctl ETCDCTL_*): a developer's own settings must not leak in. */
export function cleanEnv (env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(env)) {
    if (!k.startsWith('ETCD_') && !k.startsWith('ETCDCTL_')) out[k] = v
  }
  return out
}

export interface MemberProcess {
  proc: ChildProcess
  /** The last STDERR_TAIL_BYTES of etcd's stderr. */
  stderr (): string
  /** Resolves when the process has exited (at once if it already has). */
  exited (): Promise<void>
}

/** `detached`: a process group of its own, so a terminal's Ctrl-C reaches only the parent, which stops it in order. */
export function spawnMember (cluster: ClusterSpec, m: MemberSpec, onStderr?: (chunk: string) => void, spawnOpts: { detached?: boolean } = {}): MemberProcess {
  const proc = spawn(etcdBinary(), memberArgs(cluster, m), { stdio: ['ignore', 'ignore', 'pipe'], env: cleanEnv(), detached: spawnOpts.detached === true })
  let tail = ''
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => {
    tail = (tail + s).slice(-STDERR_TAIL_BYTES)
    onStderr?.(s)
  })
  const exit = once(proc, 'exit').then(() => {}, () => {})
  return {
    proc,
    stderr: () => tail,
    exited: () => (proc.exitCode !== null || proc.signalCode !== null ? Promise.resolve() : exit),
  }
}

/** True when GET /health says {"health":"true"}: the member has a leader and serves a quorum read. */
export async function isHealthy (m: MemberSpec): Promise<boolean> {
  try {
    const res = await fetch(`${clientUrl(m)}/health`, { signal: AbortSignal.timeout(HEALTH_PROBE_MS) })
    const body = await res.json() as { health?: unknown }
    return res.ok && body.health === 'true'
  } catch {
    return false // refused, timed out or not JSON yet: not healthy, the caller polls again
  }
}

/** True when something accepts TCP connections on the member's client port. */
export async function isListening (m: MemberSpec): Promise<boolean> {
  const socket = net.connect({ host: '127.0.0.1', port: m.clientPort })
  try {
    await once(socket, 'connect', { signal: AbortSignal.timeout(HEALTH_PROBE_MS) })
    return true
  } catch {
    return false
  } finally {
    socket.destroy()
  }
}

/**
 * Polls `probe` until it is true, failing early with etcd's stderr when the process exits, and
 * after `timeoutMs` otherwise. The pause between probes is a poll interval, not a synchronisation.
 */
export async function waitUntil (probe: () => Promise<boolean>, proc: MemberProcess, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (proc.proc.exitCode !== null || proc.proc.signalCode !== null) {
      throw new Error(`etcd exited (code ${proc.proc.exitCode}, signal ${proc.proc.signalCode}) before ${what}; stderr:\n${proc.stderr()}`)
    }
    if (await probe()) return
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}; etcd stderr:\n${proc.stderr()}`)
    await sleep(POLL_MS)
  }
}

/** Whether a failed start was a lost race for a port (another process took it between pick and bind). */
export function lostPortRace (stderr: string): boolean {
  return /address already in use/i.test(stderr)
}
