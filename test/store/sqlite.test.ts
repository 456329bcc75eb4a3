// The SQLite store: the Store contract, plus what only a file can show (kill -9, damaged files,
// group commit, query plans).

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { DatabaseSync } from 'node:sqlite'
import { describe, it } from 'node:test'
import { openSqliteStore, SQL } from '../../src/store/sqlite.ts'
import { APPLICATION_ID } from '../../src/store/sqlite-schema.ts'
import type { Store } from '../../src/store/store.ts'
import { defer } from '../helpers/cleanup.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { makeMeta, storeContract } from './contract.ts'
import { fileId } from '../../src/protocol/file-meta.ts'

storeContract('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'peershare-store-'))
  const path = join(dir, 'tracker.db')
  const opened: Store[] = [await openSqliteStore(path)]
  return {
    store: opened[0] as Store,
    reopen: async () => {
      const store = await openSqliteStore(path)
      opened.push(store)
      return store
    },
    cleanup: async () => {
      for (const s of opened) await s.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
})

describe('sqlite store', () => {
  it('keeps every acknowledged write when its process is killed with SIGKILL', async (t) => {
    const path = join(await tmpDir(t), 'tracker.db')
    const child = spawn(process.execPath, [join(import.meta.dirname, 'fixtures', 'sqlite-writer.ts'), path],
      { stdio: ['ignore', 'pipe', 'inherit'] })
    const exited = once(child, 'exit')
    t.after(() => { child.kill('SIGKILL') })
    const acked: number[] = []
    for await (const line of createInterface({ input: child.stdout })) {
      const m = /^acked (\d+)$/.exec(line)
      if (m !== null) acked.push(Number(m[1]))
      if (acked.length === 300) child.kill('SIGKILL')
    }
    const [code, signal] = await exited
    assert.equal(signal, 'SIGKILL', `writer exited on its own (code ${String(code)})`)
    assert.equal(acked.length >= 300, true)

    const store = await openSqliteStore(path)
    defer(t, () => store.close())
    for (const n of acked) {
      assert.deepEqual(await store.getUser(`u${n}`), { userId: `u${n}`, passwordHash: `hash-${n}`, createdAt: n })
      if (n % 5 === 0) assert.equal((await store.getGroup(`g${n}`))?.owner, `u${n}`)
    }
  })

  it('refuses a file that is not a database with a clear error', async (t) => {
    const path = join(await tmpDir(t), 'tracker.db')
    await writeFile(path, 'this is a text file, not a database\n'.repeat(200))
    await assert.rejects(openSqliteStore(path), { code: 'STORE_UNAVAILABLE', message: /tracker\.db is not a database/ })
  })

  it('refuses a SQLite database of another program and one from a newer peershare', async (t) => {
    const dir = await tmpDir(t)
    const foreign = new DatabaseSync(join(dir, 'other.db'))
    foreign.exec('CREATE TABLE notes (body TEXT)')
    foreign.close()
    await assert.rejects(openSqliteStore(join(dir, 'other.db')), { code: 'STORE_UNAVAILABLE', message: /some other program/ })
    const newer = new DatabaseSync(join(dir, 'newer.db'))
    newer.exec(`PRAGMA application_id = ${APPLICATION_ID}; PRAGMA user_version = 999`)
    newer.close()
    await assert.rejects(openSqliteStore(join(dir, 'newer.db')), { code: 'STORE_UNAVAILABLE', message: /newer peershare/ })
  })

  it('covers many concurrent writes with one or two fsyncs', async (t) => {
    const store = await openSqliteStore(join(await tmpDir(t), 'tracker.db'))
    defer(t, () => store.close())
    await Promise.all(Array.from({ length: 100 }, (_, i) => store.createUser({ userId: `u${i}`, passwordHash: 'h', createdAt: i })))
    const { syncs, waits } = store.durabilityStats
    assert.equal(waits, 100)
    assert.ok(syncs >= 1 && syncs <= 2, `${syncs} fsyncs for 100 concurrent writes`)
  })

  it('keeps the -wal file while open and refuses calls after close', async (t) => {
    const path = join(await tmpDir(t), 'tracker.db')
    const store = await openSqliteStore(path)
    await store.createUser({ userId: 'alice', passwordHash: 'h', createdAt: 1 })
    assert.ok(existsSync(`${path}-wal`))
    await store.close()
    await assert.rejects(store.getUser('alice'), { code: 'STORE_UNAVAILABLE' })
    await assert.rejects(store.createUser({ userId: 'bob', passwordHash: 'h', createdAt: 1 }), { code: 'STORE_UNAVAILABLE' })
  })

  it('answers every lookup from an index (only listGroups walks its table)', async (t) => {
    const path = join(await tmpDir(t), 'tracker.db')
    const store = await openSqliteStore(path)
    defer(t, () => store.close())
    const db = new DatabaseSync(path, { readOnly: true })
    defer(t, () => db.close())
    for (const [name, sql] of Object.entries(SQL)) {
      if (sql.startsWith('INSERT')) continue
      const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>).map((r) => r.detail)
      const scans = plan.filter((d) => d.startsWith('SCAN') && !(name === 'listGroups' && d === 'SCAN g'))
      assert.deepEqual(scans, [], `${name}: ${plan.join('; ')}`)
    }
  })

  it('serves after many writes, failed ones among them, exactly what it reads back from the file on reopen', async (t) => {
    const path = join(await tmpDir(t), 'tracker.db')
    let store = await openSqliteStore(path)
    defer(t, () => store.close())
    let seed = 7
    const pick = <T>(items: readonly T[]): T => { // an LCG's high bits: its low bits cycle
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return items[Math.floor(seed / 2 ** 31 * items.length)]!
    }
    const users = ['u0', 'u1', 'u2']
    const groups = ['g0', 'g1', 'g2']
    const clients = ['c0', 'c1']
    const names = ['a.bin', 'b.bin']
    const step = async (i: number): Promise<void> => {
      const [u, g, c, n] = [pick(users), pick(groups), pick(clients), pick(names)]
      const sharer = { userId: u, clientId: c }
      const meta = makeMeta(n, 1000, pick(['x', 'y']))
      // weighted so that groups grow: a request is accepted only if that very user asked
      const ops = [
        () => store.createGroup(g, u, i),
        () => store.addRequest(g, u, i),
        () => store.addRequest(g, u, i),
        () => store.acceptRequest(g, u, i),
        () => store.acceptRequest(g, u, i),
        () => store.acceptRequest(g, u, i),
        () => store.rejectRequest(g, u),
        () => store.leaveGroup(g, u),
        () => store.addShare(g, fileId(meta), meta, sharer, i),
        () => store.addShare(g, fileId(meta), meta, sharer, i),
        () => store.addShare(g, fileId(meta), meta, sharer, i),
        () => store.removeShare(g, n, sharer),
        () => store.setSharesActive(sharer, pick([true, false])),
        () => store.reactivateShares(sharer, [{ groupId: g, fileId: fileId(meta) }]),
        () => store.createUser({ userId: u, passwordHash: 'h', createdAt: i }),
        () => store.createSession({ tokenHash: `${u}${c}`, userId: u, clientId: c, createdAt: i }),
        () => store.deleteSession(`${u}${c}`),
      ]
      await pick(ops)().catch((err: { code?: string }) => assert.ok(err.code !== undefined && err.code !== 'INTERNAL', String(err)))
    }
    const snapshot = async (s: Store): Promise<unknown> => {
      const each = await Promise.all(groups.map(async (g) => [await s.getGroup(g), await s.listRequests(g), await s.listFiles(g)]))
      const all = await Promise.all(users.map(async (u) => [await s.getUser(u), await s.membershipsOf(u),
        ...await Promise.all(clients.map((c) => s.getSession(`${u}${c}`)))]))
      // membershipsOf lists in no particular order: compare as sorted JSON (Buffers become arrays)
      return JSON.parse(JSON.stringify({ groups: await s.listGroups(), each, all }, (_k, x: unknown) =>
        Array.isArray(x) && x.every((e) => typeof e === 'string') ? [...x].sort() : x))
    }
    let multiSharer = false
    let inactive = false
    for (let round = 0; round < 8; round++) {
      for (let i = 0; i < 250; i++) await step(round * 1000 + i)
      const served = await snapshot(store)
      const files = (await Promise.all(groups.map((g) => store.listFiles(g)))).flat()
      multiSharer ||= files.some((f) => f.sharers.length > 1)
      inactive ||= files.some((f) => f.sharers.some((x) => !x.active))
      await store.close()
      store = await openSqliteStore(path)
      assert.deepEqual(await snapshot(store), served, `after round ${round}`)
    }
    assert.ok(multiSharer && inactive, 'the mix should make files with several sharers, and inactive shares')
  })
})
