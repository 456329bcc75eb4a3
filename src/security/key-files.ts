// Small secret and trust files of a data directory (identity key and certificate, ticket key, known
// trackers): read with a size cap, created exclusively or replaced atomically, fsynced, mode 0600.
// What goes in each file is decided by its owner (identity.ts, ticket-key.ts, tls.ts).

import { randomBytes } from 'node:crypto'
import { chmod, link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { PeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'

const log = createLog('security:files')

/** Larger than any key, certificate or trust list we write; a huge file is refused, not read into memory. */
export const MAX_KEY_FILE_BYTES = 1024 * 1024

export const SECRET_FILE_MODE = 0o600

/** The file's text, or undefined when it does not exist. Refuses files over MAX_KEY_FILE_BYTES. */
export async function readSmallFile (path: string): Promise<string | undefined> {
  try {
    const s = await stat(path)
    if (!s.isFile()) throw new PeershareError('BAD_REQUEST', `${path} is not a regular file`)
    if (s.size > MAX_KEY_FILE_BYTES) throw new PeershareError('BAD_REQUEST', `${path} is ${s.size} bytes, more than the ${MAX_KEY_FILE_BYTES} expected: not a peershare file?`)
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw fileError(err, 'read', path)
  }
}

/**
 * Makes sure only the owner can read a secret file: a key readable by others is tightened, with a
 * warning (ssh refuses such keys; we fix them, since nothing here is meant to need configuring).
 */
export async function ensurePrivate (path: string): Promise<void> {
  if (process.platform === 'win32') return // no POSIX modes there
  const s = await stat(path)
  if ((s.mode & 0o077) !== 0) {
    log.warn('secret file was readable by others: mode set to 0600', { path, mode: (s.mode & 0o777).toString(8) })
    await chmod(path, SECRET_FILE_MODE)
  }
}

/**
 * Creates `path` with `data` unless it exists: written to a temp file, fsynced, then hard-linked to
 * its name (link fails if the name exists, so two processes starting at once never overwrite each
 * other, and a crash never leaves half a file under the name). Returns false if the file existed.
 */
export async function createFileExclusive (path: string, data: string, mode = SECRET_FILE_MODE): Promise<boolean> {
  const tmp = await writeTemp(path, data, mode)
  try {
    await link(tmp, path)
    await syncDir(dirname(path))
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw fileError(err, 'create', path)
  } finally {
    await rm(tmp, { force: true })
  }
}

/** Replaces `path` with `data` atomically (temp file + fsync + rename): a crash leaves old or new content. */
export async function replaceFile (path: string, data: string, mode = SECRET_FILE_MODE): Promise<void> {
  const tmp = await writeTemp(path, data, mode)
  try {
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw fileError(err, 'write', path)
  }
  await syncDir(dirname(path))
}

/** Creates a data directory (0700: it holds private keys) if needed. */
export async function ensureDir (dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 })
  } catch (err) {
    throw fileError(err, 'create directory', dir)
  }
}

async function writeTemp (path: string, data: string, mode: number): Promise<string> {
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`
  try {
    // 'wx' + mode at creation: the secret is never readable by others, not even for a moment
    const fh = await open(tmp, 'wx', mode)
    try {
      await fh.writeFile(data, 'utf8')
      await fh.sync()
    } finally {
      await fh.close()
    }
    return tmp
  } catch (err) {
    await rm(tmp, { force: true })
    throw fileError(err, 'write', path)
  }
}

async function syncDir (dir: string): Promise<void> {
  // makes the new name durable; some file systems refuse fsync on a directory: then the rename is
  // as durable as that file system makes it, which is all we can do
  try {
    const fh = await open(dir, 'r')
    try { await fh.sync() } finally { await fh.close() }
  } catch (err) {
    log.debug('directory fsync not supported', { dir, err })
  }
}

function fileError (err: unknown, what: string, path: string): PeershareError {
  if (err instanceof PeershareError) return err
  const code = (err as NodeJS.ErrnoException).code ?? String(err)
  return new PeershareError('UNAVAILABLE', `cannot ${what} ${path}: ${code}`, { cause: err })
}
