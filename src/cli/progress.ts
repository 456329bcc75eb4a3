// Progress for the terminal: a one-line bar for upload hashing (redrawn in place at most every
// RENDER_EVERY_MS), and the compact download bar the shell puts in front of its prompt. Callers only
// use them when the output is a TTY.

import type { DownloadInfo } from '../client/core.ts'
import { clean, humanRate, humanSize, percentOf } from './commands.ts'

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

/**
 * The live download bar the shell shows in front of its prompt while downloads run (on a terminal
 * only): one download by name, several summed up. Undefined when nothing runs.
 */
export function downloadsBar (downloads: readonly DownloadInfo[]): string | undefined {
  const running = downloads.filter((d) => d.state === 'running' || d.state === 'waiting')
  if (running.length === 0) return undefined
  let done = 0
  let total = 0
  let bps = 0
  for (const d of running) {
    done += d.bytesDone
    total += d.bytes
    bps += d.speedBps
  }
  const pct = percentOf(done, total)
  const cells = Math.round(pct * DOWNLOAD_BAR_CELLS / 100)
  const what = running.length === 1 ? shorten(clean(running[0]!.file), 20) : `${running.length} downloads`
  const speed = running.every((d) => d.state === 'waiting') ? 'waiting' : humanRate(bps)
  return `[${what} ${'#'.repeat(cells)}${'-'.repeat(DOWNLOAD_BAR_CELLS - cells)} ${pct}% ${speed}]`
}

const DOWNLOAD_BAR_CELLS = 12

function shorten (text: string, max: number): string {
  return text.length <= max ? text : text.slice(0, max - 1) + '…'
}
