import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PeershareError } from '../../src/common/errors.ts'
import { withDeadline } from '../../src/tracker/deadline.ts'

test('passes the result of a call that answers in time', async () => {
  assert.equal(await withDeadline(async () => 42, 1_000), 42)
})

test('passes the error of a call that fails in time', async () => {
  await assert.rejects(withDeadline(async () => { throw new PeershareError('EXISTS', 'taken') }, 1_000),
    (err: unknown) => err instanceof PeershareError && err.code === 'EXISTS')
})

test('a store that never answers becomes STORE_UNAVAILABLE, and its signal is aborted', async () => {
  let seen: AbortSignal | undefined
  const started = Date.now()
  await assert.rejects(withDeadline((opts) => {
    seen = opts.signal
    return new Promise<never>(() => {}) // ignores its signal, like a hung network call
  }, 50), (err: unknown) => err instanceof PeershareError && err.code === 'STORE_UNAVAILABLE')
  assert.ok(Date.now() - started < 2_000)
  assert.equal(seen?.aborted, true)
})

test('a call that fails after its deadline does not surface as an unhandled rejection', async () => {
  let failLate: (err: Error) => void = () => {}
  await assert.rejects(withDeadline(() => new Promise<never>((_resolve, reject) => { failLate = reject }), 20),
    (err: unknown) => err instanceof PeershareError && err.code === 'STORE_UNAVAILABLE')
  failLate(new Error('too late')) // node:test fails the file on an unhandled rejection
  await new Promise((resolve) => setImmediate(resolve))
})

test('calls sharing a deadline slice time out alone, and answered calls leave no timer behind', async () => {
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const before = timers()
  const fast = Array.from({ length: 50 }, (_x, i) => withDeadline(async () => i, 60_000))
  assert.deepEqual(await Promise.all(fast), Array.from({ length: 50 }, (_x, i) => i))
  assert.equal(timers(), before) // a minute-long timer left behind would show here

  let hungSignal: AbortSignal | undefined
  const hung = withDeadline((opts) => { hungSignal = opts.signal; return new Promise<never>(() => {}) }, 200)
  const slow = withDeadline(() => new Promise<string>((resolve) => setImmediate(() => resolve('late but in time'))), 200)
  assert.equal(await slow, 'late but in time')
  await assert.rejects(hung, (err: unknown) => err instanceof PeershareError && err.code === 'STORE_UNAVAILABLE')
  assert.equal(hungSignal?.aborted, true)
  assert.equal(timers(), before)
})
