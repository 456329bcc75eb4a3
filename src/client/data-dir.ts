// The client's data directory: where it lives, its layout, and small JSON files written atomically
// (temp file + fsync + rename, so a crash leaves the old or the new content, never half of one).
// What goes in each file is decided by its owner (core.ts, shares.ts, the shell's history).

import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { PeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'

const log = createLog('client:data-dir')

/** Largest JSON file we read back: share records for thousands of files fit well below. */
const MAX_JSON_FILE_BYTES = 64 * 1024 * 1024

export interface DataDirLayout {
  root: string
  /**
   * { clientId }: the random id clients had before issue 5. The clientId is now the certificate
   * fingerprint (client-security.ts; cert.pem, key.pem, known_trackers, ticket_keys.json live here too).
   */
  clientIdFile: string
  /** { userId, token }: the session to resume, mode 0600. */
  sessionFile: string
  /** Local share records (shares.ts). */
  sharesFile: string
  /** Downloads of this client, running and finished (download-records.ts). */
  downloadsFile: string
  /** Shell history, one command per line, mode 0600. */
  historyFile: string
}

/** `~/.peershare/client-<ip>-<port>`: one directory per peer address, so two clients never share one. */
export function defaultDataDir (peerAddr: string, home: string = homedir()): string {
  const safe = peerAddr.replace(/[^A-Za-z0-9.]+/g, '-').replace(/^-+|-+$/g, '')
  return join(home, '.peershare', `client-${safe}`)
}

export function layoutOf (root: string): DataDirLayout {
  const abs = resolve(root)
  return {
    root: abs,
    clientIdFile: join(abs, 'client-id.json'),
    sessionFile: join(abs, 'session.json'),
    sharesFile: join(abs, 'shares.json'),
    downloadsFile: join(abs, 'downloads.json'),
    historyFile: join(abs, 'history'),
  }
}

/** Creates the directory (mode 0700: it holds session tokens) and returns its layout. */
export async function openDataDir (root: string): Promise<DataDirLayout> {
  const layout = layoutOf(root)
  try {
    await mkdir(layout.root, { recursive: true, mode: 0o700 })
    const s = await stat(layout.root)
    if (!s.isDirectory()) throw new PeershareError('BAD_REQUEST', `data dir ${layout.root} is not a directory`)
  } catch (err) {
    if (err instanceof PeershareError) throw err
    if ((err as NodeJS.ErrnoException).code === 'EEXIST' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw new PeershareError('BAD_REQUEST', `data dir ${layout.root} is not a directory`, { cause: err })
    }
    throw new PeershareError('UNAVAILABLE', `cannot use data dir ${layout.root}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err })
  }
  return layout
}

/**
 * Writes `value` as JSON to `path` atomically: a reader sees the old file or the new one, and a
 * crash (even a power cut, thanks to fsync before rename) never leaves a truncated file.
 */
export async function writeJsonAtomic (path: string, value: unknown, mode = 0o600): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
  const fh = await open(tmp, 'w', mode)
  try {
    await fh.writeFile(JSON.stringify(value, null, 1) + '\n', 'utf8')
    await fh.sync()
  } finally {
    await fh.close()
  }
  try {
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}

/**
 * Reads a JSON file back through `validate`. Missing file: undefined. Unreadable or invalid
 * content: the file is moved aside (kept for inspection), a warning is logged, and undefined is
 * returned, so one damaged file never stops the client from starting.
 */
export async function readJson<T> (path: string, validate: (v: unknown) => T | undefined): Promise<T | undefined> {
  let text: string
  try {
    const s = await stat(path)
    if (s.size > MAX_JSON_FILE_BYTES) throw new Error(`${s.size} bytes is more than ${MAX_JSON_FILE_BYTES}`)
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    return await setAside(path, err)
  }
  let value: T | undefined
  try {
    value = validate(JSON.parse(text))
  } catch (err) {
    return await setAside(path, err)
  }
  if (value === undefined) return await setAside(path, new Error('unexpected content'))
  return value
}

async function setAside (path: string, err: unknown): Promise<undefined> {
  const aside = `${path}.bad-${Date.now()}`
  log.warn('ignoring a damaged data file', { path, movedTo: aside, error: err instanceof Error ? err : String(err) })
  try {
    await rename(path, aside)
  } catch (renameErr) {
    // nothing more to do: the next write replaces the file anyway
    log.warn('could not move the damaged file aside', { path, error: renameErr as Error })
  }
  return undefined
}

export async function removeFile (path: string): Promise<void> {
  await rm(path, { force: true })
}

const CLIENT_ID_RE = /^[0-9a-f]{32}$/

/** The pre-issue-5 random client id (16 bytes, hex), made on first use. Not used by the core any more. */
export async function loadClientId (layout: DataDirLayout): Promise<string> {
  const existing = await readJson(layout.clientIdFile, (v) => {
    const id = (v as { clientId?: unknown } | null)?.clientId
    return typeof id === 'string' && CLIENT_ID_RE.test(id) ? id : undefined
  })
  if (existing !== undefined) return existing
  const clientId = randomBytes(16).toString('hex')
  await writeJsonAtomic(layout.clientIdFile, { clientId })
  return clientId
}

export interface SavedSession {
  userId: string
  token: string
}

export async function loadSession (layout: DataDirLayout): Promise<SavedSession | undefined> {
  return await readJson(layout.sessionFile, (v) => {
    const s = v as Partial<SavedSession> | null
    if (typeof s?.userId !== 'string' || typeof s.token !== 'string') return undefined
    return { userId: s.userId, token: s.token }
  })
}

export async function saveSession (layout: DataDirLayout, session: SavedSession | undefined): Promise<void> {
  if (session === undefined) await removeFile(layout.sessionFile)
  else await writeJsonAtomic(layout.sessionFile, session, 0o600)
}
