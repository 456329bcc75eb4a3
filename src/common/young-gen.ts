// Caps the V8 young generation of a long-running peershare process (tracker or client).
//
// Under load V8 doubles the young generation (new space) again and again: Node 24 on a 64-bit machine
// with much memory lets it reach 2 × 64 MiB. A tracker's work is thousands of small requests whose
// objects die young, so it does reach it: with the bench's 2,000 connections, 128 MB of a ~340 MB RSS
// was new space, for ~35 MB of live JS objects. A smaller young generation costs some more (cheap)
// scavenges: what a scavenge costs is the objects that survive it, which are the same few requests in
// flight whatever its size. A downloading client is the same: 47 MiB of JS garbage per GiB, short-lived,
// yet its RSS grew with the file's size (137 MiB at 1 GiB, 186 MiB at 4 GiB) as the new space doubled.
//
// The clean knob, --max-semi-space-size, is read once when the process starts: the peershare command
// (bin/peershare.js) passes it, which this module then leaves alone. This is for the processes
// started otherwise (node on a script, the tests): what V8 reads at every growth step is the growth
// factor (--semi-space-growth-factor), so after each young-generation GC (the only time the new space
// grows or shrinks) the tracker sets it: the usual 2 while one more doubling stays within the cap, else 1
// (no growth). The new space thus ends at the cap (or below it by less than half; past it only if
// V8 doubles it twice between two GC reports), and can grow back to it after V8 shrank
// it in a quiet spell. A process started with its own semi-space flags is left alone.

import { PerformanceObserver, constants } from 'node:perf_hooks'
import type { PerformanceEntry } from 'node:perf_hooks'
import v8 from 'node:v8'
import { createLog } from './log.ts'

const log = createLog('heap')

/** New space (both semi-spaces) the tracker lets V8 grow to: 16 MiB, i.e. --max-semi-space-size=8. */
const YOUNG_GEN_CAP_BYTES = 16 * 1024 * 1024

/** V8's own growth factor (its default): used below the cap. */
const DEFAULT_GROWTH_FACTOR = 2

/** The factor last set (process-wide, like the flag itself); undefined: never set by us. */
let factorSet: number | undefined
let watching = false

function newSpaceBytes (): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0
}

/** True when the process was started with a flag `flag` matches (command line or NODE_OPTIONS): its own heap sizing, left alone. */
export function startedWith (flag: RegExp): boolean {
  return flag.test([...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' '))
}

function setFactor (factor: number): void {
  if (factorSet === factor) return
  v8.setFlagsFromString(`--semi-space-growth-factor=${factor}`)
  factorSet = factor
  log.debug('young generation growth factor', { factor, newSpaceBytes: newSpaceBytes() })
}

/**
 * Keeps the young generation from growing past `capBytes`, for the life of the process (once: later
 * calls do nothing). Returns a function that stops watching and gives V8 its own factor back (tests).
 */
export function capYoungGeneration (capBytes = YOUNG_GEN_CAP_BYTES): () => void {
  if (watching || startedWith(/--(max|min)[-_]semi[-_]space[-_]size|--semi[-_]space[-_]growth[-_]factor|--max[-_]heap[-_]size/)) return () => {}
  watching = true
  // grow only while one more doubling stays within the cap (the bench saw 16 → 32 MiB with ">= cap")
  const adjust = (): void => setFactor(newSpaceBytes() * DEFAULT_GROWTH_FACTOR > capBytes ? 1 : DEFAULT_GROWTH_FACTOR)
  adjust()
  const observer = new PerformanceObserver((list) => {
    if (list.getEntries().some((e) => (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR)) adjust()
  })
  observer.observe({ entryTypes: ['gc'] })
  return () => {
    observer.disconnect()
    setFactor(DEFAULT_GROWTH_FACTOR)
    watching = false
  }
}
