// The TLS front's hand-over header as pure logic: round trip in any split, and refusals.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { FRONT_SECRET_BYTES, FrontHeaderReader, encodeFrontHeader } from '../../src/security/front-header.ts'

const secret = randomBytes(FRONT_SECRET_BYTES)
const peer = { fingerprint: 'SHA256:' + 'ab'.repeat(32), remoteAddress: '127.0.0.1', remotePort: 40_123 }

describe('front header', () => {
  it('reads back the peer and hands on the bytes after it, however the stream is split', () => {
    const wire = Buffer.concat([encodeFrontHeader(secret, peer), Buffer.from('first request')])
    for (let cut = 1; cut < wire.length; cut += 7) {
      const reader = new FrontHeaderReader(secret)
      const a = reader.push(wire.subarray(0, cut))
      const got = a ?? reader.push(wire.subarray(cut))
      assert.ok(got !== undefined, `split at ${cut}`)
      assert.deepEqual(got.peer, peer)
      // what came with the header and was not part of it is given back: with what follows, the request
      const after = a === undefined ? got.rest : Buffer.concat([got.rest, wire.subarray(cut)])
      assert.equal(after.toString(), 'first request')
    }
  })

  it('refuses a wrong secret as soon as the secret is in, before reading the rest', () => {
    const reader = new FrontHeaderReader(randomBytes(FRONT_SECRET_BYTES))
    assert.throws(() => reader.push(encodeFrontHeader(secret, peer).subarray(0, FRONT_SECRET_BYTES)), /wrong secret/)
  })

  it('waits while the header is incomplete', () => {
    const reader = new FrontHeaderReader(secret)
    assert.equal(reader.push(encodeFrontHeader(secret, peer).subarray(0, FRONT_SECRET_BYTES + 5)), undefined)
  })

  it('refuses an oversized description, bad JSON and fields of the wrong shape', () => {
    const withInfo = (info: Buffer): Buffer => {
      const head = Buffer.alloc(FRONT_SECRET_BYTES + 2)
      head.set(secret)
      head.writeUInt16BE(info.length, FRONT_SECRET_BYTES)
      return Buffer.concat([head, info])
    }
    const big = Buffer.alloc(FRONT_SECRET_BYTES + 2)
    big.set(secret)
    big.writeUInt16BE(60_000, FRONT_SECRET_BYTES)
    assert.throws(() => new FrontHeaderReader(secret).push(big), /60000 bytes/)
    assert.throws(() => new FrontHeaderReader(secret).push(withInfo(Buffer.from('{nope'))), SyntaxError)
    const bad = [
      { ...peer, fingerprint: 'SHA256:xyz' },
      { ...peer, fingerprint: 7 },
      { ...peer, remoteAddress: 'x'.repeat(65) },
      { ...peer, remoteAddress: '?' },
      { ...peer, remotePort: 70_000 },
      { ...peer, remotePort: 1.5 },
      [peer],
    ]
    for (const b of bad) assert.throws(() => new FrontHeaderReader(secret).push(withInfo(Buffer.from(JSON.stringify(b)))), /front header: bad/)
  })

  it('takes only a secret of the right length', () => {
    assert.throws(() => new FrontHeaderReader(randomBytes(16)), RangeError)
  })
})
