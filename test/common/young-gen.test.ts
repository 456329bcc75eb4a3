// The young-generation cap: in a real process that allocates like a busy server (many
// short-lived objects, some surviving a while), V8's new space stops growing at the cap; without
// it, it grows well past. Each case runs in a child process: the growth factor is process-wide.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'

const run = promisify(execFile)
const moduleUrl = new URL('../../src/common/young-gen.ts', import.meta.url).href
const MB = 1024 * 1024

/** New-space capacity after a burst of allocation, in a fresh process; with `cap`, capYoungGeneration(cap) first. */
async function newSpaceAfterLoad (cap: number | undefined, env: NodeJS.ProcessEnv = {}): Promise<number> {
  const script = `
    import v8 from 'node:v8'
    import { capYoungGeneration } from ${JSON.stringify(moduleUrl)}
    ${cap === undefined ? '' : `capYoungGeneration(${cap})`}
    const keep = []
    for (let round = 0; round < 600; round++) {
      for (let i = 0; i < 5_000; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 20_000) keep.splice(0, 10_000) }
      await new Promise((resolve) => setImmediate(resolve)) // GC observers run between turns, as in a server
    }
    // its size right after a young-generation GC: between two, V8 adds pages as objects are allocated
    // (sampled at a random moment, a 4 MiB new space read anywhere from 4 to 9.5 MiB)
    globalThis.gc({ type: 'minor' })
    console.log(v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size)`
  const { stdout } = await run(process.execPath, ['--expose-gc', '--input-type=module', '-e', script],
    { cwd: fileURLToPath(new URL('../..', import.meta.url)), env: { ...process.env, NODE_OPTIONS: '', ...env } })
  return Number(stdout.trim())
}

test('new space stops growing at the cap, and grows past it without one', async () => {
  const [capped, free] = await Promise.all([newSpaceAfterLoad(4 * MB), newSpaceAfterLoad(undefined)])
  assert.ok(capped <= 4 * MB, `capped at 4 MiB, new space is ${capped / MB} MiB`)
  assert.ok(free > 2 * 4 * MB, `without a cap new space grew only to ${free / MB} MiB: the test does not load enough`)
})

test('a process started with its own semi-space size keeps it', async () => {
  const size = await newSpaceAfterLoad(4 * MB, { NODE_OPTIONS: '--max-semi-space-size=16' })
  assert.ok(size > 2 * 4 * MB, `new space ${size / MB} MiB: the cap overrode --max-semi-space-size`)
})
