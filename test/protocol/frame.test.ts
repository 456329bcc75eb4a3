import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FRAME_HEADER_BYTES, FrameDecoder, encodeFrame, encodeFrameHeader } from '../../src/protocol/frame.ts'

const BODIES = [Buffer.alloc(0), Buffer.from('a'), Buffer.from('hello world'), Buffer.alloc(70_000, 7)]

test('round trip: every body comes back whole and in order', () => {
  const d = new FrameDecoder(1 << 20)
  const out = d.push(Buffer.concat(BODIES.map(encodeFrame)))
  assert.deepEqual(out, BODIES)
  assert.equal(d.bufferedBytes, 0)
})

test('many frames in one chunk', () => {
  const bodies = Array.from({ length: 1000 }, (_, i) => Buffer.from(`frame ${i}`))
  assert.deepEqual(new FrameDecoder(64).push(Buffer.concat(bodies.map(encodeFrame))), bodies)
})

test('frames split at every byte boundary decode the same', () => {
  const wire = Buffer.concat(BODIES.slice(0, 3).map(encodeFrame))
  for (let cut = 0; cut <= wire.length; cut++) {
    const d = new FrameDecoder(1024)
    const out = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))]
    assert.deepEqual(out, BODIES.slice(0, 3), `cut at ${cut}`)
  }
})

test('one byte at a time', () => {
  const wire = Buffer.concat(BODIES.slice(0, 3).map(encodeFrame))
  const d = new FrameDecoder(1024)
  const out: Buffer[] = []
  for (const byte of wire) out.push(...d.push(Buffer.from([byte])))
  assert.deepEqual(out, BODIES.slice(0, 3))
})

test('truncated input yields nothing yet and keeps the bytes', () => {
  const frame = encodeFrame(Buffer.from('abcdef'))
  for (let n = 0; n < frame.length; n++) {
    const d = new FrameDecoder(1024)
    assert.deepEqual(d.push(frame.subarray(0, n)), [], `first ${n} bytes`)
    assert.equal(d.bufferedBytes, n >= FRAME_HEADER_BYTES ? n - FRAME_HEADER_BYTES : n)
  }
})

test('rejects a length over the cap as soon as the header arrives', () => {
  const d = new FrameDecoder(100)
  assert.deepEqual(d.push(encodeFrame(Buffer.alloc(100))), [Buffer.alloc(100)])
  assert.throws(() => d.push(encodeFrameHeader(101)), { name: 'PeershareError', code: 'PROTOCOL' })
  assert.throws(() => new FrameDecoder(100).push(Buffer.from([0xff, 0xff, 0xff, 0xff])), { code: 'PROTOCOL' })
})

test('the cap can be raised for an authenticated connection', () => {
  const d = new FrameDecoder(10)
  d.maxFrameBytes = 1000
  assert.deepEqual(d.push(encodeFrame(Buffer.alloc(500, 1))), [Buffer.alloc(500, 1)])
})
