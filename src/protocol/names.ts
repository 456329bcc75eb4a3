// Validation of every name that crosses a socket: user ids, group ids, passwords, file names.
// A file name is never a path: no separators, no "." or "..", no control characters.

import { PeershareError } from '../common/errors.ts'

export const MAX_ID_CHARS = 32
export const MAX_PASSWORD_BYTES = 256
export const MAX_FILE_NAME_BYTES = 255

// ids: letters, digits, '_', '-', '.'; start with a letter or digit so they never look like options
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/

function validateId (kind: string, value: unknown): string {
  if (typeof value !== 'string') throw new PeershareError('BAD_REQUEST', `${kind} must be a string`)
  if (value.length === 0 || value.length > MAX_ID_CHARS || !ID_RE.test(value)) {
    throw new PeershareError('BAD_REQUEST',
      `invalid ${kind} '${printable(value)}': use 1-${MAX_ID_CHARS} letters, digits, '_', '-' or '.', starting with a letter or digit`)
  }
  return value
}

export function validateUserId (value: unknown): string {
  return validateId('user id', value)
}

export function validateGroupId (value: unknown): string {
  return validateId('group id', value)
}

export function validatePassword (value: unknown): string {
  if (typeof value !== 'string') throw new PeershareError('BAD_REQUEST', 'password must be a string')
  const bytes = Buffer.byteLength(value)
  if (bytes === 0 || bytes > MAX_PASSWORD_BYTES) {
    throw new PeershareError('BAD_REQUEST', `password must be 1-${MAX_PASSWORD_BYTES} bytes`)
  }
  return value
}

// C0 and C1 controls, DEL; plus separators of both path conventions
// eslint-disable-next-line no-control-regex
const BAD_FILE_CHARS = /[\u0000-\u001f\u007f-\u009f/\\]/

export function validateFileName (value: unknown): string {
  if (typeof value !== 'string') throw new PeershareError('BAD_REQUEST', 'file name must be a string')
  const bytes = Buffer.byteLength(value)
  if (bytes === 0 || bytes > MAX_FILE_NAME_BYTES) {
    throw new PeershareError('BAD_REQUEST', `file name must be 1-${MAX_FILE_NAME_BYTES} bytes`)
  }
  if (value === '.' || value === '..' || BAD_FILE_CHARS.test(value) || value !== value.trim() ||
      !value.isWellFormed()) {
    throw new PeershareError('BAD_REQUEST',
      `invalid file name '${printable(value)}': a plain name without '/', '\\', control characters or surrounding spaces`)
  }
  return value
}

/** A short, safe rendering of untrusted text for error messages. */
export function printable (value: string): string {
  const cut = value.length > 40 ? value.slice(0, 40) + '…' : value
  // eslint-disable-next-line no-control-regex
  return cut.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?')
}
