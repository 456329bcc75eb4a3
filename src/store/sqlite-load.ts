// Reads a whole SQLite tracker database into a MemoryModel, once, when the store opens: from then
// on the store answers reads from memory and keeps the model in step with each commit (sqlite.ts).
// Parents load before children, so every member, request, file and share finds its group.

import type { DatabaseSync } from 'node:sqlite'
import { MemoryModel } from './memory-model.ts'

/** Full-table reads: they run once at open, so unlike sqlite.ts's SQL they need no index. */
export const LOAD_SQL = {
  users: 'SELECT user_id, password_hash, created_at FROM users',
  sessions: 'SELECT token_hash, user_id, client_id, created_at FROM sessions',
  groups: 'SELECT group_id, owner, created_at FROM groups',
  members: 'SELECT group_id, user_id, joined_at FROM members',
  requests: 'SELECT group_id, user_id, requested_at FROM requests',
  files: 'SELECT group_id, file_id, name, size, piece_bytes, piece_hashes, file_hash FROM files',
  shares: 'SELECT group_id, file_id, user_id, client_id, active FROM shares',
} as const

interface UserRow { user_id: string, password_hash: string, created_at: number }
interface SessionRow { token_hash: string, user_id: string, client_id: string, created_at: number }
interface GroupRow { group_id: string, owner: string, created_at: number }
interface MemberRow { group_id: string, user_id: string, joined_at: number }
interface RequestRow { group_id: string, user_id: string, requested_at: number }
interface FileRow {
  group_id: string, file_id: string, name: string, size: number, piece_bytes: number, piece_hashes: Uint8Array, file_hash: Uint8Array
}
interface ShareRow { group_id: string, file_id: string, user_id: string, client_id: string, active: number }

export function loadModel (db: DatabaseSync): MemoryModel {
  const model = new MemoryModel()
  // iterate(): one row at a time, so a big table is never held twice (rows and model) at once
  const rows = <T>(sql: string): Iterable<T> => db.prepare(sql).iterate() as Iterable<T>
  for (const r of rows<UserRow>(LOAD_SQL.users)) {
    model.putUser({ userId: r.user_id, passwordHash: r.password_hash, createdAt: r.created_at })
  }
  for (const r of rows<SessionRow>(LOAD_SQL.sessions)) {
    model.putSession({ tokenHash: r.token_hash, userId: r.user_id, clientId: r.client_id, createdAt: r.created_at })
  }
  for (const r of rows<GroupRow>(LOAD_SQL.groups)) model.putGroup(r.group_id, r.owner, r.created_at)
  for (const r of rows<MemberRow>(LOAD_SQL.members)) model.putMember(r.group_id, r.user_id, r.joined_at)
  for (const r of rows<RequestRow>(LOAD_SQL.requests)) model.putRequest(r.group_id, r.user_id, r.requested_at)
  for (const r of rows<FileRow>(LOAD_SQL.files)) {
    model.putFile(r.group_id, r.file_id, {
      name: r.name,
      size: r.size,
      pieceBytes: r.piece_bytes,
      pieceHashes: Buffer.from(r.piece_hashes.buffer, r.piece_hashes.byteOffset, r.piece_hashes.byteLength),
      fileHash: Buffer.from(r.file_hash.buffer, r.file_hash.byteOffset, r.file_hash.byteLength),
    })
  }
  for (const r of rows<ShareRow>(LOAD_SQL.shares)) {
    model.putShare(r.group_id, r.file_id, { userId: r.user_id, clientId: r.client_id }, r.active !== 0)
  }
  return model
}
