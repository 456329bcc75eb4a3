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
import { measurePropagation, summary } from './propagation-probe.ts'

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

async function main (): Promise<void> {
  const etcd = await startEtcdCluster(ctx, { members: members as 1 | 3 })
  const store = `etcd://${etcd.endpoints.map((u) => new URL(u).host).join(',')}/bench-${randomBytes(4).toString('hex')}`
  const [t1, t2] = await startTrackers(ctx, 2, { store })
  const writer = await loggedIn(t1!.port, 'writer', true)
  const reader = await loggedIn(t2!.port, 'reader', true)
  const { writeMs, endToEndMs, afterAckMs } = await measurePropagation({
    write: async (groupId) => { await writer.call('create_group', { groupId }) },
    visible: async (groupId) => {
      const { groups } = await reader.call<{ groups: Array<{ groupId: string }> }>('list_groups')
      return groups.some((g) => g.groupId === groupId)
    },
  }, changes, `p${randomBytes(3).toString('hex')}`)

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
