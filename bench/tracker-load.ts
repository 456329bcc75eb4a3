// Load generator process for `npm run bench:tracker`: opens N authenticated connections to a tracker
// and runs a realistic read/write mix for a fixed time, one request in flight per connection. Prints
// one JSON line with its figures on stdout.
//   node bench/tracker-load.ts --host H --port P[,P2...] --connections N --seconds S [--rate R] [--echo] [--insecure-plaintext]
// Without --rate, a closed loop: each connection sends its next request as soon as the last reply
// arrives. That finds the most requests/s, but then latency is only queueing: with N requests always
// in flight, the mean is N / throughput (Little's law), whatever the tracker does. With --rate R (total
// requests/s), the load is paced as wrk2 paces it: connection i's requests are due every N/R seconds,
// staggered; a request due while its connection still waits for a reply goes out when the reply
// comes, and every latency counts from when the request was due, not when it was sent (so a stalled
// tracker cannot hide its stall by holding back the requests that would have measured it).
// With several ports (trackers over one etcd), connection i goes to port i % ports, and the setup
// runs across trackers: users are created through one tracker and log in through another, members
// join through one and the owner accepts through another. Between steps, a write through every
// tracker waits until each has seen all earlier writes (an etcd store's write returns once its own
// replica holds it, so it holds everything committed before too).
// Speaks TLS 1.3 unless --insecure-plaintext. Over TLS the tracker takes each certificate as a client
// identity, so connection i uses identity i % users, like its user: two connections of one user are
// then the same client, as when a client reconnects.

import { randomBytes, randomInt } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { LoadConnection } from './load-client.ts'
import type { Reply } from './load-client.ts'
import { PIECE_BYTES, SHA1_BYTES, pieceCount } from '../src/protocol/file-meta.ts'
import { loadOrCreateIdentity } from '../src/security/identity.ts'
import type { Identity } from '../src/security/identity.ts'
import { LatencyHistogram } from './stats.ts'

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    connections: { type: 'string', default: '100' },
    seconds: { type: 'string', default: '10' },
    echo: { type: 'boolean', default: false },
    'insecure-plaintext': { type: 'boolean', default: false },
    users: { type: 'string', default: '100' },
    groups: { type: 'string', default: '10' },
    rate: { type: 'string' },
  },
})
const host = values.host
const ports = (values.port ?? '').split(',').map(Number)
if (ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) throw new Error(`--port: port[,port...], not '${values.port}'`)
const n = Number(values.connections)
const seconds = Number(values.seconds)
const GROUPS = Number(values.groups)
const rate = values.rate === undefined ? undefined : Number(values.rate)
if (rate !== undefined && !(rate > 0)) throw new Error(`--rate: requests per second, not '${values.rate}'`)
const FILES_PER_GROUP = 20
const runId = randomBytes(3).toString('hex')

/** Runs `fn` over items with at most `limit` at once. */
async function pool<T> (items: T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) { const i = next++; await fn(items[i]!, i) }
  }))
}

function must (r: Reply, what: string): Reply {
  if (!r.ok) throw new Error(`${what}: ${r.error?.code} ${r.error?.message}`)
  return r
}

function fakeMeta (name: string): Record<string, unknown> {
  const size = 10 * 1024 * 1024 + randomInt(PIECE_BYTES)
  return {
    name,
    size,
    pieceBytes: PIECE_BYTES,
    pieceHashes: randomBytes(pieceCount(size) * SHA1_BYTES).toString('base64'),
    fileHash: randomBytes(SHA1_BYTES).toString('hex'),
  }
}

interface Worker { conn: LoadConnection, user: string, group: string, uploaded: string | null, made: number, ownsGroup: boolean }

/** Throwaway client identities (key + self-signed certificate), in a temporary directory. */
async function identities (count: number): Promise<{ ids: Identity[], cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'peershare-load-ids-'))
  const ids: Identity[] = []
  await pool(Array.from({ length: count }), 8, async (_x, i) => { ids[i] = await loadOrCreateIdentity(join(dir, String(i))) })
  return { ids, cleanup: () => rm(dir, { recursive: true, force: true }) }
}

let settles = 0
/**
 * With several trackers: one write (a fresh user) through each, after every earlier write was
 * acknowledged. Its ack means that tracker's replica holds its revision, hence all the earlier ones.
 */
async function settle (conns: LoadConnection[]): Promise<void> {
  if (ports.length < 2) return
  for (let t = 0; t < Math.min(ports.length, conns.length); t++) {
    must(await conns[t]!.request('create_user', { userId: `b${runId}s${settles++}`, password: 'benchpass' }), 'create_user (settle)')
  }
}

async function setup (): Promise<Worker[]> {
  const conns: LoadConnection[] = []
  const idCount = Math.min(n, Number(values.users))
  const ids = values['insecure-plaintext'] ? undefined : await identities(idCount)
  try {
    await pool(Array.from({ length: n }), 100, async (_x, i) => { conns[i] = await LoadConnection.open(host, ports[i % ports.length]!, ids?.ids[i % idCount]) })
  } finally {
    await ids?.cleanup()
  }
  await pool(conns, 200, async (c, i) => {
    must(await c.request('hello', { version: 1, clientId: randomBytes(16).toString('hex'), peerAddr: `127.0.0.1:${20000 + i}` }), 'hello')
  })
  if (values.echo) return conns.map((conn) => ({ conn, user: '', group: '', uploaded: null, made: 0, ownsGroup: false }))

  const userCount = Math.min(n, Number(values.users))
  const users = Array.from({ length: userCount }, (_x, i) => `b${runId}u${i}`)
  const groups = Array.from({ length: GROUPS }, (_x, i) => `b${runId}g${i}`)
  // created through the next connection: with several trackers, another tracker than the one it logs in through
  await pool(users, 8, async (u, i) => { must(await conns[(i + 1) % n]!.request('create_user', { userId: u, password: 'benchpass' }), 'create_user') })
  await settle(conns)
  // every connection logs in (each its own client identity); users are shared between connections
  await pool(conns, 8, async (c, i) => { must(await c.request('login', { userId: users[i % userCount]!, password: 'benchpass' }), 'login') })
  const owner = conns[0]!
  for (const g of groups) must(await owner.request('create_group', { groupId: g }), 'create_group')
  await settle(conns)
  await pool(users.slice(1), 16, async (_u, k) => {
    const c = conns[k + 1]!
    for (const g of groups) must(await c.request('join_group', { groupId: g }), 'join_group')
  })
  await settle(conns)
  for (const g of groups) {
    for (const u of users.slice(1)) must(await owner.request('accept_request', { groupId: g, userId: u }), 'accept_request')
  }
  await settle(conns)
  await pool(groups, 4, async (g, gi) => {
    for (let f = 0; f < FILES_PER_GROUP; f++) {
      const c = conns[(gi * FILES_PER_GROUP + f) % userCount]!
      must(await c.request('upload_file', { groupId: g, meta: fakeMeta(`file-${f}.bin`) }), 'upload_file')
    }
  })
  await settle(conns)
  return conns.map((conn, i) => ({ conn, user: users[i % userCount]!, group: groups[i % GROUPS]!, uploaded: null, made: 0, ownsGroup: false }))
}

/** One request of the mix: mostly reads, some share registrations and group changes. */
function nextRequest (w: Worker, i: number): [string, Record<string, unknown>] {
  if (values.echo) return ['ping', {}]
  const r = randomInt(1000)
  if (r < 500) return ['list_files', { groupId: w.group }]
  if (r < 800) return ['list_groups', {}]
  if (r < 900) return ['get_file', { groupId: w.group, fileName: `file-${randomInt(FILES_PER_GROUP)}.bin` }]
  if (r < 960) {
    if (w.uploaded === null) {
      w.uploaded = `up-${i}-${w.made++}.bin`
      return ['upload_file', { groupId: w.group, meta: fakeMeta(w.uploaded) }]
    }
    const name = w.uploaded
    w.uploaded = null
    return ['stop_share', { groupId: w.group, fileName: name }]
  }
  // group change: create a private group, then leave it (which deletes it)
  const g = `b${runId}x${i}`
  w.ownsGroup = !w.ownsGroup
  return w.ownsGroup ? ['create_group', { groupId: g }] : ['leave_group', { groupId: g }]
}

async function run (workers: Worker[]): Promise<void> {
  for (const w of workers) w.conn.skipResults = true // the mix never reads a result
  const all = new LatencyHistogram()
  const byOp = new Map<string, LatencyHistogram>()
  const errors: Record<string, number> = {}
  let measuring = false
  let stop = false
  const warmupMs = 1000
  const start = performance.now()
  const intervalMs = rate === undefined ? 0 : n / rate * 1000
  const loops = workers.map(async (w, i) => {
    let due = start + intervalMs * i / n
    while (!stop) {
      if (rate !== undefined) {
        const wait = due - performance.now()
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      }
      const [op, args] = nextRequest(w, i)
      const sent = performance.now()
      // a timer can fire up to a millisecond early (libuv counts whole milliseconds): then from the send
      const t0 = rate === undefined ? sent : Math.min(due, sent)
      const reply = await w.conn.request(op, args)
      const dt = performance.now() - t0
      due += intervalMs
      if (!reply.ok) {
        const key = `${op}:${reply.error?.code}`
        errors[key] = (errors[key] ?? 0) + 1
        if (reply.error?.code === 'CLOSED') return
      }
      if (measuring) {
        all.record(dt)
        let mine = byOp.get(op)
        if (mine === undefined) byOp.set(op, mine = new LatencyHistogram())
        mine.record(dt)
      }
    }
  })
  await new Promise((resolve) => setTimeout(resolve, warmupMs))
  measuring = true
  process.stdout.write('measuring\n') // bench/tracker.ts reads the targets' CPU time at these two lines
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
  measuring = false
  process.stdout.write('measured\n')
  const elapsed = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  const count = all.count
  stop = true
  await Promise.all(loops)
  process.stdout.write(JSON.stringify({
    connections: n, requests: count, seconds: elapsed, rps: count / elapsed, ...(rate === undefined ? {} : { rate }),
    // the load generator shares the machine's cores with the tracker: its own share of them
    loadCpuShare: (cpu.user + cpu.system) / 1e6 / elapsed,
    p50ms: all.percentileMs(50), p99ms: all.percentileMs(99), maxms: all.percentileMs(100), errors,
    // which operations make the tail: each one's share of the requests, its p50 and p99
    ops: Object.fromEntries([...byOp].map(([op, h]) => [op, { share: h.count / count, p50ms: h.percentileMs(50), p99ms: h.percentileMs(99) }])),
  }) + '\n')
}

const workers = await setup()
process.stderr.write(`load: ${workers.length} connections ready\n`)
await run(workers)
for (const w of workers) w.conn.close()
