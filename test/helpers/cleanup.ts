// Cleanups run last-registered-first, as Go's t.Cleanup: a temporary directory is removed after
// what was opened in it is closed. node:test runs t.after hooks first-registered-first, so a store
// opened in a tmpDir and closed by a later t.after would find its directory already gone.
import type { TestContext } from 'node:test'

type Cleanup = () => unknown
const stacks = new WeakMap<object, Cleanup[]>()

export function defer (t: Pick<TestContext, 'after'>, cleanup: Cleanup): void {
  let stack = stacks.get(t)
  if (stack === undefined) {
    const own: Cleanup[] = []
    stacks.set(t, own)
    t.after(async () => {
      for (let next = own.pop(); next !== undefined; next = own.pop()) await next()
    })
    stack = own
  }
  stack.push(cleanup)
}
