// Opens the Lenslab SQLite database: WAL journal, foreign keys on, busy timeout,
// and every pending migration applied (one transaction per migration).
//
// Several processes may open a new database at the same moment (two `lenslab` commands, the app and a job): each
// migration runs in a BEGIN IMMEDIATE transaction that re-reads the applied versions after taking the write lock,
// so the second process waits (busy timeout) and then finds the migration done instead of running it again.
// Failures to create or write the data folder or the database name the path and the reason (StorageError). A
// read-only open (`readonly`) works where the folder cannot be written: SQLite cannot read a WAL database there
// (it must create the -shm file), so it reads a snapshot copy (database + WAL) made in the OS temp folder.
import BetterSqlite3 from 'better-sqlite3';
import { accessSync, constants, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { migrations as allMigrations, type Migration } from './migrations/index';

/** The data folder or the database cannot be created, opened or written; the message names the path and why. */
export class StorageError extends Error {
  constructor(
    message: string,
    readonly path: string,
    readonly code: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageError';
  }
}

const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  ENOTDIR: 'a path component is not a folder',
  EEXIST: 'a file is in the way',
  ENOENT: 'no such file or folder',
  SQLITE_READONLY: 'the database is read-only',
  SQLITE_READONLY_DIRECTORY: 'its folder cannot be written',
  SQLITE_READONLY_DBMOVED: 'the database file was moved or deleted while open',
  SQLITE_CANTOPEN: 'cannot open the file',
  SQLITE_FULL: 'the disk is full',
  SQLITE_IOERR: 'I/O error',
  SQLITE_CORRUPT: 'the file is corrupt',
  SQLITE_NOTADB: 'not a SQLite database',
  SQLITE_BUSY: 'another process holds the database locked',
};

/** A short reason for a file-system or SQLite error: "permission denied (EACCES)". */
export function storageReason(err: unknown): string {
  const code = (err as { code?: string }).code;
  if (!code) return (err as Error).message ?? String(err);
  const base = REASONS[code] ?? REASONS[code.replace(/_[A-Z_]+$/, '')] ?? (err as Error).message;
  return `${base} (${code})`;
}

/** Whether an error means the path cannot be written (as opposed to a bug or a corrupt file). */
export function isNotWritable(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return (
    ['EACCES', 'EPERM', 'EROFS'].includes(code) ||
    code.startsWith('SQLITE_READONLY') ||
    code.startsWith('SQLITE_CANTOPEN')
  );
}

/** A StorageError "<what> <path>: <reason>" (and where, when the failing path is another one). */
export function storageError(what: string, path: string, err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  const at = (err as { path?: string }).path;
  const where = at && at !== path ? ` at ${at}` : '';
  return new StorageError(`${what} ${path}: ${storageReason(err)}${where}`, path, (err as { code?: string }).code, {
    cause: err,
  });
}

/** Snapshot folders behind read-only connections, removed by closeDatabase. */
const snapshots = new WeakMap<Database, string>();

export type Database = BetterSqlite3.Database;

export interface OpenOptions {
  /** Migrations to apply (defaults to the project's list); tests may pass their own. */
  migrations?: Migration[];
  /** Milliseconds to wait on a locked database before failing (default 5000). */
  busyTimeoutMs?: number;
  /**
   * Open for reading only: no migration (an out-of-date schema is an error), nothing written. Where the folder
   * cannot be written, reads a snapshot copy.
   */
  readonly?: boolean;
  /** Path of a better_sqlite3.node to load instead of the default (Electron needs one built for its ABI). */
  nativeBinding?: string;
}

/** Open (creating if needed) the database at `file` (or ':memory:') and migrate it to the latest version. */
export function openDatabase(file: string, options: OpenOptions = {}): Database {
  const list = options.migrations ?? allMigrations;
  if (options.readonly) return openReadonly(file, options, list);
  if (file !== ':memory:') {
    try {
      mkdirSync(dirname(file), { recursive: true });
    } catch (err) {
      throw storageError('cannot create the data folder', dirname(file), err);
    }
  }
  let db: Database;
  try {
    db = new BetterSqlite3(file, options.nativeBinding ? { nativeBinding: options.nativeBinding } : {});
  } catch (err) {
    throw isNotWritable(err) ? notWritable(file, err) : storageError('cannot open the database', file, err);
  }
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
    if (file !== ':memory:') db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a commit survives a killed process (SIGKILL); only an OS crash/power loss
    // can roll back the last few commits, never corrupt the file.
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    migrate(db, list);
    // SQLite opens a file it cannot write read-only without a word, and an up-to-date WAL database needs no write
    // to open: say so now rather than at the first write of some later request.
    if (file !== ':memory:') accessSync(file, constants.W_OK);
    return db;
  } catch (err) {
    db.close();
    const cause = ((err as Error).cause ?? err) as { code?: string };
    if (isNotWritable(cause) || /^SQLITE_(FULL|IOERR|BUSY)/.test(cause.code ?? '')) throw notWritable(file, cause);
    throw err;
  }
}

/** The most precise StorageError for a database that cannot be written: the folder, the file, or SQLite's reason. */
function notWritable(file: string, err: unknown): StorageError {
  if (isNotWritable(err)) {
    for (const [what, path] of [
      ['cannot write the data folder', dirname(file)],
      ['cannot write the database', file],
    ] as const) {
      try {
        accessSync(path, constants.W_OK);
      } catch (e) {
        return storageError(what, path, e);
      }
    }
  }
  return storageError('cannot write the database', file, err);
}

function openReadonly(file: string, options: OpenOptions, list: Migration[]): Database {
  if (file !== ':memory:' && !existsSync(file))
    throw new StorageError(
      `no Lenslab database at ${file} yet (it is created by the first command that writes)`,
      file,
      'ENOENT',
    );
  const open = (path: string) => {
    const db = new BetterSqlite3(path, {
      readonly: true,
      fileMustExist: true,
      ...(options.nativeBinding ? { nativeBinding: options.nativeBinding } : {}),
    });
    try {
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
      db.pragma('foreign_keys = ON');
      const latest = Math.max(0, ...list.map((m) => m.version));
      const have = readVersion(db);
      if (have < latest)
        throw new StorageError(
          `the database ${file} has schema version ${have}, this Lenslab needs ${latest}; open it once where it can be written to upgrade it`,
          file,
          undefined,
        );
      return db;
    } catch (err) {
      db.close();
      throw err;
    }
  };
  try {
    return open(file);
  } catch (err) {
    if (err instanceof StorageError) throw err;
    if (!isNotWritable(err) && (err as { code?: string }).code !== 'SQLITE_IOERR_LOCK')
      throw storageError('cannot read the database', file, err);
  }
  // The folder cannot be written, so SQLite cannot create the WAL index: read a snapshot.
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), 'lenslab-readonly-'));
    const copy = join(dir, basename(file));
    copyFileSync(file, copy);
    if (existsSync(`${file}-wal`)) copyFileSync(`${file}-wal`, `${copy}-wal`);
    const db = open(copy);
    snapshots.set(db, dir);
    return db;
  } catch (err) {
    if (dir! !== undefined) rmSync(dir, { recursive: true, force: true });
    throw storageError('cannot read the database', file, err);
  }
}

/** The highest applied version without creating anything (0 when there is no migrations table). */
function readVersion(db: Database): number {
  const t = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).get();
  if (!t) return 0;
  return (db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
}

/** Close the database (checkpointing the WAL). Safe to call twice. */
export function closeDatabase(db: Database): void {
  if (!db.open) return;
  try {
    if (!db.readonly && db.name !== ':memory:') db.pragma('wal_checkpoint(TRUNCATE)');
  } catch {
    // another connection may hold the WAL; closing is still fine
  }
  db.close();
  const snap = snapshots.get(db);
  if (snap) rmSync(snap, { recursive: true, force: true });
}

/** The highest applied migration version (0 for a fresh database). */
export function schemaVersion(db: Database): number {
  ensureMigrationsTable(db);
  const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
  return row.v ?? 0;
}

function ensureMigrationsTable(db: Database): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
  ) STRICT`);
}

/** Apply every migration newer than the database's version, in order, each in its own transaction. */
export function migrate(db: Database, list: Migration[]): number[] {
  const sorted = [...list].sort((a, b) => a.version - b.version);
  const seen = new Set<number>();
  for (const m of sorted) {
    if (!Number.isInteger(m.version) || m.version < 1)
      throw new Error(`migration ${m.name}: version must be a positive integer, got ${m.version}`);
    if (seen.has(m.version)) throw new Error(`migration version ${m.version} is defined twice (${m.name})`);
    seen.add(m.version);
  }
  ensureMigrationsTable(db);
  const current = schemaVersion(db);
  const done = db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?');
  const applied: number[] = [];
  for (const m of sorted) {
    if (m.version <= current) continue;
    // Re-checked under the write lock: another process may have applied it since `current` was read.
    const run = db.transaction(() => {
      if (done.get(m.version)) return false;
      m.up(db);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        m.version,
        m.name,
        nowIso(),
      );
      return true;
    });
    let ran: boolean;
    try {
      ran = run.immediate();
    } catch (err) {
      throw new Error(`migration ${String(m.version).padStart(4, '0')}-${m.name} failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (ran) applied.push(m.version);
  }
  // foreign_key_check after migrations: a migration must not leave dangling references.
  const bad = db.pragma('foreign_key_check') as unknown[];
  if (bad.length > 0) throw new Error(`foreign key check failed after migrations: ${JSON.stringify(bad.slice(0, 3))}`);
  return applied;
}

/** Current time as ISO-8601 UTC text, the format of every time column. */
export function nowIso(): string {
  return new Date().toISOString();
}
