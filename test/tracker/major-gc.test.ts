import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, it } from 'node:test'

const run = promisify(execFile)
const moduleUrl = new URL('../../src/tracker/major-gc.ts', import.meta.url).href
// in a process of its own: the flag is process-wide and cannot be read back, only its setter's answer
const probe = `const { spaceOutMajorGcs } = await import(${JSON.stringify(moduleUrl)}); process.stdout.write(String(spaceOutMajorGcs()))`

async function setsFlag (nodeArgs: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [...nodeArgs, '--input-type=module', '-e', probe])
  return stdout
}

describe('spaceOutMajorGcs', () => {
  it('sets the growth factor, unless the process was started with its own', async () => {
    assert.equal(await setsFlag([]), 'true')
    assert.equal(await setsFlag(['--heap-growing-percent=50']), 'false')
    assert.equal(await setsFlag(['--heap_growing_percent=50']), 'false')
  })
})
