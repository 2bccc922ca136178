// A folder whose files carry the same questions twice (the demo folder's llava.json and vqa.jsonl) is not silently
// doubled: each duplicated label is an error naming the label it repeats, so the dataset is not "ready to train".
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { unlinkSync } from 'node:fs';
import { createBackend } from '../../src-main/services/backend';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';
import { tempDir } from '../helpers/tmp';
import { okOn } from '../helpers/dispatch';

const tmp = tempDir('lint-dup-');
const backend = createBackend({ dataDir: join(tmp.dir, 'data'), dbFile: ':memory:' });
after(() => {
  backend.close();
  tmp.cleanup();
});

test('the same question from llava.json and vqa.jsonl is flagged as a duplicate sample', async () => {
  const src = join(tmp.dir, 'icons');
  await writeDemoDataset(src, { seed: 3, count: 6, families: ['colors'] });
  unlinkSync(join(src, 'captions.jsonl'));
  const imp = await okOn(backend, 'datasets.import', { path: src, dataset: 'doubled' });
  const lint = await okOn(backend, 'datasets.lint', { datasetId: imp.datasetId });
  const items = await okOn(backend, 'items.list', { datasetId: imp.datasetId, limit: 100 });
  const labels = items.items.reduce((n: number, i: any) => n + i.annotations.length, 0);
  assert.ok(lint.counts.duplicate_sample > 0, JSON.stringify(lint.counts));
  assert.equal(lint.counts.duplicate_sample, labels / 2, 'every label has exactly one twin');
  const { findings } = await okOn(backend, 'datasets.lintResults', {
    datasetId: imp.datasetId,
    rule: 'duplicate_sample',
  });
  assert.equal(findings.length, labels / 2);
  assert.ok(findings.every((f: any) => f.severity === 'error'));
  assert.match(
    findings[0].message,
    /^(qa|chat) \d teaches the same as (qa|chat) \d .* it would be trained twice; delete one$/,
  );

  // one file alone: nothing to flag
  const single = await okOn(backend, 'datasets.import', { path: join(src, 'vqa.jsonl'), dataset: 'single' });
  const clean = await okOn(backend, 'datasets.lint', { datasetId: single.datasetId });
  assert.equal(clean.counts.duplicate_sample ?? 0, 0);
});
