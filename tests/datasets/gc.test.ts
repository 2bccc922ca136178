// Image garbage collection keeps everything an item, a chat message or the undo history still refers to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { openDatabase, closeDatabase } from '../../src-main/storage/database';
import { importDataset } from '../../src-main/datasets/import';
import { collectImageGarbage, imagePath, thumbPath } from '../../src-main/datasets/images';
import { loadItems } from '../../src-main/datasets/rows';
import * as ops from '../../src-main/datasets/ops';
import * as F from './fixtures';

test('gc removes only unreferenced images, and never ones an undo may bring back', async () => {
  const tmp = tempDir('ds-gc-');
  const dataDir = join(tmp.dir, 'data');
  const db = openDatabase(join(dataDir, 'lenslab.db'));
  try {
    const a = join(tmp.dir, 'a');
    const b = join(tmp.dir, 'b');
    await F.vqaJsonl(a); // images 50, 51, 52
    await F.imagefolderJsonl(b); // images 10, 11, 12
    F.write(b, 'img0.png', await F.png(50)); // b's first image is a's first image
    const ra = await importDataset(db, dataDir, a, { dataset: 'a' });
    const rb = await importDataset(db, dataDir, b, { dataset: 'b' });
    const itemsB = loadItems(db, rb.datasetId);
    const files = (it: (typeof itemsB)[number]) => [
      imagePath(dataDir, it.image!.hash, it.image!.ext),
      thumbPath(dataDir, it.image!.hash),
    ];

    assert.deepEqual(collectImageGarbage(db, dataDir, { minAgeMs: 0 }).removed, 0);
    ops.deleteItems(db, rb.datasetId, [itemsB[1].id]); // undoable: its image must stay
    assert.equal(collectImageGarbage(db, dataDir, { minAgeMs: 0 }).removed, 0);
    assert.ok(files(itemsB[1]).every(existsSync));
    ops.undo(db, rb.datasetId);
    assert.equal(loadItems(db, rb.datasetId).length, 3);

    db.prepare('DELETE FROM datasets WHERE id = ?').run(rb.datasetId); // history goes with the dataset
    assert.equal(collectImageGarbage(db, dataDir).removed, 0, 'young files are kept by default');
    const r = collectImageGarbage(db, dataDir, { minAgeMs: 0 });
    assert.equal(r.removed, 4, 'images 11 and 12 with their thumbnails');
    assert.ok(r.bytesFreed > 0);
    assert.ok(files(itemsB[0]).every(existsSync), 'image 50 is still used by dataset a');
    assert.ok(!files(itemsB[1]).some(existsSync));
    assert.equal(loadItems(db, ra.datasetId).length, 3);
  } finally {
    closeDatabase(db);
    tmp.cleanup();
  }
});

test('gc removes a leftover extraction folder 2,000 levels deep (deeper than PATH_MAX) without recursion', () => {
  const tmp = tempDir('ds-gc-deep-');
  const dataDir = join(tmp.dir, 'data');
  const db = openDatabase(join(dataDir, 'lenslab.db'));
  try {
    // built by renames (each step moves the whole chain one level down), since the full path is too long for mkdir
    const top = join(dataDir, '.lenslab-unzip-leftover');
    const chain = join(dataDir, 'chain');
    const step = join(dataDir, 'step');
    mkdirSync(chain);
    writeFileSync(join(chain, 'x.png'), 'x');
    for (let i = 0; i < 2000; i++) {
      mkdirSync(step);
      renameSync(chain, join(step, 'a'));
      renameSync(step, chain);
    }
    renameSync(chain, top);
    const r = collectImageGarbage(db, dataDir, { minAgeMs: 0 });
    assert.equal(r.removed, 1);
    assert.ok(!existsSync(top), 'the whole chain is gone');
    assert.deepEqual(
      readdirSync(dataDir).filter((f) => f.startsWith('.')),
      [],
      'nothing left beside it',
    );
  } finally {
    closeDatabase(db);
    tmp.cleanup();
  }
});
