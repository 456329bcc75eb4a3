import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Bitfield, bitfieldBytes } from '../../src/common/bitfield.ts'
import { PeershareError } from '../../src/common/errors.ts'

function isProtocol (err: unknown): boolean {
  return err instanceof PeershareError && err.code === 'PROTOCOL'
}

test('a new bitfield is empty and sized in whole bytes', () => {
  for (const size of [0, 1, 7, 8, 9, 16, 8192, 8193]) {
    const bf = new Bitfield(size)
    assert.equal(bf.size, size)
    assert.equal(bf.byteLength, bitfieldBytes(size))
    assert.equal(bf.count(), 0)
    assert.equal(bf.isEmpty(), true)
    assert.equal(bf.isFull(), size === 0)
  }
})

test('bits are laid out most significant bit first, as in BEP 3', () => {
  const bf = new Bitfield(12)
  bf.set(0)
  bf.set(7)
  bf.set(8)
  bf.set(11)
  assert.deepEqual([...bf.toBuffer()], [0b1000_0001, 0b1001_0000])
})

test('set and clear report whether the bit changed and keep count exact', () => {
  const bf = new Bitfield(20)
  assert.equal(bf.set(3), true)
  assert.equal(bf.set(3), false)
  assert.equal(bf.count(), 1)
  assert.equal(bf.get(3), true)
  assert.equal(bf.get(4), false)
  assert.equal(bf.clear(3), true)
  assert.equal(bf.clear(3), false)
  assert.equal(bf.count(), 0)
})

test('count matches a naive count after random edits', () => {
  let seed = 42
  const rand = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
  const bf = new Bitfield(1000)
  const truth = new Array<boolean>(1000).fill(false)
  for (let k = 0; k < 5000; k++) {
    const i = Math.floor(rand() * 1000)
    if (rand() < 0.6) { bf.set(i); truth[i] = true } else { bf.clear(i); truth[i] = false }
  }
  assert.equal(bf.count(), truth.filter(Boolean).length)
  for (let i = 0; i < 1000; i++) assert.equal(bf.get(i), truth[i])
  // and a bitfield rebuilt from the bytes counts the same (popcount path)
  assert.equal(Bitfield.fromBuffer(1000, bf.toBuffer()).count(), bf.count())
})

test('isFull once every bit is set, including an odd-sized last byte', () => {
  const bf = new Bitfield(10)
  for (let i = 0; i < 10; i++) bf.set(i)
  assert.equal(bf.isFull(), true)
  assert.deepEqual([...bf.toBuffer()], [0xff, 0b1100_0000])
})

test('full() builds a seeder bitfield with the spare bits clear', () => {
  for (const size of [0, 1, 8, 10, 8193]) {
    const bf = Bitfield.full(size)
    assert.equal(bf.count(), size)
    assert.equal(bf.isFull(), true)
    assert.doesNotThrow(() => Bitfield.fromBuffer(size, bf.toBuffer()))
  }
})

test('fromBuffer rejects a buffer of the wrong length', () => {
  for (const [size, len] of [[8, 0], [8, 2], [9, 1], [9, 3], [0, 1]] as const) {
    assert.throws(() => Bitfield.fromBuffer(size, Buffer.alloc(len)), isProtocol, `size ${size} len ${len}`)
  }
})

test('fromBuffer rejects spare bits set past the last piece', () => {
  assert.throws(() => Bitfield.fromBuffer(9, Buffer.from([0xff, 0b0100_0000])), isProtocol)
  assert.throws(() => Bitfield.fromBuffer(1, Buffer.from([0b0000_0001])), isProtocol)
  assert.throws(() => new Bitfield(3, Buffer.from([0b0001_0000])), isProtocol)
  assert.equal(Bitfield.fromBuffer(9, Buffer.from([0xff, 0x80])).count(), 9)
})

test('fromBuffer copies, the constructor adopts', () => {
  const wire = Buffer.from([0x80])
  const copied = Bitfield.fromBuffer(8, wire)
  const adopted = new Bitfield(8, wire)
  wire[0] = 0xc0
  assert.equal(copied.get(1), false)
  assert.equal(adopted.get(1), true)
})

test('toBuffer and clone are independent copies', () => {
  const bf = new Bitfield(8)
  const out = bf.toBuffer()
  const twin = bf.clone()
  out[0] = 0xff
  bf.set(0)
  assert.equal(twin.get(0), false)
  assert.equal(bf.get(1), false)
})

test('copyTo writes the wire bytes at an offset', () => {
  const bf = new Bitfield(16)
  bf.set(15)
  const target = Buffer.alloc(5)
  assert.equal(bf.copyTo(target, 3), 2)
  assert.deepEqual([...target], [0, 0, 0, 0, 1])
})

test('forEachSet visits set bits in ascending order', () => {
  const bf = new Bitfield(100)
  const want = [0, 9, 17, 63, 64, 99]
  for (const i of want) bf.set(i)
  const seen: number[] = []
  bf.forEachSet(i => seen.push(i))
  assert.deepEqual(seen, want)
})

test('indexes outside the bitfield are caller bugs and throw', () => {
  const bf = new Bitfield(8)
  for (const i of [-1, 8, 1.5, Number.NaN]) {
    assert.throws(() => bf.get(i), RangeError)
    assert.throws(() => bf.set(i), RangeError)
    assert.throws(() => bf.clear(i), RangeError)
  }
  assert.throws(() => new Bitfield(-1), RangeError)
})
