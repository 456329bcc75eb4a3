// Spaces out the tracker's major GCs. Its live heap is small (~20 MB at 100 busy connections) and
// most of its garbage dies young, but state churn (groups, files, cached replies) still promotes a
// few MB a second; V8 sizes the next old-generation limit from the live heap after each major GC,
// and at this size that meant one every ~1.3 s, each pausing the one JS thread 3-8 ms (--trace-gc),
// which every request in flight waited for. A growth factor of 4 after each major GC makes them
// several times rarer; the heap then peaks at ~4× its live size (tens of MB) before it is collected.
// Measured with tracker-load paced at 20,000 requests/s (N=100, plaintext): p99 4.6-7.4 ms against
// 8.6-11.5 ms in alternated runs. V8 reads the factor at every major GC, so setting it at run time
// works; a process started with its own value keeps it. The client keeps V8's default (its memory
// is what its own bench measures).

import v8 from 'node:v8'
import { startedWith } from '../common/young-gen.ts'

/** The old generation may grow to (1 + this/100) × its live size before the next major GC. */
export const HEAP_GROWING_PERCENT = 300

/** Sets the growth factor process-wide, unless the process was started with its own. Returns whether it set it. */
export function spaceOutMajorGcs (): boolean {
  if (startedWith(/--heap[-_]growing[-_]percent/)) return false
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`)
  return true
}
