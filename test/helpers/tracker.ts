// Test helpers around a real tracker: startTracker spawns the tracker process on a free port and
// waits for its ready line (killed in t.after); startTrackers starts several from one shared
// trackers file (e.g. over one etcd with `store`); connectRaw speaks raw control frames to it.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'
import { MAX_FRAME_BYTES, decodeServerMessage, encodeMessage } from '../../src/protocol/control.ts'
import type { ControlEvent, ControlResponse } from '../../src/protocol/control.ts'
import { FrameDecoder, encodeFrame } from '../../src/protocol/frame.ts'
import { PIECE_BYTES, encodeFileMeta } from '../../src/protocol/file-meta.ts'
import type { FileMetaWire } from '../../src/protocol/file-meta.ts'
import { clientTlsOptions } from '../../src/security/tls.ts'
import type { Identity } from '../../src/security/identity.ts'
import { nameIdentity, namedIdentity, testIdentity } from './identity.ts'
import { tmpDir } from './tmp.ts'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const READY_TIMEOUT_MS = 15_000

/** A port nobody listens on right now (the OS picks it; we release it for the tracker). */
export async function freePort (host = '127.0.0.1'): Promise<number> {
  const server = net.createServer()
  server.listen(0, host)
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** argv that runs `peershare tracker ...`: the real CLI once it exists, else runTracker directly. */
export function trackerCommand (args: string[]): string[] {
  if (existsSync(join(ROOT, 'src', 'cli', 'main.ts'))) return [join(ROOT, 'bin', 'peershare.js'), 'tracker', ...args]
  const main = join(ROOT, 'src', 'tracker', 'main.ts')
  return ['--input-type=module', '-e', `import(${JSON.stringify(main)}).then((m) => m.runTracker(process.argv.slice(1)))`, ...args]
}

export interface StartedTracker {
  host: string
  port: number
  dataDir: string
  infoFile: string
  /** "SHA256:<hex>" from the ready line (the tracker's certificate); undefined with --insecure-plaintext. */
  readonly fingerprint: string | undefined
  /** The current process (a new one after restart). */
  readonly proc: ChildProcess
  /** Everything the current process wrote on stderr so far. */
  stderr (): string
  /** Sends the signal and waits for the exit; returns the exit code (null when killed by the signal). */
  kill (signal?: NodeJS.Signals): Promise<number | null>
  /** Starts the tracker again with the same file, number and data dir (kill it first). */
  restart (): Promise<void>
}

export interface StartTrackerOptions {
  trackerNo?: number
  dataDir?: string
  extraArgs?: string[]
  env?: NodeJS.ProcessEnv
  /** --store value, e.g. `etcd://127.0.0.1:<port>/<prefix>`. */
  store?: string
  /**
   * An existing trackers file (see writeTrackersFile): the tracker listens on its line `trackerNo`
   * instead of on a fresh port with a file of its own.
   */
  infoFile?: string
}

/** Writes a trackers file listing `addrs` in this order (removed when the test ends). */
export async function writeTrackersFile (t: Pick<TestContext, 'after'>, addrs: ReadonlyArray<{ host: string, port: number }>): Promise<string> {
  const file = join(await tmpDir(t, 'peershare-trackers-'), 'trackers.txt')
  await writeFile(file, '# written by test/helpers/tracker.ts\n' + addrs.map((a) => `${a.host}:${a.port}`).join('\n') + '\n')
  return file
}

/**
 * `count` trackers sharing one trackers file (tracker n on its line n, fresh ports), started one
 * after another with the same options (`store` makes them one service over etcd).
 */
export async function startTrackers (t: Pick<TestContext, 'after'>, count: number, opts: Omit<StartTrackerOptions, 'trackerNo' | 'infoFile' | 'dataDir'> = {}): Promise<StartedTracker[]> {
  const host = '127.0.0.1'
  const addrs: Array<{ host: string, port: number }> = []
  while (addrs.length < count) {
    const port = await freePort(host)
    if (!addrs.some((a) => a.port === port)) addrs.push({ host, port })
  }
  const infoFile = await writeTrackersFile(t, addrs)
  const started: StartedTracker[] = []
  for (let no = 1; no <= count; no++) started.push(await startTracker(t, { ...opts, trackerNo: no, infoFile }))
  return started
}

export async function startTracker (t: Pick<TestContext, 'after'>, opts: StartTrackerOptions = {}): Promise<StartedTracker> {
  const dir = await tmpDir(t, 'peershare-tracker-')
  const trackerNo = opts.trackerNo ?? 1
  let host = '127.0.0.1'
  let port: number
  let infoFile: string
  if (opts.infoFile !== undefined) {
    infoFile = opts.infoFile
    const line = (await readFile(infoFile, 'utf8')).split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'))[trackerNo - 1]
    const m = /^(.*):(\d+)$/.exec(line?.trim() ?? '')
    if (m === null) throw new Error(`${infoFile} has no line ${trackerNo} of the form host:port`)
    host = m[1]!
    port = Number(m[2])
  } else {
    port = await freePort(host)
    infoFile = join(dir, 'trackers.txt')
    // the other lines are never listened on; they make tracker numbers other than 1 testable
    const lines = Array.from({ length: trackerNo }, (_, i) => (i === trackerNo - 1 ? `${host}:${port}` : `${host}:${1000 + i}`))
    await writeFile(infoFile, '# written by test/helpers/tracker.ts\n' + lines.join('\n') + '\n')
  }
  const dataDir = opts.dataDir ?? join(dir, 'data')
  const args = [infoFile, String(trackerNo), '--data-dir', dataDir, ...(opts.store === undefined ? [] : ['--store', opts.store]), ...(opts.extraArgs ?? [])]

  let proc: ChildProcess
  let stderr = ''
  let fingerprint: string | undefined
  const launch = async (): Promise<void> => {
    stderr = ''
    const child = spawn(process.execPath, trackerCommand(args), {
      cwd: ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    proc = child
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s })
    const line = await waitForLine(child, /^tracker \d+ listening on /, () => stderr)
    fingerprint = /, id (SHA256:[0-9a-f]{64})$/.exec(line)?.[1]
  }
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> => {
    const child = proc
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
    const exited = once(child, 'exit')
    child.kill(signal)
    const [code] = await exited as [number | null]
    return code
  }
  t.after(() => kill('SIGKILL'))
  await launch()
  return {
    host,
    port,
    dataDir,
    infoFile,
    get fingerprint () { return fingerprint },
    get proc () { return proc },
    stderr: () => stderr,
    kill,
    restart: launch,
  }
}

/** Resolves when a stdout line matches; rejects (with stderr) if the process exits first or takes too long. */
export async function waitForLine (child: ChildProcess, re: RegExp, stderr: () => string): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    let buffered = ''
    const timer = setTimeout(() => finish(new Error(`no line matching ${re} within ${READY_TIMEOUT_MS} ms; stderr:\n${stderr()}`)), READY_TIMEOUT_MS)
    const onData = (s: string): void => {
      buffered += s
      const lines = buffered.split('\n')
      buffered = lines.pop()!
      const hit = lines.find((l) => re.test(l))
      if (hit !== undefined) finish(undefined, hit)
    }
    const onExit = (code: number | null, signal: string | null): void => {
      finish(new Error(`process exited (code ${code}, signal ${signal}) before printing ${re}; stderr:\n${stderr()}`))
    }
    const finish = (err: Error | undefined, line?: string): void => {
      clearTimeout(timer)
      child.stdout!.off('data', onData)
      child.off('exit', onExit)
      if (err !== undefined) reject(err)
      else resolve(line!)
    }
    child.stdout!.setEncoding('utf8').on('data', onData)
    child.once('exit', onExit)
  })
}

// ---------------------------------------------------------------------------------------------
// Raw control client

export interface RawClient {
  socket: net.Socket
  /** Over TLS: the hex of the certificate fingerprint, which the tracker uses as clientId whatever hello says. */
  clientId: string
  /** The TLS identity this client presented (undefined over plaintext). */
  identity: Identity | undefined
  /** Sends one request with a fresh id and resolves with its response (rejects if the connection closes first). */
  request (op: string, args?: unknown): Promise<ControlResponse>
  /** Sends a request whose result must be ok; returns the result. */
  call<T = Record<string, unknown>> (op: string, args?: unknown): Promise<T>
  /** hello with this client's id and a peer address. */
  hello (peerAddr?: string): Promise<ControlResponse>
  /** Writes bytes as they are (no framing added). */
  sendRaw (bytes: Buffer): void
  /** Frames and writes any JSON value as one request body. */
  sendJson (value: unknown): void
  /** Resolves with the response to `id` (for requests written with sendJson). */
  response (id: number): Promise<ControlResponse>
  events: ControlEvent[]
  /** Resolves when the socket has closed. */
  closed: Promise<void>
  close (): Promise<void>
}

/**
 * A raw control connection: TLS 1.3 by default, with a certificate per `clientId` (the same
 * `clientId` reconnects with the same certificate, so sessions bound to it resume); `plaintext` for
 * a tracker run with --insecure-plaintext. The tracker's certificate is not checked here.
 */
export async function connectRaw (port: number, opts: { host?: string, clientId?: string, plaintext?: boolean, identity?: Identity } = {}): Promise<RawClient> {
  const host = opts.host ?? '127.0.0.1'
  let socket: net.Socket
  let identity: Identity | undefined
  let clientId: string
  if (opts.plaintext === true) {
    socket = net.connect({ host, port })
    await once(socket, 'connect')
    clientId = opts.clientId ?? randomBytes(16).toString('hex')
  } else {
    identity = opts.identity ?? (opts.clientId === undefined ? await testIdentity() : await namedIdentity(opts.clientId))
    clientId = identity.fingerprint.slice('SHA256:'.length)
    nameIdentity(clientId, identity) // connectRaw({ clientId: c.clientId }) reconnects as c
    socket = tls.connect({ host, port, ...clientTlsOptions(identity) })
    await once(socket, 'secureConnect')
  }
  socket.setNoDelay(true)
  const decoder = new FrameDecoder(2 * MAX_FRAME_BYTES)
  const waiting = new Map<number, { resolve: (r: ControlResponse) => void, reject: (e: Error) => void }>()
  const early = new Map<number, ControlResponse>()
  const events: ControlEvent[] = []
  let nextId = 1
  let isClosed = false
  const closed = new Promise<void>((resolve) => socket.once('close', () => {
    isClosed = true
    for (const w of waiting.values()) w.reject(new Error('connection closed before the response'))
    waiting.clear()
    resolve()
  }))
  socket.on('error', () => {}) // surfaces as 'close' and rejected requests
  socket.on('data', (chunk: Buffer) => {
    for (const body of decoder.push(chunk)) {
      const msg = decodeServerMessage(body)
      if ('event' in msg) { events.push(msg); continue }
      const w = waiting.get(msg.id)
      if (w === undefined) { early.set(msg.id, msg); continue }
      waiting.delete(msg.id)
      w.resolve(msg)
    }
  })
  const response = (id: number): Promise<ControlResponse> => {
    const got = early.get(id)
    if (got !== undefined) { early.delete(id); return Promise.resolve(got) }
    if (isClosed) return Promise.reject(new Error('connection closed before the response'))
    return new Promise((resolve, reject) => waiting.set(id, { resolve, reject }))
  }
  const sendJson = (value: unknown): void => {
    socket.write(encodeFrame(Buffer.from(JSON.stringify(value), 'utf8')))
  }
  const request = (op: string, args: unknown = {}): Promise<ControlResponse> => {
    const id = nextId++
    const p = response(id)
    socket.write(encodeFrame(encodeMessage({ id, op, args } as never)))
    return p
  }
  return {
    socket,
    clientId,
    identity,
    request,
    async call<T> (op: string, args?: unknown): Promise<T> {
      const r = await request(op, args)
      if (!r.ok) throw new Error(`${op} failed: ${r.error.code} ${r.error.message}`)
      return r.result as T
    },
    hello: (peerAddr = '127.0.0.1:7000') => request('hello', { version: 1, clientId, peerAddr }),
    sendRaw: (bytes) => { socket.write(bytes) },
    sendJson,
    response,
    events,
    closed,
    async close () {
      socket.destroy()
      await closed
    },
  }
}

/** Real metadata of `bytes` shared under `name`, as it travels in upload_file. */
export function metaOf (name: string, bytes: Buffer): FileMetaWire {
  const hashes: Buffer[] = []
  for (let at = 0; at < bytes.length; at += PIECE_BYTES) {
    hashes.push(createHash('sha1').update(bytes.subarray(at, at + PIECE_BYTES)).digest())
  }
  return encodeFileMeta({
    name,
    size: bytes.length,
    pieceBytes: PIECE_BYTES,
    pieceHashes: Buffer.concat(hashes),
    fileHash: createHash('sha1').update(bytes).digest(),
  })
}

/** Plausible metadata of a `size`-byte file without the bytes (piece hashes are random). */
export function fakeMeta (name: string, size: number): FileMetaWire {
  const pieces = size === 0 ? 0 : Math.ceil(size / PIECE_BYTES)
  return encodeFileMeta({ name, size, pieceBytes: PIECE_BYTES, pieceHashes: randomBytes(pieces * 20), fileHash: randomBytes(20) })
}
