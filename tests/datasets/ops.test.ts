// Labeling operations, undo/redo through the history table (across database restarts), and seeded splits.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { openDatabase, closeDatabase, type Database } from '../../src-main/storage/database';
import { importDataset } from '../../src-main/datasets/import';
import { loadItems } from '../../src-main/datasets/rows';
import { historyState } from '../../src-main/datasets/history';
import * as ops from '../../src-main/datasets/ops';
import { splitDataset } from '../../src-main/datasets/split';
import * as F from './fixtures';

let tmp: ReturnType<typeof tempDir>;
let dataDir: string;
let dbFile: string;
let db: Database;

before(() => {
  tmp = tempDir('ds-ops-');
  dataDir = join(tmp.dir, 'data');
  dbFile = join(dataDir, 'lenslab.db');
  db = openDatabase(dbFile);
});
after(() => {
  closeDatabase(db);
  tmp.cleanup();
});

function restart(): void {
  closeDatabase(db);
  db = openDatabase(dbFile);
}

function state(datasetId: number): string {
  const items = loadItems(db, datasetId);
  const tags = db.prepare('SELECT id, name FROM tags WHERE dataset_id = ? ORDER BY id').all(datasetId);
  return JSON.stringify({ items, tags });
}

test('every labeling operation undoes and redoes, across restarts', async () => {
  const src = join(tmp.dir, 'src');
  await F.folderDataset(src);
  const { datasetId } = await importDataset(db, dataDir, src, { dataset: 'ops' });
  const ids = loadItems(db, datasetId).map((i) => i.id);
  const states = [state(datasetId)];
  const labels: string[] = [];
  const step = async (label: RegExp, fn: () => unknown) => {
    await fn();
    states.push(state(datasetId));
    const h = historyState(db, datasetId);
    assert.match(h.undoLabel ?? '', label);
    labels.push(h.undoLabel!);
  };
  const cap = loadItems(db, datasetId)[0].annotations[0];
  await step(/edit caption/, () => ops.updateAnnotation(db, cap.id, { text: 'an edited caption' }));
  await step(/add qa/, () =>
    ops.addAnnotation(db, datasetId, ids[0], { kind: 'qa', data: { question: 'Colour?', answer: 'Red.' } }),
  );
  await step(/add chat/, () =>
    ops.addAnnotation(
      db,
      datasetId,
      ids[3],
      {
        kind: 'chat',
        data: {
          messages: [
            { role: 'user', content: '<image>\nHi' },
            { role: 'assistant', content: 'Hello' },
          ],
        },
      },
      0,
    ),
  );
  await step(/tag good, blue/, () => ops.addTags(db, datasetId, [ids[0], ids[1]], ['good', 'blue']));
  await step(/untag blue/, () => ops.removeTags(db, datasetId, [ids[0], ids[1]], ['blue']));
  await step(/set split val/, () => ops.setSplit(db, datasetId, [ids[1], ids[2]], 'val'));
  await step(/replace "square"/, () => assert.equal(ops.replaceText(db, datasetId, ids, 'square', 'box'), 1));
  await step(/edit labels/, () =>
    ops.setAnnotations(db, datasetId, ids[2], [
      { kind: 'caption', data: { text: 'new' } },
      { kind: 'qa', data: { question: 'q', answer: ' ' } },
    ]),
  );
  await step(/delete 2 items/, () => ops.deleteItems(db, datasetId, [ids[0], ids[3]]));
  await step(/add item/, async () =>
    ops.addItems(db, dataDir, datasetId, [
      {
        image: { bytes: await F.png(77), original: 'dropped.png' },
        annotations: [{ kind: 'caption', data: { text: 'dropped' } }],
        tags: ['new'],
      },
    ]),
  );
  await step(/split/, () => splitDataset(db, datasetId, { seed: 3, train: 1, val: 1, test: 0 }));
  await step(/delete caption/, () => ops.deleteAnnotation(db, loadItems(db, datasetId)[0].annotations[0].id));
  assert.equal(new Set(states).size, states.length, 'every operation changed the state');

  // Undo everything, restarting the database between steps: each undo restores the previous state exactly.
  for (let k = states.length - 1; k > 0; k--) {
    if (k % 3 === 0) restart();
    assert.equal(ops.undo(db, datasetId), labels[k - 1]);
    assert.equal(state(datasetId), states[k - 1], `after undoing "${labels[k - 1]}"`);
  }
  assert.equal(ops.undo(db, datasetId), undefined, 'nothing left to undo');
  restart();
  // Redo everything.
  for (let k = 1; k < states.length; k++) {
    if (k % 4 === 0) restart();
    assert.equal(ops.redo(db, datasetId), labels[k - 1]);
    assert.equal(state(datasetId), states[k], `after redoing "${labels[k - 1]}"`);
  }
  assert.equal(ops.redo(db, datasetId), undefined, 'nothing left to redo');

  // Undo twice, then a new operation drops the redo entries.
  ops.undo(db, datasetId);
  ops.undo(db, datasetId);
  assert.equal(historyState(db, datasetId).canRedo, true);
  ops.setSplit(db, datasetId, [loadItems(db, datasetId)[0].id], 'test');
  assert.equal(historyState(db, datasetId).canRedo, false);
});

test('ids freed by delete are never reused, so undo restores the original ids', async () => {
  const src = join(tmp.dir, 'src-ids');
  await F.vqaJsonl(src);
  const { datasetId } = await importDataset(db, dataDir, src, { dataset: 'ids' });
  const before = loadItems(db, datasetId);
  const last = before[before.length - 1];
  ops.deleteItems(db, datasetId, [last.id]);
  const [added] = await ops.addItems(db, dataDir, datasetId, [
    { annotations: [{ kind: 'caption', data: { text: 'text only' } }] },
  ]);
  assert.ok(added > last.id, `new id ${added} must not reuse ${last.id}`);
  ops.undo(db, datasetId);
  ops.undo(db, datasetId);
  assert.deepEqual(loadItems(db, datasetId), before);
});

test('operations reject bad input with a code and the offending field', async () => {
  const a = await importDataset(db, dataDir, join(tmp.dir, 'src-ids'), { dataset: 'errs-a' });
  const b = await importDataset(db, dataDir, join(tmp.dir, 'src-ids'), { dataset: 'errs-b' });
  const otherItem = loadItems(db, b.datasetId)[0].id;
  const mine = loadItems(db, a.datasetId)[0];
  const check = (fn: () => unknown, code: string, field: string, msg: RegExp) =>
    assert.throws(
      fn,
      (e: unknown) => e instanceof ops.DatasetOpError && e.code === code && e.field === field && msg.test(e.message),
    );
  check(
    () => ops.deleteItems(db, a.datasetId, [mine.id, otherItem]),
    'not_found',
    'itemIds.1',
    /item \d+ is not in dataset/,
  );
  check(() => ops.addTags(db, 9999, [mine.id], ['x']), 'not_found', 'datasetId', /dataset 9999 does not exist/);
  check(
    () => ops.updateAnnotation(db, mine.annotations[0].id, { question: 'q' } as never),
    'invalid_request',
    'data',
    /answer: expected string/,
  );
  check(
    () => ops.addAnnotation(db, a.datasetId, mine.id, { kind: 'chat', data: { messages: [] } }),
    'invalid_request',
    'annotation',
    /at least one message/,
  );
  check(
    () =>
      ops.addAnnotation(db, a.datasetId, mine.id, {
        kind: 'chat',
        data: { messages: [{ role: 'robot', content: 'x' }] },
      } as never),
    'invalid_request',
    'annotation',
    /role/,
  );
  check(() => ops.addTags(db, a.datasetId, [mine.id], ['  ']), 'invalid_request', 'tags.0', /1\.\.200/);
  check(
    () => ops.replaceText(db, a.datasetId, [mine.id], '(', 'x', { regex: true }),
    'invalid_request',
    'find',
    /invalid regular expression/,
  );
  check(
    () => splitDataset(db, a.datasetId, { seed: 1, train: -1, val: 0, test: 0 }),
    'invalid_request',
    'train',
    /≥ 0/,
  );
  await assert.rejects(
    ops.addItems(db, dataDir, a.datasetId, [{ image: { bytes: Buffer.from('nope'), original: 'x.png' } }]),
    (e: unknown) => e instanceof ops.DatasetOpError && e.field === 'items.0.image' && /x\.png: corrupt/.test(e.message),
  );
  assert.equal(historyState(db, a.datasetId).entries.length, 0, 'failed operations record nothing');
});

test('split: seeded, exact counts, stratified by tag', async () => {
  const { datasetId } = await importDataset(db, dataDir, join(tmp.dir, 'src-ids'), { dataset: 'split' });
  const newItems = Array.from({ length: 37 }, (_, i) => ({
    annotations: [{ kind: 'caption' as const, data: { text: `t${i}` } }],
    tags: [i % 3 === 0 ? 'cat' : 'dog'],
  }));
  await ops.addItems(db, dataDir, datasetId, newItems);
  const n = loadItems(db, datasetId).length; // 3 imported + 37
  assert.equal(n, 40);
  const r1 = splitDataset(db, datasetId, { seed: 42, train: 0.8, val: 0.1, test: 0.1 });
  assert.deepEqual(r1.counts, { train: 32, val: 4, test: 4 });
  const a1 = loadItems(db, datasetId).map((i) => i.split);
  splitDataset(db, datasetId, { seed: 7, train: 0.8, val: 0.1, test: 0.1 });
  const a2 = loadItems(db, datasetId).map((i) => i.split);
  assert.notDeepEqual(a2, a1, 'another seed gives another assignment');
  splitDataset(db, datasetId, { seed: 42, train: 0.8, val: 0.1, test: 0.1 });
  assert.deepEqual(
    loadItems(db, datasetId).map((i) => i.split),
    a1,
    'the same seed gives the same assignment',
  );
  const r3 = splitDataset(db, datasetId, { seed: 42, train: 0.5, val: 0.25, test: 0.25, stratifyBy: 'tag' });
  // cat: items 0,3,...,36 → 13; dog: 24; untagged: 3 imported
  assert.deepEqual(r3.groups, {
    cat: { train: 7, val: 3, test: 3 },
    dog: { train: 12, val: 6, test: 6 },
    untagged: { train: 2, val: 0, test: 1 },
  });
  const byTag: Record<string, Record<string, number>> = {};
  for (const it of loadItems(db, datasetId)) {
    const k = it.tags[0] ?? 'untagged';
    byTag[k] ??= { train: 0, val: 0, test: 0 };
    byTag[k][it.split!]++;
  }
  assert.deepEqual(byTag, r3.groups);
  const rows = db
    .prepare('SELECT seed, train, val, test, stratify_by FROM splits WHERE dataset_id = ? ORDER BY id')
    .all(datasetId);
  assert.equal(rows.length, 4);
  assert.deepEqual(rows[3], { seed: 42, train: 0.5, val: 0.25, test: 0.25, stratify_by: 'tag' });
});
