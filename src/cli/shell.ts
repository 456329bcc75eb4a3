// The interactive shell for a person: readline prompt (`alice@peershare> `), history kept in the data
// dir (passwords left out), tab completion of command names, a progress bar while hashing an upload,
// a live download bar in front of the prompt while downloads run, results as short aligned text.
// Without a terminal it reads commands one per line, without prompt or bars.
// Commands run strictly one at a time, in order.

import { appendFile, readFile, writeFile } from 'node:fs/promises'
import { createInterface, clearLine, cursorTo } from 'node:readline'
import type { Interface } from 'node:readline'
import { toPeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import type { Client } from '../client/core.ts'
import { COMMAND_NAMES, clean, downloadLine, droppedLine, execute, formatResult, historyLine, parseLine } from './commands.ts'
import { createProgressBar, downloadsBar } from './progress.ts'

const log = createLog('cli:shell')

const HISTORY_LINES = 500
/** How often the download bar in front of the prompt is redrawn. */
const DOWNLOAD_BAR_MS = 500

export interface ShellOptions {
  input: NodeJS.ReadStream
  output: NodeJS.WriteStream
  /** Prompt, history, completion and progress bar: only when both ends are a terminal. */
  interactive: boolean
}

export async function runShell (client: Client, opts: ShellOptions): Promise<void> {
  const { output, interactive } = opts
  const history = interactive ? await loadHistory(client.dataDir.historyFile) : []
  const rl = createInterface({
    input: opts.input,
    output: interactive ? output : undefined,
    terminal: interactive,
    history,
    historySize: HISTORY_LINES,
    removeHistoryDuplicates: true,
    completer: complete,
    crlfDelay: Infinity,
  })
  // readline's documented hook for keeping a secret out of history: rewrite the newest entry
  rl.on('history', (h: string[]) => {
    if (h[0] !== undefined) h[0] = historyLine(h[0])
  })

  let running: AbortController | undefined
  const print = (text: string): void => {
    if (text !== '') output.write(text + '\n')
  }
  // async news (reconnection, lost session) while the prompt waits: print above it, redraw it
  const notify = (text: string): void => {
    if (!interactive) return print(text)
    clearLine(output, 0)
    cursorTo(output, 0)
    print(text)
    if (running === undefined) rl.prompt(true)
  }
  client.on('switched', (info) => notify(`(now connected to tracker ${info.address}${info.resumed ? ', session kept' : ''})`))
  // a refused certificate may be an attack: said loudly, even when another tracker took over
  for (const u of client.untrustedTrackers) notify(`UNTRUSTED tracker ${u.address}: ${clean(u.message)}`)
  client.on('untrusted', (address, message) => notify(`UNTRUSTED tracker ${address}: ${clean(message)}`))
  client.on('sessionLost', (message) => { notify(`(${message}: login again)`); setPrompt(rl, client) })
  client.on('sharesDropped', (dropped) => { for (const d of dropped) notify(droppedLine(d)) })
  client.on('downloadFinished', (info) => notify(downloadLine(info) + (info.state === 'completed' ? ` → ${clean(info.target)}` : '')))

  // the live download bar rides in front of the prompt: readline redraws it with what is typed intact
  let barShown = false
  const barTimer = !interactive ? undefined : setInterval(() => {
    if (running !== undefined) return // a command is printing: its output must not be interleaved
    const bar = downloadsBar(client.showDownloads().downloads)
    if (bar === undefined && !barShown) return
    barShown = bar !== undefined
    setPrompt(rl, client, bar)
    rl.prompt(true)
  }, DOWNLOAD_BAR_MS)
  barTimer?.unref()
  rl.once('close', () => clearInterval(barTimer))

  if (interactive) {
    const t = client.tracker
    print(`peershare client on ${client.peerAddr} — ${t === undefined ? `no tracker reachable yet (tried ${client.trackers.map((x) => `${x.host}:${x.port}`).join(', ')}); retrying` : `tracker ${t.address}`}.` +
      `${client.userId === undefined ? '' : ` Logged in as ${client.userId}.`} Type help.`)
    rl.on('SIGINT', () => {
      if (running !== undefined) {
        running.abort()
        return
      }
      output.write('^C (type quit or press Ctrl-D to leave)\n')
      rl.write(null, { ctrl: true, name: 'u' }) // drop what was typed
      rl.prompt()
    })
    setPrompt(rl, client)
    rl.prompt()
  }

  for await (const line of rl) {
    if (line.trim() === '') {
      if (interactive) rl.prompt()
      continue
    }
    if (interactive) await appendHistory(client.dataDir.historyFile, historyLine(line.trim()))
    running = new AbortController()
    const quit = await runLine(client, line, print, interactive ? output : undefined, running.signal)
    running = undefined
    if (quit) break
    if (interactive) {
      setPrompt(rl, client)
      rl.prompt()
    }
  }
  rl.close()
}

/** Runs one line and prints its outcome; true when it was quit. */
async function runLine (client: Client, line: string, print: (s: string) => void,
  tty: NodeJS.WriteStream | undefined, signal: AbortSignal): Promise<boolean> {
  let name = line.trim().split(/\s+/)[0]!
  const bar = tty === undefined ? undefined : createProgressBar(tty, 'hashing')
  try {
    const words = parseLine(line)
    const done = await execute({ client, signal, ...(bar === undefined ? {} : { onProgress: bar.update }) }, words)
    name = done.name
    bar?.finish()
    if (name === 'quit') return true
    print(formatResult(name, done.result))
  } catch (err) {
    bar?.finish()
    if ((err as Error).name === 'AbortError') {
      print(`${clean(name)}: cancelled`)
      return false
    }
    const e = toPeershareError(err)
    if (e.code === 'INTERNAL') log.error('command failed', { command: name, error: err as Error })
    print(`${clean(name)}: ${clean(e.message)}`)
  }
  return false
}

function setPrompt (rl: Interface, client: Client, bar?: string): void {
  const base = client.userId === undefined ? 'peershare> ' : `${client.userId}@peershare> `
  rl.setPrompt(bar === undefined ? base : `${bar} ${base}`)
}

function complete (line: string): [string[], string] {
  const words = line.trimStart().split(/\s+/)
  if (words.length === 1) {
    const hits = COMMAND_NAMES.filter((n) => n.startsWith(words[0]!))
    return [hits.length > 0 ? hits.map((h) => h + ' ') : [...COMMAND_NAMES], words[0]!]
  }
  if (words.length === 2 && words[0] === 'help') {
    return [COMMAND_NAMES.filter((n) => n.startsWith(words[1]!)), words[1]!]
  }
  return [[], line]
}

/** Newest first, as readline wants it. A missing or unreadable history is just empty. */
async function loadHistory (file: string): Promise<string[]> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    return [] // first run, or unreadable: history is a convenience
  }
  const lines = text.split('\n').filter((l) => l.trim() !== '')
  const kept = lines.slice(-HISTORY_LINES)
  // the file only grows by appends: trim it back now and then
  if (lines.length > 2 * HISTORY_LINES) await writeFile(file, kept.join('\n') + '\n', { mode: 0o600 }).catch(() => {}) // next run retries
  return kept.reverse()
}

async function appendHistory (file: string, line: string): Promise<void> {
  try {
    await appendFile(file, line + '\n', { mode: 0o600 })
  } catch (err) {
    log.debug('could not save history', { error: err as Error })
  }
}
