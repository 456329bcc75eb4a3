import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PeershareError } from '../../src/common/errors.ts'
import { Limiter } from '../../src/common/limiter.ts'

function gate (): { promise: Promise<void>, open: () => void } {
  const { promise, resolve } = Promise.withResolvers<void>()
  return { promise, open: resolve }
}

test('runs at most `concurrency` tasks at once, the rest in arrival order', async () => {
  const limiter = new Limiter(2, 10)
  const gates = [gate(), gate(), gate(), gate()]
  const started: number[] = []
  const runs = gates.map((g, i) => limiter.run(async () => { started.push(i); await g.promise; return i }))
  await Promise.resolve()
  assert.deepEqual(started, [0, 1])
  assert.equal(limiter.running, 2)
  assert.equal(limiter.waiting, 2)
  gates[1]!.open()
  await runs[1]
  await Promise.resolve()
  assert.deepEqual(started, [0, 1, 2])
  for (const g of gates) g.open()
  assert.deepEqual(await Promise.all(runs), [0, 1, 2, 3])
  assert.equal(limiter.running, 0)
  assert.equal(limiter.waiting, 0)
})

test('refuses with BUSY past the waiting line, and recovers once tasks finish', async () => {
  const limiter = new Limiter(1, 1, 'too many logins')
  const g = gate()
  const first = limiter.run(() => g.promise)
  const second = limiter.run(async () => 'second')
  await assert.rejects(limiter.run(async () => 'third'), (err: unknown) =>
    err instanceof PeershareError && err.code === 'BUSY' && err.message === 'too many logins')
  g.open()
  await first
  assert.equal(await second, 'second')
  assert.equal(await limiter.run(async () => 'later'), 'later')
})

test('a failing task frees its slot', async () => {
  const limiter = new Limiter(1, 0)
  await assert.rejects(limiter.run(async () => { throw new Error('boom') }), /boom/)
  assert.equal(await limiter.run(async () => 1), 1)
})
