import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createBackend } from '../../src-main/services/backend';
import { tempDir } from '../helpers/tmp';
import { okOn, failOn } from '../helpers/dispatch';

const tmp = tempDir('samples-');
const backend = createBackend({ dataDir: join(tmp.dir, 'data'), dbFile: ':memory:' });
after(() => {
  backend.close();
  tmp.cleanup();
});

test('the sample dataset is generated, imported once (no doubled questions) and split 80/20; asking again reuses it', async () => {
  const r = await okOn(backend, 'datasets.sample', { family: 'colors', count: 40 });
  assert.equal(r.name, 'Sample: icons (colors)');
  assert.equal(r.created, true);
  // identical generated scenes are one stored image (content hash), so a few of the 40 may merge
  assert.ok(r.items > 30 && r.items <= 40, String(r.items));
  assert.equal(r.counts.train + r.counts.val, r.items);
  assert.equal(r.counts.val, Math.round(r.items * 0.2));
  const page = await okOn(backend, 'items.list', { datasetId: r.datasetId, limit: 100 });
  assert.equal(page.total, r.items);
  // vqa.jsonl only: llava.json's copies of the same questions are not imported beside them
  const labels = page.items.reduce((n: number, i: any) => n + (i.annotations?.length ?? 0), 0);
  assert.ok(labels <= 40, `at most one question per generated image (${labels})`);
  const again = await okOn(backend, 'datasets.sample', { family: 'colors', count: 40 });
  assert.equal(again.datasetId, r.datasetId);
  assert.equal(again.created, false);
  assert.deepEqual(again.counts, r.counts);
  assert.equal((await failOn(backend, 'datasets.sample', { family: 'smells' })).field, 'family');
});
