import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDatabase, closeDatabase } from '../../src-main/storage/database';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('crash-');
after(() => tmp.cleanup());

test('SIGKILL during a write loop loses no committed row and leaves an intact database', async () => {
  const file = join(tmp.dir, 'lenslab.db');
  closeDatabase(openDatabase(file)); // migrate up front so the child only writes rows
  const writer = fileURLToPath(new URL('./crash-writer.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', writer, file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const committed: number[] = [];
  let buf = '';
  await new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`writer exited on its own (code ${code}, signal ${signal})`));
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) committed.push(Number(l));
      if (committed.length >= 300 && !child.killed) {
        child.kill('SIGKILL');
        // stdout may still deliver reported ids after kill(); wait for close
      }
    });
    child.stdout!.on('close', () => resolve());
  });
  assert.ok(committed.length >= 300, `writer reported ${committed.length} commits`);
  const db = openDatabase(file);
  try {
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    assert.deepEqual(db.pragma('foreign_key_check'), []);
    const ids = new Set((db.prepare('SELECT id FROM datasets').all() as { id: number }[]).map((r) => r.id));
    const missing = committed.filter((id) => !ids.has(id));
    assert.deepEqual(missing, [], 'every reported commit is present');
    // every dataset row has its item (the two inserts were one transaction)
    const orphans = db
      .prepare(
        'SELECT COUNT(*) AS n FROM datasets d WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.dataset_id = d.id)',
      )
      .get() as { n: number };
    assert.equal(orphans.n, 0);
  } finally {
    closeDatabase(db);
  }
});
