// Waiting on conditions, never on time.
import { setTimeout as sleep } from 'node:timers/promises'

export async function waitFor<T> (probe: () => T | undefined | Promise<T | undefined>,
  what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`)
    await sleep(20)
  }
}
