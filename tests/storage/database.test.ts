import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { openDatabase, closeDatabase, schemaVersion, migrate } from '../../src-main/storage/database';
import { migrations } from '../../src-main/storage/migrations/index';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('storage-');
after(() => tmp.cleanup());

const EXPECTED_TABLES = [
  'annotations',
  'chats',
  'checkpoints',
  'datasets',
  'evaluations',
  'items',
  'messages',
  'metrics',
  'models',
  'predictions',
  'runs',
  'schema_migrations',
  'splits',
];

test('a fresh database gets every migration, WAL and foreign keys', () => {
  const file = join(tmp.dir, 'a', 'lenslab.db');
  const db = openDatabase(file);
  try {
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(db.pragma('foreign_keys', { simple: true }), 1);
    assert.ok((db.pragma('busy_timeout', { simple: true }) as number) > 0);
    assert.equal(schemaVersion(db), Math.max(...migrations.map((m) => m.version)));
    const tables = db
      .prepare(
        `SELECT name, strict FROM pragma_table_list WHERE schema = 'main' AND name NOT LIKE 'sqlite_%' ORDER BY name`,
      )
      .all() as { name: string; strict: number }[];
    for (const t of EXPECTED_TABLES)
      assert.ok(
        tables.some((r) => r.name === t),
        `table ${t} exists`,
      );
    for (const t of tables) assert.equal(t.strict, 1, `table ${t.name} is STRICT`);
    const recorded = db.prepare('SELECT version, name, applied_at FROM schema_migrations ORDER BY version').all() as {
      version: number;
      name: string;
      applied_at: string;
    }[];
    assert.deepEqual(
      recorded.map((r) => r.version),
      migrations.map((m) => m.version).sort((a, b) => a - b),
    );
    assert.match(recorded[0].applied_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  } finally {
    closeDatabase(db);
  }
});

test('reopening applies nothing twice and keeps data', () => {
  const file = join(tmp.dir, 'b.db');
  let db = openDatabase(file);
  db.prepare(`INSERT INTO datasets (name, created_at, updated_at) VALUES ('x', 'now', 'now')`).run();
  closeDatabase(db);
  closeDatabase(db); // idempotent
  db = openDatabase(file);
  try {
    const n = db.prepare('SELECT COUNT(*) AS n FROM schema_migrations').get() as { n: number };
    assert.equal(n.n, migrations.length);
    assert.equal((db.prepare('SELECT name FROM datasets').get() as { name: string }).name, 'x');
  } finally {
    closeDatabase(db);
  }
});

test(':memory: works', () => {
  const db = openDatabase(':memory:');
  assert.equal(schemaVersion(db), migrations.length);
  closeDatabase(db);
});

test('a failing migration rolls back entirely and names itself', () => {
  const db = openDatabase(':memory:');
  try {
    const before = schemaVersion(db);
    assert.throws(
      () =>
        migrate(db, [
          ...migrations,
          {
            version: 9999,
            name: 'broken',
            up(d) {
              d.exec('CREATE TABLE half_done (id INTEGER PRIMARY KEY) STRICT');
              d.exec('THIS IS NOT SQL');
            },
          },
        ]),
      /9999-broken failed/,
    );
    assert.equal(schemaVersion(db), before);
    const t = db.prepare(`SELECT name FROM sqlite_master WHERE name = 'half_done'`).get();
    assert.equal(t, undefined);
  } finally {
    closeDatabase(db);
  }
});

test('duplicate migration versions are rejected', () => {
  const db = openDatabase(':memory:');
  try {
    assert.throws(() => migrate(db, [migrations[0], { ...migrations[0], name: 'again' }]), /defined twice/);
  } finally {
    closeDatabase(db);
  }
});

test('STRICT types, CHECK constraints and cascades are enforced', () => {
  const db = openDatabase(':memory:');
  try {
    const now = new Date().toISOString();
    const ds = db
      .prepare('INSERT INTO datasets (name, created_at, updated_at) VALUES (?, ?, ?)')
      .run('d', now, now).lastInsertRowid;
    // STRICT: text into an INTEGER column fails
    assert.throws(
      () =>
        db
          .prepare('INSERT INTO items (dataset_id, width, created_at, updated_at) VALUES (?, ?, ?, ?)')
          .run(ds, 'wide', now, now),
      /cannot store TEXT value in INTEGER column items.width/,
    );
    assert.throws(
      () =>
        db
          .prepare(`INSERT INTO items (dataset_id, split, created_at, updated_at) VALUES (?, 'holdout', ?, ?)`)
          .run(ds, now, now),
      /CHECK constraint/,
    );
    assert.throws(
      () => db.prepare('INSERT INTO items (dataset_id, created_at, updated_at) VALUES (?, ?, ?)').run(424242, now, now),
      /FOREIGN KEY/,
    );
    const item = db
      .prepare(`INSERT INTO items (dataset_id, split, created_at, updated_at) VALUES (?, 'train', ?, ?)`)
      .run(ds, now, now).lastInsertRowid;
    db.prepare(
      `INSERT INTO annotations (item_id, kind, data_json, created_at, updated_at) VALUES (?, 'caption', '{"text":"a cat"}', ?, ?)`,
    ).run(item, now, now);
    assert.throws(
      () =>
        db
          .prepare(
            `INSERT INTO annotations (item_id, kind, data_json, created_at, updated_at) VALUES (?, 'tags', '{}', ?, ?)`,
          )
          .run(item, now, now),
      /CHECK constraint/,
    );
    const run = db
      .prepare(`INSERT INTO runs (name, dataset_id, config_json, created_at, updated_at) VALUES ('r', ?, '{}', ?, ?)`)
      .run(ds, now, now).lastInsertRowid;
    assert.throws(() => db.prepare(`UPDATE runs SET status = 'exploded' WHERE id = ?`).run(run), /CHECK constraint/);
    db.prepare(`INSERT INTO metrics (run_id, step, name, value, recorded_at) VALUES (?, 1, 'loss', 2.5, ?)`).run(
      run,
      now,
    );
    db.prepare('DELETE FROM datasets WHERE id = ?').run(ds);
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM items').get() as { n: number }).n, 0);
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM annotations').get() as { n: number }).n, 0);
    // runs keep their history when the dataset goes away
    const r = db.prepare('SELECT dataset_id FROM runs WHERE id = ?').get(run) as { dataset_id: number | null };
    assert.equal(r.dataset_id, null);
    db.prepare('DELETE FROM runs WHERE id = ?').run(run);
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM metrics').get() as { n: number }).n, 0);
  } finally {
    closeDatabase(db);
  }
});

/** Start `n` open-child processes, wait until all have loaded, release them together; their outputs. */
async function openTogether(file: string, n: number, delayMs: (i: number) => number, mode = ''): Promise<string[]> {
  const kids = Array.from({ length: n }, (_, i) => {
    const c = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'open-child.ts'), file, String(delayMs(i)), mode],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    let out = '';
    const ready = new Promise<void>((res) =>
      c.stdout.on('data', (d) => ((out += d), out.includes('ready\n') && res())),
    );
    const done = new Promise<string>((res) => c.on('close', () => res(out.replace('ready\n', '').trim())));
    return { c, ready, done };
  });
  await Promise.all(kids.map((k) => k.ready));
  for (const k of kids) k.c.stdin.write('go\n');
  return Promise.all(kids.map((k) => k.done));
}

test('processes that open a new database while another is migrating it wait, then apply nothing twice', async () => {
  // The first child's first migration takes 300 ms; the others arrive during it (0..250 ms later), read version 0,
  // and must find it applied once they get the write lock.
  const file = join(tmp.dir, 'race-slow', 'lenslab.db');
  const results = await openTogether(file, 6, (i) => i * 50, 'slow');
  assert.deepEqual(results, Array(6).fill('ok'));
  const db = openDatabase(file, { migrations: [] });
  try {
    assert.deepEqual(
      (
        db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all() as {
          version: number;
          name: string;
        }[]
      ).map((r) => `${r.version} ${r.name}`),
      ['1 slow', '2 next'],
    );
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM a').get() as { n: number }).n, 6);
  } finally {
    closeDatabase(db);
  }
});

test('several processes opening one new database at the same moment all migrate it once', async () => {
  const file = join(tmp.dir, 'race', 'lenslab.db');
  const results = await openTogether(file, 8, (i) => i * 2);
  assert.deepEqual(results, Array(8).fill('ok'));
  const db = openDatabase(file);
  try {
    const recorded = db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as {
      version: number;
    }[];
    assert.deepEqual(
      recorded.map((r) => r.version),
      migrations.map((m) => m.version).sort((a, b) => a - b),
    );
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM datasets').get() as { n: number }).n, 8);
  } finally {
    closeDatabase(db);
  }
});
