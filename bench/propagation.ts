// node bench/propagation.ts [--changes 200] [--members 3|1]
// End-to-end propagation delay between two trackers over one etcd: real etcd members and two real
// tracker processes on loopback (TLS control connections). Each change is a create_group sent
// through tracker 1; a second client polls list_groups through tracker 2 back to back until the
// group shows up. Prints, for the changes in sequence: the write's own latency (send → ack from
// tracker 1), the end-to-end delay (send → first listing through tracker 2 that has it), and how
// long after the ack tracker 2 showed it (negative: tracker 2 saw it before tracker 1's answer
// arrived). The probe's resolution is one list_groups round trip (about a tenth of a ms here).

import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { startEtcdCluster } from '../test/helpers/etcd.ts'
import { connectRaw, startTrackers } from '../test/helpers/tracker.ts'
import type { RawClient } from '../test/helpers/tracker.ts'

const { values } = parseArgs({
  options: {
    changes: { type: 'string', default: '200' },
    members: { type: 'string', default: '3' },
  },
})
const changes = Number(values.changes)
const members = Number(values.members)
if (!Number.isInteger(changes) || changes < 1) throw new Error(`--changes: a positive count, not '${values.changes}'`)
if (members !== 1 && members !== 3) throw new Error(`--members: 1 or 3, not '${values.members}'`)
/** A change not visible by then is reported as lost (and the run fails): the issue asks for 1 s. */
const GIVE_UP_MS = 10_000

// the test helpers start and stop real processes; their cleanups run at the end, in reverse
const cleanups: Array<() => unknown> = []
const ctx = { after: (fn: () => unknown) => { cleanups.push(fn) } }

async function loggedIn (port: number, user: string, create: boolean): Promise<RawClient> {
  const c = await connectRaw(port)
  const hello = await c.hello()
  if (!hello.ok) throw new Error(`hello refused: ${hello.error.message}`)
  if (create) await c.call('create_user', { userId: user, password: 'bench-password' })
  await c.call('login', { userId: user, password: 'bench-password' })
  return c
}

function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

function summary (label: string, samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b)
  const f = (x: number): string => x.toFixed(2).padStart(7)
  return `${label.padEnd(34)} median ${f(percentile(s, 50))} ms   p99 ${f(percentile(s, 99))} ms   max ${f(s[s.length - 1]!)} ms`
}

async function main (): Promise<void> {
  const etcd = await startEtcdCluster(ctx, { members: members as 1 | 3 })
  const store = `etcd://${etcd.endpoints.map((u) => new URL(u).host).join(',')}/bench-${randomBytes(4).toString('hex')}`
  const [t1, t2] = await startTrackers(ctx, 2, { store })
  const writer = await loggedIn(t1!.port, 'writer', true)
  const reader = await loggedIn(t2!.port, 'reader', true)
  const runId = randomBytes(3).toString('hex')
  const writeMs: number[] = []
  const endToEndMs: number[] = []
  const afterAckMs: number[] = []

  for (let i = 0; i < changes; i++) {
    const groupId = `p${runId}-${i}`
    const sent = performance.now()
    let ackAt = 0
    const acked = writer.call('create_group', { groupId }).then(() => { ackAt = performance.now() })
    let seenAt = 0
    while (seenAt === 0) {
      const { groups } = await reader.call<{ groups: Array<{ groupId: string }> }>('list_groups')
      if (groups.some((g) => g.groupId === groupId)) seenAt = performance.now()
      else if (performance.now() - sent > GIVE_UP_MS) throw new Error(`${groupId} not visible through tracker 2 after ${GIVE_UP_MS} ms`)
    }
    await acked
    writeMs.push(ackAt - sent)
    endToEndMs.push(seenAt - sent)
    afterAckMs.push(seenAt - ackAt)
  }

  process.stdout.write(`propagation between two trackers over a ${members}-member etcd on loopback, ${changes} changes (create_group):\n`)
  process.stdout.write(summary('write (send → ack, tracker 1)', writeMs) + '\n')
  process.stdout.write(summary('end to end (send → seen, tracker 2)', endToEndMs) + '\n')
  process.stdout.write(summary('seen through tracker 2 after ack', afterAckMs) + '\n')
  await writer.close()
  await reader.close()
}

try {
  await main()
} finally {
  for (const fn of cleanups.reverse()) await fn()
}
