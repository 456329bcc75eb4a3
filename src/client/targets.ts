// Where a download goes: the destination the user typed (trusted: it is their own path, `..` and
// all) joined with the file name from the network (not trusted: validated before any join).

import { stat } from 'node:fs/promises'
import type { Stats } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { PeershareError } from '../common/errors.ts'
import { printable, validateFileName } from '../protocol/names.ts'

/**
 * The file a download writes: `dest/<name>` when dest is an existing directory, else dest itself
 * (its directory must exist). The name comes from the network: it is validated before it is
 * joined to a path, whatever the tracker claims to have checked.
 */
export async function resolveTarget (dest: string, name: string): Promise<string> {
  let safe: string
  try {
    safe = validateFileName(name)
  } catch (err) {
    throw new PeershareError('BAD_REQUEST', `refusing to download '${printable(String(name))}': not a plain file name`, { cause: err })
  }
  const abs = resolve(dest)
  const s = await statOrUndefined(abs)
  const target = s?.isDirectory() === true ? join(abs, safe) : abs
  if (target !== abs ? await statOrUndefined(target) !== undefined : s !== undefined) {
    throw new PeershareError('EXISTS', `${target} already exists: refusing to overwrite it`)
  }
  const parent = await statOrUndefined(dirname(target))
  if (parent?.isDirectory() !== true) throw new PeershareError('NOT_FOUND', `no such directory: ${dirname(target)}`)
  return target
}

async function statOrUndefined (path: string): Promise<Stats | undefined> {
  try {
    return await stat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined
    throw new PeershareError('BAD_REQUEST', `cannot use ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err })
  }
}

