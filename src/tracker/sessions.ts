// Session tokens: 32 random bytes (base64url, 43 chars — what control.ts `resume` accepts). The
// store keeps only SHA-256(token) in hex, so a copy of the store cannot be replayed as sessions.
// A session is bound to the client id that logged in; resuming from another client is refused.

import { createHash, randomBytes } from 'node:crypto'
import { PeershareError } from '../common/errors.ts'
import type { CallOptions, SessionRecord, Store } from '../store/store.ts'

export const TOKEN_BYTES = 32
/** A session older than this must log in again: an old stolen token is worth less. */
export const SESSION_MAX_AGE_MS = 30 * 24 * 3600 * 1000

export function hashToken (token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

export interface IssuedSession {
  token: string
  record: SessionRecord
}

/** Creates and stores a session for (userId, clientId); the token is returned once, never stored. */
export async function issueSession (store: Store, userId: string, clientId: string, now: number,
  opts?: CallOptions): Promise<IssuedSession> {
  const token = randomBytes(TOKEN_BYTES).toString('base64url')
  const record: SessionRecord = { tokenHash: hashToken(token), userId, clientId, createdAt: now }
  await store.createSession(record, opts)
  return { token, record }
}

/** The session of a token presented by `clientId`; NOT_LOGGED_IN when unknown, expired, revoked or bound elsewhere. */
export async function verifySession (store: Store, token: string, clientId: string, now: number,
  opts?: CallOptions): Promise<SessionRecord> {
  const record = await store.getSession(hashToken(token), opts)
  if (record === undefined || record.clientId !== clientId || now - record.createdAt > SESSION_MAX_AGE_MS) {
    // one message for every case: a guesser learns nothing about which tokens exist
    throw new PeershareError('NOT_LOGGED_IN', 'session expired or revoked: login again')
  }
  return record
}

/** Deletes the session (logout). Returns whether it existed. */
export async function revokeSession (store: Store, tokenHash: string, opts?: CallOptions): Promise<boolean> {
  return await store.deleteSession(tokenHash, opts)
}
