// Signed tickets reused while they have more than half their lifetime left, then signed afresh;
// one per (key, requester, file, group); never more than the bound.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MAX_CACHED_TICKETS, TicketCache } from '../../src/tracker/ticket-cache.ts'
import type { TicketKey } from '../../src/tracker/ticket-cache.ts'

const TTL = 10_000

function key (over: Partial<TicketKey> = {}): TicketKey {
  return { keyId: '0123456789abcdef', requester: 'SHA256:' + 'a'.repeat(64), fileId: 'f'.repeat(64), groupId: 'g1', ...over }
}

/** A signer that counts its calls and makes every ticket distinct. */
function signer (): { calls: number, sign: (expiresAt: number) => string } {
  const s = {
    calls: 0,
    sign: (expiresAt: number) => `ticket-${++s.calls}-${expiresAt}`,
  }
  return s
}

describe('TicketCache', () => {
  it('reuses a ticket while more than half its lifetime is left', () => {
    const cache = new TicketCache()
    const s = signer()
    const first = cache.getOrSign(key(), 1000, TTL, s.sign)
    assert.deepEqual(first, { ticket: 'ticket-1-11000', expiresAt: 11_000 })
    assert.deepEqual(cache.getOrSign(key(), 1000, TTL, s.sign), first)
    assert.deepEqual(cache.getOrSign(key(), 1000 + TTL / 2 - 1, TTL, s.sign), first)
    assert.equal(s.calls, 1)
  })

  it('signs a fresh ticket once half the lifetime is gone, and reuses that one', () => {
    const cache = new TicketCache()
    const s = signer()
    cache.getOrSign(key(), 1000, TTL, s.sign)
    const now = 1000 + TTL / 2
    const fresh = cache.getOrSign(key(), now, TTL, s.sign)
    assert.deepEqual(fresh, { ticket: `ticket-2-${now + TTL}`, expiresAt: now + TTL })
    assert.equal(cache.getOrSign(key(), now + 1, TTL, s.sign), fresh)
    assert.equal(s.calls, 2)
    assert.equal(cache.size, 1)
  })

  it('never hands out a ticket with less than half the lifetime left', () => {
    const cache = new TicketCache()
    const s = signer()
    for (let now = 0; now < 5 * TTL; now += 777) {
      const t = cache.getOrSign(key(), now, TTL, s.sign)
      assert.ok(t.expiresAt - now > TTL / 2, `at ${now}: expires at ${t.expiresAt}`)
    }
  })

  it('keeps distinct tickets for distinct requesters, files, groups and keys', () => {
    const cache = new TicketCache()
    const s = signer()
    const keys = [
      key(),
      key({ requester: 'SHA256:' + 'b'.repeat(64) }),
      key({ fileId: 'e'.repeat(64) }),
      key({ groupId: 'g2' }),
      key({ keyId: 'fedcba9876543210' }),
    ]
    const tickets = keys.map((k) => cache.getOrSign(k, 0, TTL, s.sign).ticket)
    assert.equal(new Set(tickets).size, keys.length)
    assert.equal(s.calls, keys.length)
    // and each is reused for its own key
    assert.deepEqual(keys.map((k) => cache.getOrSign(k, 1, TTL, s.sign).ticket), tickets)
    assert.equal(s.calls, keys.length)
  })

  it('respects its bound, dropping the oldest first', () => {
    const cache = new TicketCache(3)
    const s = signer()
    for (let i = 0; i < 5; i++) cache.getOrSign(key({ groupId: `g${i}` }), i, TTL, s.sign)
    assert.equal(cache.size, 3)
    assert.equal(s.calls, 5)
    // g2..g4 are kept, g0 was dropped
    cache.getOrSign(key({ groupId: 'g4' }), 10, TTL, s.sign)
    assert.equal(s.calls, 5)
    cache.getOrSign(key({ groupId: 'g0' }), 10, TTL, s.sign)
    assert.equal(s.calls, 6)
    assert.equal(cache.size, 3)
  })

  it('drops expired entries as new ones come in', () => {
    const cache = new TicketCache()
    const s = signer()
    for (let i = 0; i < 100; i++) cache.getOrSign(key({ groupId: `g${i}` }), 0, TTL, s.sign)
    cache.getOrSign(key({ groupId: 'late' }), TTL + 1, TTL, s.sign)
    assert.equal(cache.size, 1)
  })

  it('has a default bound of 10,000 and refuses a nonsensical one', () => {
    assert.equal(MAX_CACHED_TICKETS, 10_000)
    const cache = new TicketCache()
    const s = signer()
    for (let i = 0; i < MAX_CACHED_TICKETS + 50; i++) cache.getOrSign(key({ groupId: `g${i}` }), 0, TTL, s.sign)
    assert.equal(cache.size, MAX_CACHED_TICKETS)
    assert.throws(() => new TicketCache(0), RangeError)
  })
})
