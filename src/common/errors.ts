// The one error class of peershare. `code` is stable (it travels on the wire and in --json output);
// the message is for people. Codes are append-only.

export const ERROR_CODES = [
  'BAD_REQUEST', // malformed or invalid input (wrong types, bad names, bad arguments)
  'BAD_PASSWORD',
  'NOT_LOGGED_IN',
  'ALREADY_LOGGED_IN',
  'NOT_MEMBER',
  'NOT_OWNER',
  'ALREADY_MEMBER',
  'EXISTS',
  'NOT_FOUND',
  'STORE_UNAVAILABLE',
  'UNAVAILABLE', // no tracker reachable, peer server port taken, ...
  'PROTOCOL', // a peer or tracker broke the framing or the protocol
  'BAD_TICKET',
  'HASH_MISMATCH',
  'FILE_CHANGED',
  'TIMEOUT',
  'BUSY', // too many requests in flight on one connection
  'INTERNAL',
  'UNTRUSTED', // a tracker's or peer's certificate is not the pinned or previously trusted one
] as const
export type ErrorCode = (typeof ERROR_CODES)[number]

const codeSet: ReadonlySet<string> = new Set(ERROR_CODES)
export function isErrorCode (value: unknown): value is ErrorCode {
  return typeof value === 'string' && codeSet.has(value)
}

export class PeershareError extends Error {
  readonly code: ErrorCode
  constructor (code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'PeershareError'
    this.code = code // no parameter properties: erasable syntax only
  }
}

/** Anything thrown, as a PeershareError: unexpected errors become INTERNAL (details stay in local logs). */
export function toPeershareError (err: unknown): PeershareError {
  if (err instanceof PeershareError) return err
  return new PeershareError('INTERNAL', 'internal error', { cause: err })
}
