// The SQLite store's file format: connection settings, schema migrations, and the checks that a
// file is ours. sqlite.ts owns the queries; this module owns what the file looks like.
//
// Versioning: PRAGMA application_id marks the file as peershare's and PRAGMA user_version is the
// schema version; MIGRATIONS[i] takes version i to i + 1 inside one transaction.
// Foreign keys only tie a group's rows to the group (and shares to their file), so deleting a group
// cascades to members, requests, files and shares. Users are never deleted and the handlers check
// them, so members/sessions do not reference users: the contract suite stays the same for etcd.

import { DatabaseSync } from 'node:sqlite'
import { PeershareError } from '../common/errors.ts'

/** 'PSHR': lets a tracker refuse a SQLite file that belongs to some other program. */
export const APPLICATION_ID = 0x50534852
// A blocked lock waits this long (the JS thread waits too): only another process can hold it.
const BUSY_TIMEOUT_MS = 5_000
// After a checkpoint, keep at most this much of the WAL file on disk (it is reused, not deleted).
// Four times what checkpointer.ts lets the WAL reach (RESET_FRAMES) before it catches up: the file
// stays at that size and is never truncated on the writer's thread, unless a backlog made it bigger.
const JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024

const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE groups (
    group_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE members (
    group_id TEXT NOT NULL REFERENCES groups (group_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
  ) WITHOUT ROWID;
  CREATE INDEX members_by_user ON members (user_id);

  CREATE TABLE requests (
    group_id TEXT NOT NULL REFERENCES groups (group_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
  ) WITHOUT ROWID;
  CREATE INDEX requests_by_user ON requests (user_id);

  -- a rowid table: piece hashes make rows large (20 bytes a piece), which WITHOUT ROWID handles badly
  CREATE TABLE files (
    group_id TEXT NOT NULL REFERENCES groups (group_id) ON DELETE CASCADE,
    file_id TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    piece_bytes INTEGER NOT NULL,
    piece_hashes BLOB NOT NULL,
    file_hash BLOB NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, file_id),
    UNIQUE (group_id, name)
  );

  CREATE TABLE shares (
    group_id TEXT NOT NULL,
    file_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    active INTEGER NOT NULL,
    PRIMARY KEY (group_id, file_id, user_id, client_id),
    FOREIGN KEY (group_id, file_id) REFERENCES files (group_id, file_id) ON DELETE CASCADE
  ) WITHOUT ROWID;
  CREATE INDEX shares_by_sharer ON shares (user_id, client_id);
  `,
]
export const SCHEMA_VERSION = MIGRATIONS.length

/**
 * Opens (creating if needed) and migrates the database at `path`, in WAL mode with
 * synchronous=NORMAL: durability comes from the caller's group commit (group-commit.ts).
 */
export function openDatabase (path: string): DatabaseSync {
  let db: DatabaseSync
  try {
    db = new DatabaseSync(path, { enableForeignKeyConstraints: true, timeout: BUSY_TIMEOUT_MS })
  } catch (err) {
    throw new PeershareError('STORE_UNAVAILABLE', `cannot open the tracker database ${path}: ${describe(err)}`, { cause: err })
  }
  try {
    // the first statement reads the header: a file that is not SQLite fails here
    const mode = db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode: string } | undefined
    if (mode?.journal_mode !== 'wal') throw new Error(`journal mode is ${mode?.journal_mode ?? 'unknown'}, not wal`)
    db.exec(`PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS};
      PRAGMA journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`)
    migrate(db, path)
    // A full checkpoint fsyncs the main file, so it is never left empty beside a WAL: SQLite deletes
    // the WAL of a zero-length database on open, which would lose the acknowledged writes in it.
    db.exec('PRAGMA wal_checkpoint(TRUNCATE)')
    return db
  } catch (err) {
    db.close()
    if (err instanceof PeershareError) throw err
    if (sqliteCode(err) === SQLITE_NOTADB) {
      throw new PeershareError('STORE_UNAVAILABLE',
        `${path} is not a database (damaged, or some other file): move it away and restart the tracker`, { cause: err })
    }
    throw new PeershareError('STORE_UNAVAILABLE', `cannot open the tracker database ${path}: ${describe(err)}`, { cause: err })
  }
}

function migrate (db: DatabaseSync, path: string): void {
  const appId = pragmaNumber(db, 'application_id')
  const version = pragmaNumber(db, 'user_version')
  if (appId !== APPLICATION_ID) {
    const tables = db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'").get() as { n: number }
    if (appId !== 0 || tables.n > 0) {
      throw new PeershareError('STORE_UNAVAILABLE',
        `${path} is a SQLite database of some other program: move it away or choose another data directory`)
    }
  }
  if (version > SCHEMA_VERSION) {
    throw new PeershareError('STORE_UNAVAILABLE',
      `${path} was written by a newer peershare (schema ${version}, this one knows ${SCHEMA_VERSION}): upgrade the tracker`)
  }
  for (let v = version; v < SCHEMA_VERSION; v++) {
    db.exec('BEGIN IMMEDIATE')
    try {
      db.exec(MIGRATIONS[v] ?? '')
      db.exec(`PRAGMA application_id = ${APPLICATION_ID}; PRAGMA user_version = ${v + 1}`)
      db.exec('COMMIT')
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK')
      throw err
    }
  }
}

function pragmaNumber (db: DatabaseSync, name: string): number {
  const row = db.prepare(`PRAGMA ${name}`).get() as Record<string, unknown> | undefined
  const value = row?.[name]
  return typeof value === 'number' ? value : 0
}

export const SQLITE_BUSY = 5
export const SQLITE_IOERR = 10
export const SQLITE_FULL = 13
export const SQLITE_NOTADB = 26

/** The primary result code of a node:sqlite error (extended codes keep it in the low byte). */
export function sqliteCode (err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('errcode' in err)) return undefined
  return typeof err.errcode === 'number' ? err.errcode & 0xff : undefined
}

function describe (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
