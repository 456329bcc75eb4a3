// A one-line progress bar for the terminal (upload hashing now, downloads later). Redraws in place
// at most every RENDER_EVERY_MS; callers only create one when the output is a TTY.

import { humanSize } from './commands.ts'

const RENDER_EVERY_MS = 100
const BAR_CELLS = 24

export interface ProgressBar {
  update (done: number, total: number): void
  /** Erases the bar so the next line starts clean. */
  finish (): void
}

export function createProgressBar (out: NodeJS.WriteStream, label: string): ProgressBar {
  let last = 0
  let drawn = false
  return {
    update (done, total) {
      const now = Date.now()
      if (now - last < RENDER_EVERY_MS && done < total) return
      last = now
      const frac = total === 0 ? 1 : done / total
      const cells = Math.round(frac * BAR_CELLS)
      const line = `${label} [${'#'.repeat(cells)}${'-'.repeat(BAR_CELLS - cells)}] ${String(Math.floor(frac * 100)).padStart(3)}%  ${humanSize(done)} / ${humanSize(total)}`
      out.write(`\r${line.slice(0, Math.max(10, (out.columns > 0 ? out.columns : 80) - 1))}\x1b[K`)
      drawn = true
    },
    finish () {
      if (drawn) out.write('\r\x1b[K')
      drawn = false
    },
  }
}
