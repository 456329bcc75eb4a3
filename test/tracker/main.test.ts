// `peershare tracker ...` as a user runs it: usage errors (exit 2, one message, no stack trace),
// a taken port (exit 1), the ready line, the default data dir, SIGINT.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { stat, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { join } from 'node:path'
import { startEtcdCluster } from '../helpers/etcd.ts'
import { tmpDir } from '../helpers/tmp.ts'
import { ROOT, freePort, trackerCommand, waitForLine } from '../helpers/tracker.ts'

interface Run { code: number | null, stdout: string, stderr: string }

async function run (args: string[], cwd = ROOT): Promise<Run> {
  const child = spawn(process.execPath, trackerCommand(args), { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const [code] = await once(child, 'close') as [number | null]
  return { code, stdout, stderr }
}

function assertUsageError (r: Run, message: RegExp): void {
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`)
  assert.match(r.stderr, message)
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace')
  assert.equal(r.stdout, '')
}

test('usage errors exit 2 with a clear message and no stack trace', async (t) => {
  const dir = await tmpDir(t)
  const info = join(dir, 'trackers.txt')
  await writeFile(info, '127.0.0.1:6000\n127.0.0.1:6001\n')
  const badInfo = join(dir, 'bad.txt')
  await writeFile(badInfo, '127.0.0.1:6000\nnot an address\n')
  const dataDir = join(dir, 'data')
  const cases: Array<[string[], RegExp]> = [
    [[], /expected 2 arguments, got 0/],
    [[info], /expected 2 arguments, got 1/],
    [[info, 'one'], /tracker_no must be a number from 1, got 'one'/],
    [[info, '0'], /tracker_no must be a number from 1/],
    [[info, '3', '--data-dir', dataDir], /tracker_no 3 is not in .*trackers\.txt: it lists 2 tracker\(s\)/],
    [[info, '1', '--store', 'etcd'], /unknown store 'etcd': use --store sqlite or --store etcd:\/\/host:port/],
    [[info, '1', '--store', 'etcd://127.0.0.1:2379,nohost'], /bad etcd endpoint 'nohost' in --store/],
    [[info, '1', '--store', 'etcd://127.0.0.1:0'], /bad etcd endpoint '127\.0\.0\.1:0'/],
    [[info, '1', '--store', 'redis'], /unknown store 'redis'/],
    [[info, '1', '--bogus'], /Unknown option '--bogus'/],
    [[join(dir, 'missing.txt'), '1'], /cannot read the trackers file .*missing\.txt: ENOENT/],
    [[badInfo, '1', '--data-dir', dataDir], /bad\.txt, line 2: expected "IP:PORT" or "IP PORT"/],
  ]
  for (const [args, message] of cases) {
    const r = await run(args)
    assertUsageError(r, message)
    assert.match(r.stderr, /usage: peershare tracker <tracker_info_file> <tracker_no>/)
  }
})

test('a taken port is refused with exit code 1 and says so', async (t) => {
  const dir = await tmpDir(t)
  const blocker = net.createServer()
  blocker.listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())))
  const { port } = blocker.address() as net.AddressInfo
  const info = join(dir, 'trackers.txt')
  await writeFile(info, `127.0.0.1:${port}\n`)
  const r = await run([info, '1', '--data-dir', join(dir, 'data')])
  assert.equal(r.code, 1)
  assert.match(r.stderr, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`))
  assert.doesNotMatch(r.stderr, /\n\s+at /)
})

test('prints one ready line, creates ./data/tracker-<no> (mode 0700) by default, stops on SIGINT with 0', async (t) => {
  const dir = await tmpDir(t)
  const port = await freePort()
  const info = join(dir, 'trackers.txt')
  await writeFile(info, `127.0.0.1:${await freePort()}\n127.0.0.1 ${port}\n`)
  const child = spawn(process.execPath, trackerCommand([info, '2']), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => { child.kill('SIGKILL') })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const line = await waitForLine(child, /listening/, () => stderr)
  assert.match(line, new RegExp(`^tracker 2 listening on 127\\.0\\.0\\.1:${port}, id SHA256:[0-9a-f]{64}$`))
  const dataDir = join(dir, 'data', 'tracker-2')
  assert.equal((await stat(dataDir)).mode & 0o777, 0o700)
  assert.ok((await stat(join(dataDir, 'tracker.sqlite'))).isFile())
  const exited = once(child, 'exit')
  child.kill('SIGINT')
  const [code] = await exited as [number | null]
  assert.equal(code, 0)
  assert.equal(stderr, '', 'quiet by default')
})

test('serves from etcd with --store etcd://host:port, or PEERSHARE_STORE', async (t) => {
  const cluster = await startEtcdCluster(t, { members: 1 })
  const store = 'etcd://' + cluster.endpoints.map((u) => new URL(u).host).join(',')
  const dir = await tmpDir(t)
  const info = join(dir, 'trackers.txt')
  await writeFile(info, `127.0.0.1:${await freePort()}\n127.0.0.1:${await freePort()}\n`)
  for (const [no, args, env] of [
    ['1', ['--store', store], {}],
    ['2', [], { PEERSHARE_STORE: store }],
  ] as const) {
    const child = spawn(process.execPath, trackerCommand([info, no, '--data-dir', join(dir, `t${no}`), ...args]),
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    t.after(() => { child.kill('SIGKILL') })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
    await waitForLine(child, new RegExp(`^tracker ${no} listening on`), () => stderr)
    const exited = once(child, 'exit')
    child.kill('SIGINT')
    const [code] = await exited as [number | null]
    assert.equal(code, 0, stderr)
    assert.equal(stderr, '', 'quiet by default')
  }
})
