import assert from 'node:assert/strict'
import { test } from 'node:test'
import { printable, validateFileName, validateGroupId, validatePassword, validateUserId } from '../../src/protocol/names.ts'

const GOOD_IDS = ['a', 'alice', 'Bob_2', 'g-1', 'x.y', '9lives', 'a'.repeat(32)]
const BAD_IDS: unknown[] = ['', '-a', '.a', '_a', 'a b', 'a/b', 'é', 'a'.repeat(33), 'a\n', 42, null, undefined, ['a'], {}]

for (const [what, validate] of [['user id', validateUserId], ['group id', validateGroupId]] as const) {
  test(`${what}: accepts plain ids`, () => {
    for (const id of GOOD_IDS) assert.equal(validate(id), id)
  })
  test(`${what}: rejects empty, long, option-like, spaced and non-string ids`, () => {
    for (const id of BAD_IDS) {
      assert.throws(() => validate(id), (err: unknown) => (err as { code?: string }).code === 'BAD_REQUEST' && (err as Error).message.includes(what), String(id))
    }
  })
}

test('file names: plain names pass, paths and oddities are refused', () => {
  for (const name of ['a.txt', 'My File (1).pdf', 'naïve.md', '.hidden', 'a..b', 'x'.repeat(255)]) assert.equal(validateFileName(name), name)
  const bad: unknown[] = ['', '.', '..', 'a/b', '../x', '/etc/passwd', 'a\\b', 'C:\\x', ' lead', 'trail ', 'a\nb', 'a\u0000b', 'a\u0085b',
    'x'.repeat(256), 'é'.repeat(128), '\ud800', 7, null]
  for (const name of bad) assert.throws(() => validateFileName(name), { code: 'BAD_REQUEST' }, JSON.stringify(name))
})

test('passwords: 1 to 256 bytes of any text', () => {
  assert.equal(validatePassword('p w'), 'p w')
  assert.equal(validatePassword('x'.repeat(256)), 'x'.repeat(256))
  for (const p of ['', 'x'.repeat(257), 'é'.repeat(129), 3, undefined]) assert.throws(() => validatePassword(p), { code: 'BAD_REQUEST' })
})

test('printable shortens and neutralises untrusted text', () => {
  assert.equal(printable('a\u001b[2Jb'), 'a?[2Jb')
  assert.equal(printable('x'.repeat(50)), 'x'.repeat(40) + '…')
})
