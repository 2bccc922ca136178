import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase, closeDatabase } from '../../src-main/storage/database';
import {
  listDatasets,
  insertDataset,
  updateDataset,
  deleteDataset,
  getDataset,
  getDatasetByName,
} from '../../src-main/storage/datasets-queries';
import {
  listRuns,
  insertRun,
  updateRunStatus,
  insertMetrics,
  listMetrics,
  markInterruptedRuns,
  getRun,
} from '../../src-main/storage/runs-queries';
import { resolveDataDir, defaultDataDir } from '../../src-main/storage/data-dir';

test('dataset queries: create, list with item counts, rename, delete', () => {
  const db = openDatabase(':memory:');
  try {
    assert.deepEqual(listDatasets(db), []);
    const a = insertDataset(db, { name: 'cats', description: 'my cats' });
    assert.equal(a.name, 'cats');
    assert.equal(a.item_count, 0);
    assert.throws(
      () => insertDataset(db, { name: 'cats' }),
      (e: any) => e.code === 'SQLITE_CONSTRAINT_UNIQUE',
    );
    const now = new Date().toISOString();
    db.prepare('INSERT INTO items (dataset_id, created_at, updated_at) VALUES (?, ?, ?)').run(a.id, now, now);
    insertDataset(db, { name: 'dogs' });
    const list = listDatasets(db);
    assert.deepEqual(list.map((d) => d.name).sort(), ['cats', 'dogs']);
    assert.equal(list.find((d) => d.name === 'cats')!.item_count, 1);
    const renamed = updateDataset(db, a.id, { name: 'felines' });
    assert.equal(renamed!.name, 'felines');
    assert.equal(renamed!.description, 'my cats');
    assert.equal(updateDataset(db, 999, { name: 'x' }), undefined);
    assert.equal(getDatasetByName(db, 'felines')!.id, a.id);
    assert.equal(deleteDataset(db, a.id), true);
    assert.equal(deleteDataset(db, a.id), false);
    assert.equal(getDataset(db, a.id), undefined);
  } finally {
    closeDatabase(db);
  }
});

test('run queries: insert, status transitions, metrics, interrupted on restart', () => {
  const db = openDatabase(':memory:');
  try {
    const ds = insertDataset(db, { name: 'd' });
    const r = insertRun(db, { name: 'first', config: { lr: 1e-4 }, datasetId: ds.id, totalSteps: 10 });
    assert.equal(r.status, 'queued');
    assert.equal(r.dataset_name, 'd');
    assert.deepEqual(JSON.parse(r.config_json), { lr: 1e-4 });
    const running = updateRunStatus(db, r.id, 'running', { step: 1 })!;
    assert.equal(running.status, 'running');
    assert.ok(running.started_at);
    assert.equal(running.finished_at, null);
    insertMetrics(db, r.id, [
      { step: 1, name: 'loss', value: 2 },
      { step: 2, name: 'loss', value: NaN },
      { step: 1, name: 'lr', value: 1e-4 },
    ]);
    insertMetrics(db, r.id, [{ step: 1, name: 'loss', value: 1.5 }]);
    assert.deepEqual(listMetrics(db, r.id, 'loss'), [
      { step: 1, name: 'loss', value: 1.5 },
      { step: 2, name: 'loss', value: null },
    ]);
    assert.equal(listMetrics(db, r.id).length, 3);
    const r2 = insertRun(db, { name: 'second', config: {} });
    assert.deepEqual(
      listRuns(db).map((x) => x.id),
      [r2.id, r.id],
    );
    assert.deepEqual(
      listRuns(db, { status: 'running' }).map((x) => x.id),
      [r.id],
    );
    assert.deepEqual(
      listRuns(db, { datasetId: ds.id }).map((x) => x.id),
      [r.id],
    );
    assert.equal(markInterruptedRuns(db), 1);
    const after = getRun(db, r.id)!;
    assert.equal(after.status, 'interrupted');
    assert.ok(after.finished_at);
  } finally {
    closeDatabase(db);
  }
});

test('data dir: flag beats env beats platform default', () => {
  assert.equal(resolveDataDir('/tmp/x', { LENSLAB_DATA_DIR: '/tmp/y' }), '/tmp/x');
  assert.equal(resolveDataDir(undefined, { LENSLAB_DATA_DIR: '/tmp/y' }), '/tmp/y');
  assert.equal(resolveDataDir(undefined, {}), defaultDataDir(process.platform, {}));
  assert.match(defaultDataDir('linux', { XDG_DATA_HOME: '/data' }), /^\/data\/lenslab$/);
  assert.match(defaultDataDir('darwin', {}), /Library\/Application Support\/Lenslab$/);
  assert.match(defaultDataDir('win32', { APPDATA: 'C:\\Users\\u\\AppData\\Roaming' }), /Lenslab$/);
});
