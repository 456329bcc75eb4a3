import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseRate } from '../../src/cli/rate.ts'

test('parses decimal and binary rates, with or without /s', () => {
  const cases: Array<[string, number]> = [
    ['20MB', 20_000_000], ['500KB', 500_000], ['1.5MB', 1_500_000], ['4MB/s', 4_000_000], ['2m', 2_000_000],
    ['1GB', 1e9], ['1MiB', 1_048_576], ['64KiB', 65_536], ['12345', 12_345], ['100B', 100], ['.5MB', 500_000],
    ['0', 0], ['0MB', 0], ['none', 0], ['NONE', 0], ['unlimited', 0], [' 3 mb ', 3_000_000],
  ]
  for (const [text, bps] of cases) assert.equal(parseRate(text), bps, text)
})

test('refuses what is not a rate', () => {
  for (const text of ['', 'fast', '-1MB', '1TB', '1.2.3MB', 'MB', '1e6', '0.1B', '5 MB per second', '99999999999999GB']) {
    assert.equal(parseRate(text), undefined, text)
  }
})
