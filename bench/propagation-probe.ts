// The propagation measurement shared by bench/propagation.ts and bench/tracker.ts --store etcd: each
// change is a write through one tracker (a new group); the reader polls another tracker back to back
// until the change shows up. The probe's resolution is one listing round trip (about a tenth of a ms
// on loopback). The transport is the caller's: it passes the write and the visibility check.

import { percentile } from './stats.ts'

/** A change not visible by then is reported as lost (and the run fails): the issue asks for 1 s. */
export const GIVE_UP_MS = 10_000

export interface PropagationSamples {
  /** send → ack from the writing tracker */
  writeMs: number[]
  /** send → first listing through the reading tracker that has it */
  endToEndMs: number[]
  /** ack → seen (negative: the reader saw it before the writer's answer arrived) */
  afterAckMs: number[]
}

export interface PropagationProbe {
  /** Makes change `id` through the writing tracker; rejects when it is refused. */
  write (id: string): Promise<void>
  /** Whether change `id` is visible through the reading tracker. */
  visible (id: string): Promise<boolean>
}

/** Runs `changes` changes in sequence (ids `${idPrefix}-<i>`) and returns every sample. */
export async function measurePropagation (probe: PropagationProbe, changes: number, idPrefix: string): Promise<PropagationSamples> {
  const out: PropagationSamples = { writeMs: [], endToEndMs: [], afterAckMs: [] }
  for (let i = 0; i < changes; i++) {
    const id = `${idPrefix}-${i}`
    const sent = performance.now()
    let ackAt = 0
    const acked = probe.write(id).then(() => { ackAt = performance.now() })
    // a refused write must not leave the poll below spinning until GIVE_UP_MS
    let failed: unknown
    acked.catch((err: unknown) => { failed = err })
    let seenAt = 0
    while (seenAt === 0) {
      if (failed !== undefined) throw failed
      if (await probe.visible(id)) seenAt = performance.now()
      else if (performance.now() - sent > GIVE_UP_MS) throw new Error(`${id} not visible through the other tracker after ${GIVE_UP_MS} ms`)
    }
    await acked
    out.writeMs.push(ackAt - sent)
    out.endToEndMs.push(seenAt - sent)
    out.afterAckMs.push(seenAt - ackAt)
  }
  return out
}

/** One line: median, p99 and max of `samples`, in ms. */
export function summary (label: string, samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b)
  const f = (x: number): string => x.toFixed(2).padStart(7)
  return `${label.padEnd(38)} median ${f(percentile(s, 50))} ms   p99 ${f(percentile(s, 99))} ms   max ${f(s[s.length - 1]!)} ms`
}
