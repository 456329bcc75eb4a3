// Password hashing for accounts: async scrypt (the libuv thread pool, never the event loop) with a
// per-user random salt, encoded as "scrypt$N$r$p$saltB64$hashB64" so the cost can be raised later
// without breaking stored hashes. Comparison in constant time.

import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto'
import type { ScryptOptions } from 'node:crypto'
import { Limiter } from '../common/limiter.ts'

// N=2^14, r=8, p=1: the cost OWASP lists as a scrypt minimum; 16 MiB of memory and ~40-60 ms of one
// thread-pool thread per hash on this machine: a login is not noticeably slow, an offline guess is dear.
export const SCRYPT_N = 2 ** 14
export const SCRYPT_R = 8
export const SCRYPT_P = 1
export const SALT_BYTES = 16
export const HASH_BYTES = 32
// Upper bounds accepted when reading a stored hash: a corrupted or hostile record cannot make one
// verification take gigabytes or minutes.
const MAX_N = 2 ** 20
const MAX_R = 32
const MAX_P = 16

// scrypt runs in libuv's thread pool (4 threads by default), which also serves file I/O — the
// store's fdatasync among it. A flood of logins may use two threads at most, and queue a bounded
// number more (~3 s of work); beyond that it gets BUSY, and everyone else's writes keep flowing.
export const MAX_CONCURRENT_HASHES = 2
export const MAX_WAITING_HASHES = 128
const limiter = new Limiter(MAX_CONCURRENT_HASHES, MAX_WAITING_HASHES, 'too many logins at once: try again in a moment')

function scryptAsync (password: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return limiter.run(() => new Promise((resolve, reject) => {
    scrypt(password, salt, keylen, options, (err, key) => {
      if (err !== null) reject(err)
      else resolve(key)
    })
  }))
}

function scryptOptions (N: number, r: number, p: number): ScryptOptions {
  // maxmem must cover 128 * N * r bytes (plus slack), or node refuses
  return { N, r, p, maxmem: 128 * N * r * 2 }
}

/** Hashes a password with a fresh random salt. */
export async function hashPassword (password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES)
  const hash = await scryptAsync(password, salt, HASH_BYTES, scryptOptions(SCRYPT_N, SCRYPT_R, SCRYPT_P))
  return ['scrypt', SCRYPT_N, SCRYPT_R, SCRYPT_P, salt.toString('base64'), hash.toString('base64')].join('$')
}

interface Parsed { N: number, r: number, p: number, salt: Buffer, hash: Buffer }

function parse (encoded: string): Parsed | undefined {
  const parts = encoded.split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])]
  const isPow2 = Number.isInteger(N) && N >= 2 && N <= MAX_N && (N & (N - 1)) === 0
  if (!isPow2 || !Number.isInteger(r) || r < 1 || r > MAX_R || !Number.isInteger(p) || p < 1 || p > MAX_P) return undefined
  const salt = Buffer.from(parts[4]!, 'base64')
  const hash = Buffer.from(parts[5]!, 'base64')
  if (salt.length < 8 || hash.length < 16 || hash.length > 64) return undefined
  return { N, r, p, salt, hash }
}

/**
 * True when the password matches the encoded hash. A malformed stored hash is an error (the store
 * is corrupt), not a wrong password.
 */
export async function verifyPassword (password: string, encoded: string): Promise<boolean> {
  const parsed = parse(encoded)
  if (parsed === undefined) throw new Error('stored password hash is malformed')
  const candidate = await scryptAsync(password, parsed.salt, parsed.hash.length, scryptOptions(parsed.N, parsed.r, parsed.p))
  return timingSafeEqual(candidate, parsed.hash)
}

// A real hash of a random password, made once: verifying against it costs exactly what a real
// verification costs, so "no such user" and "wrong password" take the same time.
let dummy: Promise<string> | undefined

/** Computes the dummy hash ahead of the first login (the tracker calls it at start). */
export async function primeDummyHash (): Promise<void> {
  dummy ??= hashPassword(randomBytes(16).toString('hex'))
  await dummy
}

/** Spends the time of one verification and returns false: for logins naming an unknown user. */
export async function verifyDummy (password: string): Promise<false> {
  await primeDummyHash()
  await verifyPassword(password, await dummy!)
  return false
}
