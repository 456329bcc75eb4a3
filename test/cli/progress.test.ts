import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { DownloadInfo } from '../../src/client/core.ts'
import { downloadLine, humanDuration, humanRate, percentOf } from '../../src/cli/commands.ts'
import { downloadsBar } from '../../src/cli/progress.ts'

const MB = 1_000_000
function dl (over: Partial<DownloadInfo> = {}): DownloadInfo {
  return {
    groupId: 'g1', file: 'movie.mkv', target: '/d/movie.mkv', state: 'running', piecesDone: 42, pieces: 100,
    bytesDone: 42 * MB, bytes: 100 * MB, speedBps: 310 * MB, etaS: 3,
    peers: [1, 2, 3].map((i) => ({ addr: `127.0.0.1:700${i}`, userId: `u${i}`, pieces: 14, connected: true })),
    ...over,
  }
}

test('show_downloads lines: [D] with percent, speed, ETA and peers; [C]; [F] with the reason', () => {
  assert.equal(downloadLine(dl()), '[D] [g1] movie.mkv  42%  310 MB/s  ETA 3s  3 peers')
  assert.equal(downloadLine(dl({ etaS: null, speedBps: 0, peers: [] })), '[D] [g1] movie.mkv  42%  0 B/s  ETA ?  0 peers')
  assert.equal(downloadLine(dl({ state: 'waiting' })), '[D] [g1] movie.mkv  42%  waiting for peers')
  assert.equal(downloadLine(dl({ state: 'completed' })), '[C] [g1] movie.mkv')
  assert.equal(downloadLine(dl({ state: 'failed', error: { code: 'TIMEOUT', message: 'no peer for 5 min' } })), '[F] [g1] movie.mkv — no peer for 5 min')
  // a file name from the network cannot drive the terminal
  assert.equal(downloadLine(dl({ state: 'completed', file: 'a\u001b[2Jb' })), '[C] [g1] a?[2Jb')
})

test('rates, durations and percentages for people', () => {
  assert.equal(humanRate(999), '999 B/s')
  assert.equal(humanRate(1500), '1.5 kB/s')
  assert.equal(humanRate(310 * MB), '310 MB/s')
  assert.equal(humanRate(2.5e9), '2.5 GB/s')
  assert.equal(humanDuration(3), '3s')
  assert.equal(humanDuration(125), '2m05s')
  assert.equal(humanDuration(7260), '2h01m')
  assert.equal(percentOf(997, 1000), 99) // never 100 before the end
  assert.equal(percentOf(1000, 1000), 100)
  assert.equal(percentOf(0, 0), 100)
})

test('the live bar: one download by name, several summed, none when nothing runs', () => {
  assert.equal(downloadsBar([]), undefined)
  assert.equal(downloadsBar([dl({ state: 'completed' })]), undefined)
  assert.equal(downloadsBar([dl()]), '[movie.mkv #####------- 42% 310 MB/s]')
  const two = downloadsBar([dl(), dl({ file: 'b', bytesDone: 58 * MB, speedBps: 90 * MB }), dl({ state: 'failed' })])
  assert.equal(two, '[2 downloads ######------ 50% 400 MB/s]')
  assert.equal(downloadsBar([dl({ state: 'waiting' })]), '[movie.mkv #####------- 42% waiting]')
  assert.equal(downloadsBar([dl({ file: 'a-very-long-file-name-indeed.mkv' })]), '[a-very-long-file-na… #####------- 42% 310 MB/s]')
})
