// Test helpers around real client processes in --json mode: startClient spawns
// `peershare client 127.0.0.1:<free port> <infofile> --data-dir <tmp> --json`, waits for its ready
// event, and drives it over stdin/stdout (killed in t.after). runPeershare runs the CLI to its exit.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { tmpDir } from './tmp.ts'
import { ROOT, freePort } from './tracker.ts'

const READY_TIMEOUT_MS = 15_000
const REPLY_TIMEOUT_MS = 30_000
const BIN = join(ROOT, 'bin', 'peershare.js')

export interface Reply {
  command: string
  ok: boolean
  result?: any // eslint-disable-line @typescript-eslint/no-explicit-any -- tests read fields freely
  error?: { code: string, message: string }
}

export interface ClientEventLine {
  event: string
  [key: string]: unknown
}

export interface StartedClient {
  peerAddr: string
  dataDir: string
  proc: ChildProcess
  ready: ClientEventLine
  /** Event lines seen so far (ready included). */
  events: ClientEventLine[]
  /** Sends one command line; resolves with its reply line, parsed. */
  run (line: string): Promise<Reply>
  /** Like run, but fails the test unless the reply is ok; returns the result. */
  ok (line: string): Promise<any> // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Resolves with the first event of that name (seen already or arriving later). */
  waitEvent (name: string, timeoutMs?: number): Promise<ClientEventLine>
  stderr (): string
  /** Ends stdin and waits for the exit; returns the exit code. */
  close (): Promise<number | null>
}

export interface StartClientOptions {
  infoFile: string
  dataDir?: string
  port?: number
  extraArgs?: string[]
}

export async function startClient (t: Pick<TestContext, 'after'>, opts: StartClientOptions): Promise<StartedClient> {
  const dataDir = opts.dataDir ?? await tmpDir(t, 'peershare-client-')
  const port = opts.port ?? await freePort()
  const peerAddr = `127.0.0.1:${port}`
  const proc = spawn(process.execPath, [BIN, 'client', peerAddr, opts.infoFile, '--data-dir', dataDir, '--json', ...(opts.extraArgs ?? [])], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = once(proc, 'exit')
      proc.kill('SIGKILL')
      await exited
    }
  })
  let stderr = ''
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const events: ClientEventLine[] = []
  const replies: Reply[] = []
  const replyWaiters: Array<(r: Reply | Error) => void> = []
  const eventWaiters = new Set<() => void>()
  let exited: Error | undefined
  let buffered = ''
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => {
    buffered += s
    const lines = buffered.split('\n')
    buffered = lines.pop()!
    for (const line of lines) {
      const msg = JSON.parse(line) as Record<string, unknown> // any non-JSON stdout line fails the test
      if (typeof msg.event === 'string') {
        events.push(msg as ClientEventLine)
        for (const w of eventWaiters) w()
      } else {
        const w = replyWaiters.shift()
        if (w !== undefined) w(msg as unknown as Reply)
        else replies.push(msg as unknown as Reply)
      }
    }
  })
  proc.once('exit', (code, signal) => {
    exited = new Error(`client ${peerAddr} exited (code ${code}, signal ${signal}); stderr:\n${stderr}`)
    for (const w of replyWaiters.splice(0)) w(exited)
    for (const w of eventWaiters) w()
  })

  const waitEvent = (name: string, timeoutMs = READY_TIMEOUT_MS): Promise<ClientEventLine> => new Promise((resolve, reject) => {
    const check = (): void => {
      const hit = events.find((e) => e.event === name)
      if (hit !== undefined) finish(undefined, hit)
      else if (exited !== undefined) finish(exited)
    }
    const timer = setTimeout(() => finish(new Error(`no '${name}' event from ${peerAddr} within ${timeoutMs} ms; stderr:\n${stderr}`)), timeoutMs)
    const finish = (err: Error | undefined, e?: ClientEventLine): void => {
      clearTimeout(timer)
      eventWaiters.delete(check)
      if (err !== undefined) reject(err)
      else resolve(e!)
    }
    eventWaiters.add(check)
    check()
  })

  const run = (line: string): Promise<Reply> => {
    if (exited !== undefined) return Promise.reject(exited)
    const p = new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to '${line}' within ${REPLY_TIMEOUT_MS} ms; stderr:\n${stderr}`)), REPLY_TIMEOUT_MS)
      const early = replies.shift()
      const deliver = (r: Reply | Error): void => {
        clearTimeout(timer)
        if (r instanceof Error) reject(r)
        else resolve(r)
      }
      if (early !== undefined) deliver(early)
      else replyWaiters.push(deliver)
    })
    proc.stdin!.write(line + '\n')
    return p
  }

  const ready = await waitEvent('ready')
  return {
    peerAddr,
    dataDir,
    proc,
    ready,
    events,
    run,
    async ok (line) {
      const r = await run(line)
      if (!r.ok) throw new Error(`'${line}' failed: ${r.error?.code} ${r.error?.message}`)
      return r.result
    },
    waitEvent,
    stderr: () => stderr,
    async close () {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode
      const done = once(proc, 'exit')
      proc.stdin!.end()
      const [code] = await done as [number | null]
      return code
    },
  }
}

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `peershare ...args` to its exit, feeding `input` on stdin. */
export async function runPeershare (args: string[], input = ''): Promise<RunResult> {
  const proc = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  proc.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  proc.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  proc.stdin.on('error', () => {}) // the process may exit before reading its input (start-up errors)
  proc.stdin.end(input)
  // 'close', not 'exit': every byte of stdout and stderr has been read by then
  const [code] = await once(proc, 'close') as [number | null]
  return { code, stdout, stderr }
}
