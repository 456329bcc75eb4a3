// --json mode: one command per stdin line, exactly one JSON object per command on one stdout line,
// strictly in order. Events (ready, switched, ...) are lines with an "event" key. Nothing else goes
// to stdout; logs go to stderr. EOF: the command in flight finishes and prints, then we return.

import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { PeershareError, toPeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import type { Client } from '../client/core.ts'
import { execute, parseLine } from './commands.ts'

const log = createLog('cli:json')

/** A longer line is refused (not executed): no command needs more. */
const MAX_LINE_CHARS = 64 * 1024

export async function runJsonMode (client: Client, input: Readable, write: (line: string) => void): Promise<void> {
  const emit = (obj: Record<string, unknown>): void => write(JSON.stringify(obj))
  emit({
    event: 'ready',
    peerAddr: client.peerAddr,
    clientId: client.clientId,
    tracker: client.tracker?.address ?? null,
    userId: client.userId ?? null,
    dataDir: client.dataDir.root,
    fingerprint: client.fingerprint,
  })
  // trackers refused for their certificate before and after the ready line: one event each
  for (const u of client.untrustedTrackers) emit({ event: 'untrusted', tracker: u.address, message: u.message })
  client.on('untrusted', (address, message) => emit({ event: 'untrusted', tracker: address, message }))
  client.on('switched', (info) => emit({ event: 'switched', tracker: info.address, resumed: info.resumed }))
  client.on('disconnected', (address) => emit({ event: 'disconnected', tracker: address }))
  client.on('sessionLost', (message) => emit({ event: 'sessionLost', message }))
  client.on('sharesDropped', (dropped) => emit({ event: 'sharesDropped', shares: dropped }))
  client.on('downloadFinished', (info) => emit({ event: 'downloadFinished', download: info }))
  client.on('trackerEvent', (name, data) => emit({ event: 'tracker', name, data }))

  const rl = createInterface({ input, terminal: false, crlfDelay: Infinity })
  for await (const line of rl) {
    if (line.trim() === '') continue
    const reply = await runLine(client, line)
    emit(reply)
    if (reply.command === 'quit' && reply.ok) break
  }
  rl.close()
}

async function runLine (client: Client, line: string): Promise<Record<string, unknown>> {
  let name = line.trim().split(/\s+/)[0]!.slice(0, 64)
  try {
    if (line.length > MAX_LINE_CHARS) throw new PeershareError('BAD_REQUEST', `line longer than ${MAX_LINE_CHARS} characters`)
    const words = parseLine(line)
    const done = await execute({ client }, words)
    name = done.name
    return { command: name, ok: true, result: done.result }
  } catch (err) {
    const e = toPeershareError(err)
    if (e.code === 'INTERNAL') log.error('command failed', { command: name, error: err as Error })
    return { command: name, ok: false, error: { code: e.code, message: e.message } }
  }
}
