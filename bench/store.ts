// Micro-benchmark of the SQLite store (not a test): reads/s of the hot lookups, and writes/s with
// group commit for 1 and N concurrent writers, with how many writes each fdatasync covered.
// Usage: node bench/store.ts [--writers 32] [--seconds 2] [--dir /path/on/the/disk/to/measure]

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fileId, PIECE_BYTES } from '../src/protocol/file-meta.ts'
import { openSqliteStore } from '../src/store/sqlite.ts'
import type { SqliteStore } from '../src/store/sqlite.ts'

const { values } = parseArgs({
  options: {
    writers: { type: 'string', default: '32' },
    seconds: { type: 'string', default: '2' },
    dir: { type: 'string' },
  },
})
const WRITERS = Number(values.writers)
const SECONDS = Number(values.seconds)
const GROUPS = 100
const MEMBERS_PER_GROUP = 10
const FILES_PER_GROUP = 20
const USERS = 1_000

let writeSeq = 0 // session tokens stay unique across runs
const dir = await mkdtemp(join(values.dir ?? tmpdir(), 'peershare-bench-store-'))
const store = await openSqliteStore(join(dir, 'tracker.db'))
try {
  await populate(store)
  console.log(`store bench: ${USERS} users, ${GROUPS} groups x ${MEMBERS_PER_GROUP} members x ${FILES_PER_GROUP} files (1 GiB each), ${dir}`)
  let i = 0
  await rate('getSession', async () => { await store.getSession(token(i++ % USERS)) })
  await rate('getUser', async () => { await store.getUser(`u${i++ % USERS}`) })
  await rate('getGroup', async () => { await store.getGroup(`g${i++ % GROUPS}`) })
  await rate('membershipsOf', async () => { await store.membershipsOf(`u${i++ % USERS}`) })
  await rate(`listFiles (${FILES_PER_GROUP} files)`, async () => { await store.listFiles(`g${i++ % GROUPS}`) })
  await rate(`getFile`, async () => { await store.getFile(`g${i++ % GROUPS}`, `f${i % FILES_PER_GROUP}.bin`) })
  await rate(`listGroups (${GROUPS} groups)`, async () => { await store.listGroups() })
  for (const writers of [1, WRITERS]) await writes(store, writers)
} finally {
  await store.close()
  await rm(dir, { recursive: true, force: true })
}

function token (n: number): string {
  return n.toString(16).padStart(64, '0')
}

async function populate (s: SqliteStore): Promise<void> {
  const jobs: Array<Promise<unknown>> = []
  for (let u = 0; u < USERS; u++) {
    jobs.push(s.createUser({ userId: `u${u}`, passwordHash: 'x'.repeat(100), createdAt: u }))
    jobs.push(s.createSession({ tokenHash: token(u), userId: `u${u}`, clientId: `c${u}`, createdAt: u }))
  }
  await Promise.all(jobs)
  for (let g = 0; g < GROUPS; g++) {
    const members = Array.from({ length: MEMBERS_PER_GROUP }, (_, k) => `u${(g * 7 + k) % USERS}`)
    await s.createGroup(`g${g}`, members[0] ?? 'u0', 0)
    await Promise.all(members.slice(1).map(async (m, k) => {
      await s.addRequest(`g${g}`, m, k)
      await s.acceptRequest(`g${g}`, m, k + 1)
    }))
    await Promise.all(Array.from({ length: FILES_PER_GROUP }, async (_, f) => {
      const size = 1024 * 1024 * 1024
      const meta = { name: `f${f}.bin`, size, pieceBytes: PIECE_BYTES, pieceHashes: Buffer.alloc(size / PIECE_BYTES * 20, f), fileHash: Buffer.alloc(20, g) }
      for (const m of members.slice(0, 2)) await s.addShare(`g${g}`, fileId(meta), meta, { userId: m, clientId: `c-${m}` }, 0)
    }))
  }
}

async function rate (name: string, op: () => Promise<void>): Promise<void> {
  const end = performance.now() + SECONDS * 1000
  let n = 0
  while (performance.now() < end) {
    for (let k = 0; k < 100; k++) await op()
    n += 100
  }
  console.log(`  read  ${name.padEnd(28)} ${fmt(n / SECONDS)}/s`)
}

async function writes (s: SqliteStore, writers: number): Promise<void> {
  const before = s.durabilityStats
  const end = performance.now() + SECONDS * 1000
  let n = 0
  await Promise.all(Array.from({ length: writers }, async () => {
    while (performance.now() < end) {
      const id = writeSeq++
      await s.createSession({ tokenHash: `w${id}`.padStart(64, '0'), userId: 'u1', clientId: 'c1', createdAt: id })
      n++
    }
  }))
  const syncs = s.durabilityStats.syncs - before.syncs
  console.log(`  write createSession, ${String(writers).padStart(3)} writers  ${fmt(n / SECONDS)}/s ` +
    `(${syncs} fdatasyncs, ${(n / Math.max(1, syncs)).toFixed(1)} writes each)`)
}

function fmt (x: number): string {
  return Math.round(x).toLocaleString('en-US').padStart(10)
}
