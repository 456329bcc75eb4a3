// An etcd cluster for benchmarks: `size` members on free loopback ports, data dirs under a directory
// the caller owns (and removes after stop()). Built on scripts/etcd-member.ts like the test helper,
// but without node:test: stop() sends SIGTERM (a clean shutdown, not a crash) and SIGKILL after a
// grace period, for a member left without quorum may never finish.

import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { isHealthy, lostPortRace, spawnMember, waitUntil } from '../scripts/etcd-member.ts'
import type { ClusterSpec, MemberProcess, MemberSpec } from '../scripts/etcd-member.ts'

/** A first start includes the first election; a loaded 2-core machine has taken ~3 s. */
const START_TIMEOUT_MS = 20_000
/** Ports chosen by the OS can be taken by someone else before etcd binds them: retry a few times. */
const START_ATTEMPTS = 3
/** The ports of a packaged system etcd: never ours, even by chance. */
const RESERVED_PORTS = new Set([2379, 2380])
const STOP_GRACE_MS = 3_000

export interface BenchEtcd {
  /** host:port of every member's client URL, as `--store etcd://...` takes them. */
  hosts: string[]
  /** `--store` value for a tracker, with its own key prefix. */
  store (prefix: string): string
  /** SIGTERM to every member, SIGKILL after a grace; resolves when all have exited. Idempotent. */
  stop (): Promise<void>
}

// a bench that dies leaves no etcd behind
const live = new Set<MemberProcess>()
process.once('exit', () => { for (const m of live) m.proc.kill('SIGKILL') })

async function freePort (taken: Set<number>): Promise<number> {
  for (;;) {
    const s = createServer()
    s.listen(0, '127.0.0.1')
    await once(s, 'listening')
    const addr = s.address()
    await new Promise((resolve) => s.close(resolve))
    const port = typeof addr === 'object' && addr !== null ? addr.port : 0
    if (port !== 0 && !taken.has(port) && !RESERVED_PORTS.has(port)) {
      taken.add(port)
      return port
    }
  }
}

async function stopMembers (members: MemberProcess[]): Promise<void> {
  await Promise.all(members.map(async (m) => {
    const timer = setTimeout(() => m.proc.kill('SIGKILL'), STOP_GRACE_MS)
    m.proc.kill('SIGTERM')
    await m.exited()
    clearTimeout(timer)
    live.delete(m)
  }))
}

export async function startBenchEtcd (dir: string, size = 3): Promise<BenchEtcd> {
  for (let attempt = 1; ; attempt++) {
    const taken = new Set<number>()
    const specs: MemberSpec[] = []
    for (let i = 1; i <= size; i++) {
      specs.push({ name: `m${i}`, dataDir: join(dir, `etcd-${attempt}`, `m${i}`), clientPort: await freePort(taken), peerPort: await freePort(taken) })
    }
    // error level: at warn, etcd 3.4 logs every peer connection; a failed start shows the tail anyway
    const cluster: ClusterSpec = { members: specs, token: `peershare-bench-${randomBytes(6).toString('hex')}`, logLevel: 'error' }
    const members = specs.map((s) => spawnMember(cluster, s))
    for (const m of members) live.add(m)
    try {
      // all at once: a member of a new cluster waits for its peers before it can be healthy
      await Promise.all(specs.map((s, i) => waitUntil(() => isHealthy(s), members[i]!, `etcd ${s.name} healthy`, START_TIMEOUT_MS)))
    } catch (err) {
      await stopMembers(members)
      if (!members.some((m) => lostPortRace(m.stderr())) || attempt >= START_ATTEMPTS) throw err
      continue
    }
    const hosts = specs.map((s) => `127.0.0.1:${s.clientPort}`)
    let stopped: Promise<void> | undefined
    return {
      hosts,
      store: (prefix) => `etcd://${hosts.join(',')}/${prefix}`,
      stop: () => (stopped ??= stopMembers(members)),
    }
  }
}
