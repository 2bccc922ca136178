import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createBackend } from '../../src-main/services/backend';
import { insertRun, updateRunStatus, insertMetrics } from '../../src-main/storage/runs-queries';
import { tempDir } from '../helpers/tmp';
import { okOn, failOn } from '../helpers/dispatch';

const tmp = tempDir('runs-manage-');
const dataDir = join(tmp.dir, 'data');
const backend = createBackend({ dataDir, dbFile: ':memory:' });
after(() => {
  backend.close();
  tmp.cleanup();
});

function run(name: string, outDir: string, status: 'completed' | 'running' = 'completed') {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'data.json'), '{}');
  const r = insertRun(backend.db, { name, config: { job: { trainer: 'vlm', outDir, config: {} } } });
  updateRunStatus(backend.db, r.id, status);
  insertMetrics(backend.db, r.id, [{ step: 1, name: 'loss', value: 1 }]);
  return r.id;
}

test('rename, archive and delete runs; running runs and folders outside the data folder are protected', async () => {
  const a = run('first', join(dataDir, 'runs', '1'));
  const b = run('second', join(tmp.dir, 'elsewhere'));
  const c = run('live', join(dataDir, 'runs', '3'), 'running');

  assert.equal((await okOn(backend, 'runs.rename', { id: a, name: 'shapes r16' })).name, 'shapes r16');
  assert.equal((await failOn(backend, 'runs.rename', { id: b, name: 'shapes r16' })).code, 'conflict');
  assert.equal((await failOn(backend, 'runs.rename', { id: 99, name: 'x' })).code, 'not_found');

  const archived = await okOn(backend, 'runs.archive', { id: b, archived: true });
  assert.match(archived.archivedAt, /^\d{4}-/);
  assert.equal((await okOn(backend, 'runs.get', { id: b })).archivedAt, archived.archivedAt);
  assert.equal((await okOn(backend, 'runs.archive', { id: b, archived: false })).archivedAt, null);

  const busy = await failOn(backend, 'runs.delete', { id: c });
  assert.equal(busy.code, 'conflict');
  assert.match(busy.message, /is running: pause or cancel it/);
  const outside = await failOn(backend, 'runs.delete', { id: b, deleteFiles: true });
  assert.equal(outside.field, 'deleteFiles');
  assert.ok(existsSync(join(tmp.dir, 'elsewhere', 'data.json')), 'nothing deleted when refused');

  const del = await okOn(backend, 'runs.delete', { id: a, deleteFiles: true });
  assert.deepEqual(del, { deleted: true, id: a, filesDeleted: true, folder: join(dataDir, 'runs', '1') });
  assert.ok(!existsSync(join(dataDir, 'runs', '1')));
  assert.equal((await failOn(backend, 'runs.get', { id: a })).code, 'not_found');
  assert.equal(
    (backend.db.prepare('SELECT COUNT(*) AS n FROM metrics WHERE run_id = ?').get(a) as { n: number }).n,
    0,
    'its metrics went with it',
  );
  // without deleteFiles the folder stays
  const kept = await okOn(backend, 'runs.delete', { id: b });
  assert.equal(kept.filesDeleted, false);
  assert.ok(existsSync(join(tmp.dir, 'elsewhere', 'data.json')));
  assert.deepEqual(
    (await okOn(backend, 'runs.list', {})).runs.map((r: any) => r.name),
    ['live'],
  );
});
