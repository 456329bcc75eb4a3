// `peershare tracker <tracker_info_file> <tracker_no> [--data-dir DIR] [--store STORE] [--verbose]`:
// parses the arguments, prepares the data directory, opens the store, listens on the address the
// trackers file gives this tracker, prints one ready line on stdout, and stops cleanly on SIGINT/SIGTERM.
// STORE (or the PEERSHARE_STORE environment variable) is `sqlite` (default: one file in the data
// directory, for a tracker on its own) or `etcd://host:port[,host:port...][/prefix]` (several trackers
// sharing one etcd cluster; the optional key prefix lets several independent deployments, or tests,
// share one cluster — trackers that must see each other use the same prefix).

import { mkdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { PeershareError } from '../common/errors.ts'
import { createLog, setLogLevel } from '../common/log.ts'
import { parseTrackerInfo } from '../common/tracker-info.ts'
import type { TrackerAddress } from '../common/tracker-info.ts'
import { openSqliteStore } from '../store/sqlite.ts'
import type { Store } from '../store/store.ts'
import { loadOrCreateIdentity } from '../security/identity.ts'
import { loadOrCreateTicketKey } from '../security/ticket-key.ts'
import { startTrackerServer } from './server.ts'
import { capYoungGeneration } from '../common/young-gen.ts'
import { spaceOutMajorGcs } from './major-gc.ts'

const log = createLog('tracker')

export const TRACKER_USAGE = 'usage: peershare tracker <tracker_info_file> <tracker_no> [--data-dir DIR] ' +
  '[--store sqlite|etcd://host:port[,host:port...][/prefix]] [--insecure-plaintext] [--verbose]'

/** A mistake in the command line: exit code 2 and the usage line. */
class UsageError extends Error {}

export type StoreChoice = { kind: 'sqlite' } | { kind: 'etcd', endpoints: string[], prefix?: string }

/** More members than any sensible etcd cluster (they are odd-sized, 3 or 5). */
const MAX_ETCD_ENDPOINTS = 16
const HOST_PORT_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/
/** Path-like segments only: the prefix becomes the root of every etcd key (`/<prefix>/...`). */
const PREFIX_RE = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/
const MAX_PREFIX_CHARS = 128

/** `sqlite`, or `etcd://host:port[,host:port...][/prefix]` → the etcd client URLs and key prefix. */
export function parseStoreChoice (text: string): StoreChoice {
  if (text === 'sqlite') return { kind: 'sqlite' }
  if (!text.startsWith('etcd://')) {
    throw new UsageError(`unknown store '${text.slice(0, 40)}': use --store sqlite or --store etcd://host:port[,host:port...]`)
  }
  const rest = text.slice('etcd://'.length)
  const slash = rest.indexOf('/')
  const hosts = slash < 0 ? rest : rest.slice(0, slash)
  const prefixText = slash < 0 ? undefined : rest.slice(slash + 1).replace(/\/+$/, '')
  if (prefixText !== undefined && (prefixText.length > MAX_PREFIX_CHARS || !PREFIX_RE.test(prefixText))) {
    throw new UsageError(`bad etcd key prefix '${prefixText.slice(0, 60)}' in --store: use letters, digits, '.', '_', '-' and '/' (e.g. etcd://host:port/team-a)`)
  }
  const list = hosts.split(',')
  if (list.length > MAX_ETCD_ENDPOINTS) throw new UsageError(`too many etcd endpoints (${list.length}, at most ${MAX_ETCD_ENDPOINTS})`)
  const endpoints = list.map((hostPort) => {
    const m = HOST_PORT_RE.exec(hostPort)
    const port = Number(m?.[2])
    if (m === null || port < 1 || port > 65535) {
      throw new UsageError(`bad etcd endpoint '${hostPort.slice(0, 60)}' in --store: use etcd://host:port[,host:port...]`)
    }
    return `http://${hostPort}`
  })
  return prefixText === undefined ? { kind: 'etcd', endpoints } : { kind: 'etcd', endpoints, prefix: `/${prefixText}` }
}

export interface TrackerConfig {
  infoFile: string
  trackerNo: number
  dataDir: string
  store: StoreChoice
  verbose: boolean
  /** Plain TCP instead of TLS 1.3: for benchmarking only (a warning is printed). */
  insecurePlaintext: boolean
}

export function parseTrackerArgs (argv: string[]): TrackerConfig {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        'data-dir': { type: 'string' },
        store: { type: 'string' },
        verbose: { type: 'boolean', short: 'v', default: false },
        'insecure-plaintext': { type: 'boolean', default: false },
      },
    })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const { values, positionals } = parsed
  if (positionals.length !== 2) throw new UsageError(`expected 2 arguments, got ${positionals.length}`)
  const [infoFile, noText] = positionals as [string, string]
  if (!/^[1-9]\d{0,5}$/.test(noText)) throw new UsageError(`tracker_no must be a number from 1, got '${noText.slice(0, 20)}'`)
  const trackerNo = Number(noText)
  const store = parseStoreChoice(values.store ?? process.env.PEERSHARE_STORE ?? 'sqlite')
  const dataDir = values['data-dir'] ?? join('data', `tracker-${trackerNo}`)
  return { infoFile, trackerNo, dataDir: resolve(dataDir), store, verbose: values.verbose, insecurePlaintext: values['insecure-plaintext'] }
}

async function trackerAddress (infoFile: string, trackerNo: number): Promise<TrackerAddress> {
  let text: string
  try {
    text = await readFile(infoFile, 'utf8')
  } catch (err) {
    throw new UsageError(`cannot read the trackers file ${infoFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  let trackers: TrackerAddress[]
  try {
    trackers = parseTrackerInfo(text, infoFile)
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const me = trackers[trackerNo - 1]
  if (me === undefined) {
    throw new UsageError(`tracker_no ${trackerNo} is not in ${infoFile}: it lists ${trackers.length} tracker(s), numbered from 1`)
  }
  return me
}

/**
 * Runs a tracker until SIGINT/SIGTERM (argv: the arguments after `tracker`). Never throws: errors
 * are printed on stderr and set process.exitCode (2 for usage errors, 1 otherwise).
 */
export async function runTracker (argv: string[]): Promise<void> {
  try {
    await serve(parseTrackerArgs(argv))
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`peershare tracker: ${err.message}\n${TRACKER_USAGE}\n`)
      process.exitCode = 2
    } else if (err instanceof PeershareError && err.code !== 'INTERNAL') {
      process.stderr.write(`peershare tracker: ${err.message}\n`)
      process.exitCode = 1
    } else {
      log.error('tracker failed', { err })
      process.stderr.write('peershare tracker: internal error (run with --verbose for details)\n')
      process.exitCode = 1
    }
  }
}

async function serve (config: TrackerConfig): Promise<void> {
  if (config.verbose) setLogLevel('debug')
  const me = await trackerAddress(config.infoFile, config.trackerNo)
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 })
  // the identity (TLS certificate) and the ticket key exist even in plaintext mode: switching back
  // to TLS then keeps the fingerprint clients pinned
  const identity = await loadOrCreateIdentity(config.dataDir)
  const ticketKey = await loadOrCreateTicketKey(config.dataDir)
  if (config.insecurePlaintext) {
    process.stderr.write('peershare tracker: WARNING: --insecure-plaintext: no TLS, no client identities, no download tickets; ' +
      'anyone on the path can read and alter traffic. For benchmarking only.\n')
  }
  const choice = config.store
  const storePath = choice.kind === 'etcd' ? `etcd ${choice.endpoints.join(',')}${choice.prefix ?? ''}` : join(config.dataDir, 'tracker.sqlite')
  let store: Store
  try {
    store = choice.kind === 'etcd'
      // etcd's client (gRPC, protobuf) is loaded only by the trackers that use it: ~20 MB of RSS otherwise
      ? await (await import('../store/etcd.ts')).openEtcdStore({ endpoints: choice.endpoints, ...(choice.prefix === undefined ? {} : { prefix: choice.prefix }) })
      : await openSqliteStore(storePath)
  } catch (err) {
    if (err instanceof PeershareError) throw err
    throw new PeershareError('UNAVAILABLE', `cannot open the store ${storePath}: ${(err as Error).message}`, { cause: err })
  }
  // signals are caught before listening, so a SIGTERM right after the ready line still closes cleanly
  const stop = Promise.withResolvers<string>()
  const onSignal = (signal: string): void => stop.resolve(signal)
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  capYoungGeneration() // process-wide: set by the process's own entry (young-gen.ts)
  spaceOutMajorGcs() // the tracker only: fewer pauses of its one JS thread (major-gc.ts)
  try {
    const server = await startTrackerServer({
      store,
      trackerNo: config.trackerNo,
      host: me.host,
      port: me.port,
      ...(config.insecurePlaintext ? {} : { tls: { identity }, ticketSigner: ticketKey }),
    })
    try {
      process.stdout.write(`tracker ${config.trackerNo} listening on ${formatHost(server.address.host)}:${server.address.port}, ${config.insecurePlaintext ? 'INSECURE PLAINTEXT' : `id ${identity.fingerprint}`}\n`)
      log.info('ready', { dataDir: config.dataDir, store: storePath })
      const signal = await stop.promise
      log.info('stopping', { signal })
    } finally {
      await server.close()
    }
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    await store.close()
  }
}

function formatHost (host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
