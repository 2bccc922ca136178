// Near-duplicate images by embedding in the linter (datasets.lint with an imageModelId): a re-saved copy of one
// image with two pixels changed and a JPEG of it are flagged against the original, naming the other item and the
// cosine; byte-identical copies stay the exact-duplicate rule's; distinct images are not flagged.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { tempDir } from '../helpers/tmp';
import { createBackend } from '../../src-main/services/backend';
import { loadItems } from '../../src-main/datasets/rows';
import { writeTinyContrastive } from '../../src-main/models/demo/tiny-contrastive';
import { writeContrastiveDataset } from '../../src-main/models/demo/contrastive-dataset';
import { releaseSearchModel } from '../../src-main/datasets/embedding-search';

const { dir, cleanup } = tempDir('near-dup-images-');
after(async () => {
  await releaseSearchModel();
  cleanup();
});

// The tiny random CLIP maps the 20 distinct val images to cosines of at most 0.9985 with each other, the changed
// copies to 0.9999+ with their original: a threshold between the two separates them.
const THRESHOLD = 0.9995;

test('lint with a CLIP model names the near-duplicate pairs above the threshold', async () => {
  const model = join(dir, 'clip');
  writeTinyContrastive(model, 'clip', 1, {
    imageSize: 32,
    patchSize: 8,
    hidden: 64,
    layers: 2,
    heads: 4,
    std: 0.1,
    textPositions: 32,
  });
  const data = join(dir, 'shapes');
  await writeContrastiveDataset(data);
  const src = join(dir, 'src');
  cpSync(join(data, 'val'), src, { recursive: true });
  const cls = join(src, 'red circle');
  const orig = readFileSync(join(cls, '000.png'));
  const { data: raw, info } = await sharp(orig).raw().toBuffer({ resolveWithObject: true });
  raw[0] ^= 40;
  raw[1] ^= 40;
  writeFileSync(
    join(cls, '001.png'),
    await sharp(raw, { raw: { width: info.width, height: info.height, channels: info.channels } })
      .png()
      .toBuffer(),
  );
  writeFileSync(join(cls, '002.jpg'), await sharp(orig).jpeg({ quality: 80 }).toBuffer());
  writeFileSync(join(cls, '003.png'), orig); // byte-identical: the exact-duplicate rule's
  for (const n of ['001', '002', '003']) writeFileSync(join(cls, `${n}.txt`), 'a red circle');

  const dataDir = join(dir, 'lenslab');
  const backend = createBackend({ dataDir, host: 'cli' });
  try {
    const call = (m: string, p: unknown) => backend.dispatcher.call(m as never, p as never) as Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const ds = (await call('datasets.import', { path: src, dataset: 'shapes' })).datasetId as number;
    const modelId = (await call('models.import', { path: model, name: 'tiny CLIP' })).model.id as number;
    const items = loadItems(backend.db, ds);
    assert.equal(items.length, 23);
    const idOf = (name: string) =>
      items.find((it) => it.sourcePath?.replace(/\\/g, '/').endsWith(`red circle/${name}`))!.id;
    const [o, tweak, jpg, copy] = ['000.png', '001.png', '002.jpg', '003.png'].map(idOf);

    const r = await call('datasets.lint', {
      datasetId: ds,
      imageModelId: modelId,
      nearDuplicateImageThreshold: THRESHOLD,
    });
    const near = (
      r.findings as Array<{
        itemId: number;
        rule: string;
        message: string;
        data: { otherItemId: number; similarity: number; count: number };
      }>
    ).filter((f) => f.rule === 'near_duplicate_image');
    assert.deepEqual(
      near.map((f) => f.itemId).sort((a, b) => a - b),
      [o, tweak, jpg, copy].sort((a, b) => a - b),
      'only the red circle and its copies',
    );
    const of = (id: number) => near.find((f) => f.itemId === id)!;
    // the changed copies name the original (the first item holding that image); the original and its byte copy name their closest
    assert.equal(of(tweak).data.otherItemId, o);
    assert.equal(of(jpg).data.otherItemId, o);
    assert.ok([tweak, jpg].includes(of(o).data.otherItemId));
    assert.equal(of(copy).data.otherItemId, of(o).data.otherItemId);
    assert.equal(of(o).data.count, 2, 'two other images are over the threshold');
    for (const f of near) assert.ok(f.data.similarity >= THRESHOLD && f.data.similarity <= 1 + 1e-5);
    assert.match(
      of(tweak).message,
      new RegExp(
        `^image is a near-duplicate of the image of item ${o} \\(and 1 more\\): cosine (0\\.999[5-9]|1\\.0000)\\d* ≥ ${THRESHOLD} with tiny CLIP$`,
      ),
    );
    assert.match(of(o).message, /\(and 1 more\)/);
    // the byte-identical copy is still the exact-duplicate rule's
    assert.deepEqual(
      r.findings
        .filter((f: { rule: string }) => f.rule === 'duplicate_image')
        .map((f: { itemId: number }) => f.itemId)
        .sort((a: number, b: number) => a - b),
      [o, copy].sort((a, b) => a - b),
    );
    // stored and filterable like the other rules
    const stored = await call('datasets.lintResults', { datasetId: ds, rule: 'near_duplicate_image' });
    assert.equal(stored.findings.length, 4);

    // a lint without the model finds none; a threshold without a model, or a missing model, is named
    const plain = await call('datasets.lint', { datasetId: ds });
    assert.equal(plain.findings.filter((f: { rule: string }) => f.rule === 'near_duplicate_image').length, 0);
    await assert.rejects(
      call('datasets.lint', { datasetId: ds, nearDuplicateImageThreshold: 0.9 }),
      (e: { field?: string; message: string }) =>
        e.field === 'nearDuplicateImageThreshold' && /imageModelId/.test(e.message),
    );
    await assert.rejects(call('datasets.lint', { datasetId: ds, imageModelId: 99999 }), /model 99999 does not exist/);
    await assert.rejects(
      call('datasets.lint', { datasetId: ds, imageModelId: modelId, nearDuplicateImageThreshold: 1.5 }),
      /nearDuplicateImageThreshold/,
    );
  } finally {
    await backend.shutdown();
    backend.close();
  }
});
