import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PeershareError } from '../../src/common/errors.ts'
import { parseTrackerInfo } from '../../src/common/tracker-info.ts'

const FPR = 'AB'.repeat(32)

const good: Array<{ name: string, text: string, want: Array<{ host: string, port: number, line: number, fingerprint?: string }> }> = [
  { name: 'IP:PORT', text: '127.0.0.1:6000\n', want: [{ host: '127.0.0.1', port: 6000, line: 1 }] },
  { name: '"IP PORT" with several spaces', text: '10.0.0.7   6001', want: [{ host: '10.0.0.7', port: 6001, line: 1 }] },
  { name: 'tab between IP and port', text: '10.0.0.7\t6001', want: [{ host: '10.0.0.7', port: 6001, line: 1 }] },
  {
    name: 'two trackers, numbered in file order',
    text: '127.0.0.1:6000\n127.0.0.1:6001\n',
    want: [{ host: '127.0.0.1', port: 6000, line: 1 }, { host: '127.0.0.1', port: 6001, line: 2 }],
  },
  {
    name: 'two-line layout (IP, then port on the next line)',
    text: '192.168.1.5\n6000\n192.168.1.6\n6001\n',
    want: [{ host: '192.168.1.5', port: 6000, line: 1 }, { host: '192.168.1.6', port: 6001, line: 3 }],
  },
  {
    name: 'comments and blank lines are skipped, line numbers stay those of the file',
    text: '# trackers\n\n  127.0.0.1:6000   # first\n\n\n# second:\n127.0.0.1 6001\n',
    want: [{ host: '127.0.0.1', port: 6000, line: 3 }, { host: '127.0.0.1', port: 6001, line: 7 }],
  },
  { name: 'CRLF line ends', text: '127.0.0.1:6000\r\n127.0.0.1:6001\r\n', want: [{ host: '127.0.0.1', port: 6000, line: 1 }, { host: '127.0.0.1', port: 6001, line: 2 }] },
  { name: 'fingerprint, lowercased', text: `127.0.0.1:6000 SHA256:${FPR}`, want: [{ host: '127.0.0.1', port: 6000, line: 1, fingerprint: `SHA256:${FPR.toLowerCase()}` }] },
  { name: 'fingerprint after "IP PORT"', text: `127.0.0.1 6000 SHA256:${FPR}`, want: [{ host: '127.0.0.1', port: 6000, line: 1, fingerprint: `SHA256:${FPR.toLowerCase()}` }] },
  { name: 'fingerprint in the two-line layout', text: `127.0.0.1\n6000 SHA256:${FPR}`, want: [{ host: '127.0.0.1', port: 6000, line: 1, fingerprint: `SHA256:${FPR.toLowerCase()}` }] },
  { name: 'localhost', text: 'localhost:6000', want: [{ host: 'localhost', port: 6000, line: 1 }] },
  { name: 'bracketed IPv6', text: '[::1]:6000', want: [{ host: '::1', port: 6000, line: 1 }] },
  { name: 'ports 1 and 65535', text: '127.0.0.1:1\n127.0.0.1:65535', want: [{ host: '127.0.0.1', port: 1, line: 1 }, { host: '127.0.0.1', port: 65535, line: 2 }] },
]

for (const c of good) {
  test(`parses ${c.name}`, () => {
    const got = parseTrackerInfo(c.text, 'trackers.txt')
    assert.deepEqual(got, c.want.map((w, i) => ({ no: i + 1, ...w })))
  })
}

const bad: Array<{ name: string, text: string, message: RegExp }> = [
  { name: 'a word instead of an address', text: '127.0.0.1:6000\nhello\n', message: /trackers\.txt, line 2: expected "IP:PORT" or "IP PORT", got 'hello'/ },
  { name: 'port 0', text: '127.0.0.1:0', message: /line 1: port 0 is not in 1-65535/ },
  { name: 'port above 65535', text: '# c\n127.0.0.1:70000', message: /line 2: port 70000 is not in 1-65535/ },
  { name: 'an IPv4 octet above 255', text: '300.1.1.1:6000', message: /line 1: expected/ },
  { name: 'a host with no port at the end of the file', text: '127.0.0.1:6000\n\n10.0.0.1\n', message: /line 3: 10\.0\.0\.1 has no port/ },
  { name: 'a host followed by something else than a port', text: '10.0.0.1\nfoo', message: /line 2: expected the port of 10\.0\.0\.1 \(line 1\)/ },
  { name: 'a short fingerprint', text: '127.0.0.1:6000 SHA256:abcd', message: /line 1: expected/ },
  { name: 'an empty file', text: '', message: /lists no tracker/ },
  { name: 'only comments', text: '# nothing\n\n', message: /lists no tracker/ },
  { name: 'a very long line (shown shortened)', text: 'x'.repeat(10_000), message: /line 1: expected .*got 'x{60}'$/ },
]

for (const c of bad) {
  test(`refuses ${c.name}, naming the line`, () => {
    assert.throws(() => parseTrackerInfo(c.text, 'trackers.txt'), (err: unknown) => {
      assert.ok(err instanceof PeershareError)
      assert.equal(err.code, 'BAD_REQUEST')
      assert.match(err.message, c.message)
      return true
    })
  })
}

test('the repository\'s own tracker_info.txt parses', async () => {
  const { readFile } = await import('node:fs/promises')
  const text = await readFile(new URL('../../tracker_info.txt', import.meta.url), 'utf8')
  const got = parseTrackerInfo(text)
  assert.ok(got.length >= 1)
  assert.equal(got[0]!.no, 1)
})
