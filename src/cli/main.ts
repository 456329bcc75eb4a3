// The `peershare` command: argv dispatch to the tracker or the client, and the client's start-up
// (core, then the shell or --json mode). Usage errors: one line on stderr, exit 2. Start-up
// failures: one line on stderr, exit 1. Never a stack trace (details with --verbose).

import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { PeershareError } from '../common/errors.ts'
import { createLog, setLogLevel } from '../common/log.ts'
import { capYoungGeneration } from '../common/young-gen.ts'
import { Client, identityFingerprint } from '../client/core.ts'
import { runJsonMode } from './json-mode.ts'
import { parseRate } from './rate.ts'
import { runShell } from './shell.ts'

const log = createLog('cli')

const CLIENT_USAGE = 'peershare client <ip>:<port> <tracker_info_file> [--data-dir DIR] [--upload-limit RATE] [--json] [--insecure-plaintext] [--verbose]'
const INSECURE_WARNING = 'WARNING: --insecure-plaintext: no TLS, no certificate checks, no download tickets; ' +
  'anyone on the path can read and alter traffic, and anyone can fetch what this client shares. For benchmarking only.'
const USAGE = `usage:
  ${CLIENT_USAGE}
      start a client serving peers on <ip>:<port>, with an interactive shell
      (--json: one command per stdin line, one JSON reply per stdout line;
      --upload-limit: cap on what this client sends to peers, e.g. 20MB, 500KB, 1.5MB per second,
      0 or none for no cap, the default)
  peershare tracker <tracker_info_file> <tracker_no> [--data-dir DIR] [--insecure-plaintext] [--verbose]
      run tracker number <tracker_no> of the trackers file
  peershare id [--data-dir DIR]
      print the identity (certificate fingerprint, SHA256:...) kept in DIR (default: the current
      directory), as a tracker prints it at start and a trackers file pins it
  (--insecure-plaintext: plain TCP without certificates or tickets, for benchmarking only)
  peershare --help
`

class UsageError extends Error {}

async function main (argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  switch (cmd) {
    case undefined:
      process.stderr.write(USAGE)
      return 2
    case '--help': case '-h': case 'help':
      process.stdout.write(USAGE)
      return 0
    case 'tracker': {
      const { runTracker } = await import('../tracker/main.ts')
      await runTracker(rest) // sets process.exitCode itself
      return typeof process.exitCode === 'number' ? process.exitCode : 0
    }
    case 'client':
      return await runClient(rest)
    case 'id':
      return await runId(rest)
    default:
      throw new UsageError(`unknown command '${cmd.slice(0, 40)}': use 'client' or 'tracker' (peershare --help)`)
  }
}

async function runClient (argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        'data-dir': { type: 'string' },
        'upload-limit': { type: 'string' },
        json: { type: 'boolean', default: false },
        'insecure-plaintext': { type: 'boolean', default: false },
        verbose: { type: 'boolean', short: 'v', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split('\n')[0]} (usage: ${CLIENT_USAGE})`)
  }
  const { values, positionals } = parsed
  if (values.help) {
    process.stdout.write(USAGE)
    return 0
  }
  if (positionals.length !== 2) throw new UsageError(`expected <ip>:<port> and <tracker_info_file> (usage: ${CLIENT_USAGE})`)
  if (values.verbose) setLogLevel('debug')
  const [peerAddr, trackersFile] = positionals as [string, string]
  const dataDir = values['data-dir']
  let uploadLimit = 0
  if (values['upload-limit'] !== undefined) {
    const parsed = parseRate(values['upload-limit'])
    if (parsed === undefined) {
      throw new UsageError(`--upload-limit '${values['upload-limit'].slice(0, 40)}' is not a rate: use e.g. 20MB, 500KB, 1.5MB, or 0/none for no limit`)
    }
    uploadLimit = parsed
  }

  capYoungGeneration() // the client process: downloads allocate like a busy server (young-gen.ts)
  let client: Client
  try {
    if (values['insecure-plaintext']) process.stderr.write(`peershare: ${INSECURE_WARNING}\n`)
    client = await Client.start({ peerAddr, trackersFile, uploadLimit, insecurePlaintext: values['insecure-plaintext'], ...(dataDir === undefined ? {} : { dataDir }) })
  } catch (err) {
    if (err instanceof PeershareError && err.code !== 'INTERNAL') {
      process.stderr.write(`peershare: ${err.message}\n`)
      return 1
    }
    throw err
  }
  // a signal ends the client cleanly: sockets closed, the session kept for the next run
  const stop = (): void => {
    void client.close().then(() => exit(0))
  }
  process.once('SIGTERM', stop)
  const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true
  if (!interactive || values.json) process.once('SIGINT', stop)
  try {
    if (values.json) {
      await runJsonMode(client, process.stdin, (line) => process.stdout.write(line + '\n'))
    } else {
      await runShell(client, { input: process.stdin, output: process.stdout, interactive })
    }
  } finally {
    await client.close()
  }
  return 0
}

/** `peershare id [--data-dir DIR]`: the fingerprint of the identity in DIR; never creates one. */
async function runId (argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, allowPositionals: false, strict: true, options: { 'data-dir': { type: 'string' } } })
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split('\n')[0]} (usage: peershare id [--data-dir DIR])`)
  }
  const dir = resolve(parsed.values['data-dir'] ?? '.')
  try {
    process.stdout.write(`${await identityFingerprint(dir)}\n`)
    return 0
  } catch (err) {
    if (!(err instanceof PeershareError) || err.code === 'INTERNAL') throw err
    process.stderr.write(`peershare: ${err.message}\n`)
    return 1
  }
}

/** Exits once stdout has taken everything written so far (pipes may be asynchronous). */
function exit (code: number): void {
  process.stdout.write('', () => process.exit(code))
}

try {
  exit(await main(process.argv.slice(2)))
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`peershare: ${err.message}\n`)
    exit(2)
  } else {
    log.error('failed', { error: err as Error })
    process.stderr.write('peershare: internal error (run with --verbose for details)\n')
    exit(1)
  }
}
