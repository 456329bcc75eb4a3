import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { resolveTarget } from '../../src/client/targets.ts'
import { tmpDir } from '../helpers/tmp.ts'

test('an existing directory gets the file under its own name; another path is the target itself', async (t) => {
  const dir = await tmpDir(t)
  await mkdir(join(dir, 'sub'))
  assert.equal(await resolveTarget(dir, 'movie.mkv'), join(dir, 'movie.mkv'))
  assert.equal(await resolveTarget(join(dir, 'renamed.mkv'), 'movie.mkv'), join(dir, 'renamed.mkv'))
  // the destination is the user's: relative parts are theirs to use
  assert.equal(await resolveTarget(join(dir, 'sub', '..', 'x.bin'), 'movie.mkv'), join(dir, 'x.bin'))
})

test('a name from the network that is not a plain name is never joined to a path', async (t) => {
  const dir = await tmpDir(t)
  for (const name of ['../evil', '..', '.', 'a/b', 'a\\b', '/etc/passwd', '', 'x\u0000y', ' lead', 'esc\u001b[2J']) {
    await assert.rejects(resolveTarget(dir, name), { code: 'BAD_REQUEST' }, JSON.stringify(name))
  }
  // even when the destination is a file path and the name would not be used
  await assert.rejects(resolveTarget(join(dir, 'x.bin'), '../evil'), { code: 'BAD_REQUEST' })
})

test('refuses to overwrite, and needs an existing parent directory', async (t) => {
  const dir = await tmpDir(t)
  await writeFile(join(dir, 'movie.mkv'), 'x')
  await assert.rejects(resolveTarget(dir, 'movie.mkv'), { code: 'EXISTS' })
  await assert.rejects(resolveTarget(join(dir, 'movie.mkv'), 'other'), { code: 'EXISTS' })
  await assert.rejects(resolveTarget(join(dir, 'no', 'such', 'x'), 'movie.mkv'), { code: 'NOT_FOUND' })
  await assert.rejects(resolveTarget(join(dir, 'movie.mkv', 'x'), 'y'), { code: 'NOT_FOUND' }) // parent is a file
})
