// Opens the Lenslab SQLite database: WAL journal, foreign keys on, busy timeout,
// and every pending migration applied (one transaction per migration).
import BetterSqlite3 from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { migrations as allMigrations, type Migration } from './migrations/index';

export type Database = BetterSqlite3.Database;

export interface OpenOptions {
  /** Migrations to apply (defaults to the project's list); tests may pass their own. */
  migrations?: Migration[];
  /** Milliseconds to wait on a locked database before failing (default 5000). */
  busyTimeoutMs?: number;
  readonly?: boolean;
  /** Path of a better_sqlite3.node to load instead of the default (Electron needs one built for its ABI). */
  nativeBinding?: string;
}

/** Open (creating if needed) the database at `file` (or ':memory:') and migrate it to the latest version. */
export function openDatabase(file: string, options: OpenOptions = {}): Database {
  if (file !== ':memory:' && !options.readonly) mkdirSync(dirname(file), { recursive: true });
  const db = new BetterSqlite3(file, {
    readonly: options.readonly ?? false,
    ...(options.nativeBinding ? { nativeBinding: options.nativeBinding } : {}),
  });
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
    if (!options.readonly) {
      if (file !== ':memory:') db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode: a commit survives a killed process (SIGKILL); only an OS crash/power loss
      // can roll back the last few commits, never corrupt the file.
      db.pragma('synchronous = NORMAL');
    }
    db.pragma('foreign_keys = ON');
    if (!options.readonly) migrate(db, options.migrations ?? allMigrations);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
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
    if (!Number.isInteger(m.version) || m.version < 1) throw new Error(`migration ${m.name}: version must be a positive integer, got ${m.version}`);
    if (seen.has(m.version)) throw new Error(`migration version ${m.version} is defined twice (${m.name})`);
    seen.add(m.version);
  }
  ensureMigrationsTable(db);
  const current = schemaVersion(db);
  const applied: number[] = [];
  for (const m of sorted) {
    if (m.version <= current) continue;
    const run = db.transaction(() => {
      m.up(db);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, nowIso());
    });
    try {
      run.immediate();
    } catch (err) {
      throw new Error(`migration ${String(m.version).padStart(4, '0')}-${m.name} failed: ${(err as Error).message}`, { cause: err });
    }
    applied.push(m.version);
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
