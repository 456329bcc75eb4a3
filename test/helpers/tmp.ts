// Temporary directories removed when the test ends, after the cleanups registered with defer() since.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { defer } from './cleanup.ts'

export async function tmpDir (t: Pick<TestContext, 'after'>, prefix = 'peershare-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  defer(t, () => rm(dir, { recursive: true, force: true })) // after what was opened in it is closed (defer)
  return dir
}
