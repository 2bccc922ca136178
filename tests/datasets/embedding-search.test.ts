// Text and image search of a dataset with a CLIP model and a contrastive adapter: the matching images come first,
// embeddings are cached per (model, adapter) and a different adapter gets its own cache.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { createBackend } from '../../src-main/services/backend';
import { loadItems } from '../../src-main/datasets/rows';
import { searchDataset, embeddingCacheKey, releaseSearchModel } from '../../src-main/datasets/embedding-search';
import { writeTinyContrastive } from '../../src-main/models/demo/tiny-contrastive';
import { writeContrastiveDataset } from '../../src-main/models/demo/contrastive-dataset';
import { ContrastiveRunner, loadContrastive } from '../../src-main/models/families/contrastive/model';
import { loadContrastiveAdapter } from '../../src-main/models/families/contrastive/adapter';
import { trainContrastiveToFolder } from '../../src-main/training/contrastive';
import { readPairs } from '../../src-main/transport/cli/contrastive';

const { dir, cleanup } = tempDir('embedding-search-');
after(async () => {
  await releaseSearchModel();
  cleanup();
});

test('text search returns the matching images first; results are cached per model and adapter', async () => {
  const model = join(dir, 'clip');
  const data = join(dir, 'shapes');
  const adapter = join(dir, 'adapter');
  writeTinyContrastive(model, 'clip', 1, {
    imageSize: 32,
    patchSize: 8,
    hidden: 64,
    layers: 2,
    heads: 4,
    std: 0.1,
    textPositions: 32,
  });
  await writeContrastiveDataset(data);
  const m = loadContrastive(model);
  const pairs = (await readPairs(data, { split: 'train' })).map((p) => ({ image: p.image, text: p.text! }));
  await trainContrastiveToFolder(m, pairs, { method: 'lora', epochs: 15, batchSize: 16, lr: 3e-3 }, adapter);
  m.close();

  const dataDir = join(dir, 'lenslab');
  const backend = createBackend({ dataDir, host: 'cli' });
  try {
    const rep = (await backend.dispatcher.call('datasets.import', {
      path: join(data, 'val'),
      dataset: 'val shapes',
    })) as { datasetId: number };
    const ds = rep.datasetId;
    const items = loadItems(backend.db, ds);
    assert.equal(items.length, 20);
    const tagOf = new Map(items.map((it) => [it.id, it.tags[0]]));

    const first = await searchDataset(backend.db, dataDir, ds, { model, adapter, text: 'a red circle', limit: 20 });
    assert.equal(first.embedded, 20);
    assert.equal(first.items.length, 20);
    const rank = first.items.findIndex((x) => tagOf.get(x.itemId) === 'red circle');
    assert.ok(rank >= 0 && rank < 5, `the red circle ranks ${rank + 1} of 20`);
    // how well text search ranks over all 20 classes: mean rank of the matching image
    let sum = 0;
    for (const cls of new Set(tagOf.values())) {
      const r = await searchDataset(backend.db, dataDir, ds, { model, adapter, text: `a ${cls}`, limit: 20 });
      assert.equal(r.embedded, 0);
      assert.equal(r.cached, 20);
      sum += r.items.findIndex((x) => tagOf.get(x.itemId) === cls);
    }
    assert.ok(sum / 20 < 2.5, `mean rank of the matching image ${sum / 20 + 1} (chance 10.5)`);

    const like = await searchDataset(backend.db, dataDir, ds, { model, adapter, itemId: items[3].id, limit: 3 });
    assert.equal(like.items[0].itemId, items[3].id);
    assert.ok(Math.abs(like.items[0].score - 1) < 1e-4);

    assert.notEqual(embeddingCacheKey(model, adapter), embeddingCacheKey(model, null));
    const base = await searchDataset(backend.db, dataDir, ds, { model, text: 'a red circle' });
    assert.equal(base.embedded, 20, 'the base model has its own cache');
  } finally {
    backend.close();
  }
});

test('datasets.search over the API: a registered CLIP model, cached embeddings, bad requests named', async () => {
  const model = join(dir, 'clip');
  const dataDir = join(dir, 'lenslab-api');
  const backend = createBackend({ dataDir, host: 'cli' });
  try {
    const call = (m: string, p: unknown) => backend.dispatcher.call(m as never, p as never) as Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const ds = (await call('datasets.import', { path: join(dir, 'shapes', 'val'), dataset: 'val' }))
      .datasetId as number;
    const modelId = (await call('models.import', { path: model })).model.id as number;
    const items = loadItems(backend.db, ds);
    const r1 = await call('datasets.search', { datasetId: ds, modelId, itemId: items[5].id, limit: 4 });
    assert.equal(r1.items.length, 4);
    assert.equal(r1.items[0].itemId, items[5].id);
    assert.deepEqual([r1.embedded, r1.cached], [20, 0]);
    const r2 = await call('datasets.search', { datasetId: ds, modelId, text: 'a red circle' });
    assert.deepEqual([r2.embedded, r2.cached], [0, 20]);
    await assert.rejects(
      call('datasets.search', { datasetId: ds, modelId, text: 'x', itemId: items[0].id }),
      /not both/,
    );
    await assert.rejects(call('datasets.search', { datasetId: ds, modelId, itemId: 999999 }), /item 999999/);
    // the worker keeps the item list between queries: an edit must not leave it ranking a deleted item
    assert.ok(r2.items.some((it: { itemId: number }) => it.itemId === items[5].id));
    await call('items.delete', { datasetId: ds, itemIds: [items[5].id] });
    const r3 = await call('datasets.search', { datasetId: ds, modelId, text: 'a red circle' });
    assert.equal(r3.items.length, 19);
    assert.ok(!r3.items.some((it: { itemId: number }) => it.itemId === items[5].id));
    await assert.rejects(
      call('datasets.search', { datasetId: ds, modelId, itemId: items[5].id }),
      /item \d+ is not an image item/,
    );
    await call('datasets.undo', { datasetId: ds });
    assert.equal((await call('datasets.search', { datasetId: ds, modelId, text: 'a red circle' })).items.length, 20);
  } finally {
    backend.close();
  }
});

test('a text query runs the text tower alone: the same normalized embedding as the whole model gives', async () => {
  const model = join(dir, 'clip');
  const m = loadContrastive(model);
  const ad = loadContrastiveAdapter(join(dir, 'adapter'), m.config);
  const runner = await ContrastiveRunner.create(m, { adapter: ad });
  try {
    const texts = ['a red circle', 'one blue star on a plain background'];
    const img = (await readPairs(join(dir, 'shapes'), { split: 'val' }))[0].image;
    const full = await runner.run([img, img], texts);
    const alone = await runner.embedTexts(texts);
    assert.equal(alone.embeds.length, 2);
    for (let i = 0; i < 2; i++) {
      let norm = 0;
      for (let j = 0; j < alone.embeds[i].length; j++) {
        assert.ok(Math.abs(alone.embeds[i][j] - full.textEmbeds[i][j]) < 1e-5, `text ${i} dim ${j}`);
        norm += alone.embeds[i][j] ** 2;
      }
      assert.ok(Math.abs(norm - 1) < 1e-5);
    }
  } finally {
    await runner.release();
    m.close();
  }
});
