// Records of JSON / JSONL / CSV files are staged on disk between parsing and inserting (stage.ts): the
// staged items must be exactly the items the in-memory path assembles (grouping by image and by exported
// item, record order, refs, tags, splits, a side file of unlabeled records left out, a zip's prefix),
// and the scratch folder must be gone after cleanup, also when parsing fails.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { parseSource } from '../../src-main/datasets/parse';
import type { NormalizedItem } from '../../src-main/datasets/types';
import * as F from './fixtures';

const tmp = tempDir('ds-stage-');
after(() => tmp.cleanup());

async function both(src: string, opts: { groupByImage?: boolean } = {}) {
  const scratch = join(tmp.dir, `scratch-${Math.random().toString(36).slice(2)}`);
  F.write(scratch, '.keep', '');
  const mem = await parseSource(src, { ...opts, tempDir: scratch });
  const disk = await parseSource(src, { ...opts, tempDir: scratch, stage: true });
  try {
    assert.ok(disk.staged, 'record files are staged');
    assert.deepEqual(disk.items, []);
    const staged: NormalizedItem[] = [...disk.staged];
    assert.equal(disk.staged.count, staged.length);
    assert.equal(disk.staged.withImage, staged.filter((it) => it.image).length);
    // twice: the import reads the items once for images, once in the transaction
    assert.deepEqual([...disk.staged], staged);
    // (a zip is extracted into a folder of its own each time: image paths compare relative to it)
    const rel = (items: NormalizedItem[], root: string) =>
      items.map((it) =>
        it.image && 'path' in it.image ? { ...it, image: { ...it.image, path: relative(root, it.image.path) } } : it,
      );
    assert.deepEqual(rel(staged, disk.root), rel(mem.items, mem.root));
    assert.deepEqual(disk.problems, mem.problems);
    assert.equal(disk.format, mem.format);
  } finally {
    mem.cleanup();
    disk.cleanup();
  }
  assert.deepEqual(
    readdirSync(scratch).filter((f) => f !== '.keep'),
    [],
    'the staging folder is removed',
  );
  return mem.items;
}

test('staged record files give the same items as the in-memory path: grouping, order, refs, tags, splits', async () => {
  const src = join(tmp.dir, 'multi');
  F.write(src, 'a.png', await F.png(951));
  F.write(src, 'b.png', await F.png(952));
  F.write(src, 'c.png', await F.png(953));
  const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n');
  F.write(
    src,
    'train.jsonl',
    jsonl([
      { image: 'a.png', question: 'Colour?', answer: 'Red.' },
      { image: 'b.png', question: 'Colour?', answer: 'Blue.' },
      { question: 'No image?', answer: 'None.' },
      { image: 'a.png', question: 'Shape?', answer: 'Square.' },
      { image: 'a.png', question: 42, answer: 'bad record' },
      { image: 'c.png', question: 'Q', answer: 'A', lenslab: { item: 7, kind: 'qa', tags: ['t1'], split: 'val' } },
    ]),
  );
  F.write(
    src,
    'llava.json',
    JSON.stringify([
      {
        image: 'b.png',
        conversations: [
          { from: 'human', value: '<image>\nWhat?' },
          { from: 'gpt', value: 'Blue.' },
        ],
      },
      {
        image: 'c.png',
        conversations: [
          { from: 'human', value: 'More?' },
          { from: 'gpt', value: 'Yes.' },
        ],
        lenslab: { item: 7, kind: 'chat' },
      },
    ]),
  );
  // a side file whose records name images but carry no labels: left out with one warning
  F.write(
    src,
    'scenes.jsonl',
    jsonl([
      { image: 'c.png', objects: 3 },
      { image: 'a.png', objects: 1 },
    ]),
  );
  const grouped = await both(src);
  assert.ok(
    grouped.some((it) => / \(\+\d+ more\)$/.test(it.sourcePath)),
    'some item groups several records',
  );
  // records of one exported item join across files (its first record's tags and split)
  assert.ok(grouped.some((it) => it.sourcePath === 'llava.json[1]' && it.annotations.length === 2));
  const apart = await both(src, { groupByImage: false });
  assert.ok(apart.length > grouped.length);
  // a zip: refs carry the archive's name
  const zip = join(tmp.dir, 'multi.zip');
  F.write(
    tmp.dir,
    'multi.zip',
    F.zipOf({
      'a.png': await F.png(951),
      'train.jsonl': jsonl([
        { image: 'a.png', question: 'Q?', answer: 'A.' },
        { image: 'a.png', question: 'Q2?', answer: 'A2.' },
      ]),
    }),
  );
  const zipped = await both(zip);
  assert.equal(zipped.length, 1);
  assert.equal(zipped[0].sourcePath, 'multi.zip:train.jsonl:1 (+1 more)');
});

test('a record file that fails to parse leaves no staging folder', async () => {
  const src = join(tmp.dir, 'bad');
  F.write(src, 'a.png', await F.png(954));
  F.write(src, 'data.json', '{"not": "an array"');
  const scratch = join(tmp.dir, 'scratch-bad');
  F.write(scratch, '.keep', '');
  await assert.rejects(parseSource(join(src, 'data.json'), { tempDir: scratch, stage: true }));
  assert.deepEqual(readdirSync(scratch), ['.keep']);
});

test('records naming the same broken image are each skipped with its error; a shared good image is stored once', async () => {
  const { openDatabase, closeDatabase } = await import('../../src-main/storage/database');
  const { importDataset } = await import('../../src-main/datasets/import');
  const src = join(tmp.dir, 'broken');
  F.write(src, 'good.png', await F.png(955));
  F.write(src, 'bad.png', 'not a png');
  const recs = [
    { image: 'bad.png', question: 'Q1', answer: 'A1' },
    { image: 'good.png', question: 'Q2', answer: 'A2' },
    { image: 'bad.png', question: 'Q3', answer: 'A3' },
    { image: 'good.png', question: 'Q4', answer: 'A4' },
  ];
  F.write(src, 'vqa.jsonl', recs.map((r) => JSON.stringify(r)).join('\n'));
  const dataDir = join(tmp.dir, 'broken-data');
  const db = openDatabase(join(dataDir, 'lenslab.db'));
  try {
    const rep = await importDataset(db, dataDir, join(src, 'vqa.jsonl'), {
      dataset: 'b',
      groupByImage: false,
      concurrency: 2,
    });
    assert.equal(rep.imported, 2);
    assert.equal(rep.imagesStored, 1);
    assert.equal(rep.imagesReused, 1);
    assert.deepEqual(rep.skipped.map((p) => [p.ref, p.field]).sort(), [
      ['vqa.jsonl:1', 'image'],
      ['vqa.jsonl:3', 'image'],
    ]);
    assert.ok(rep.skipped.every((p) => p.message.endsWith('(bad.png)')));
    assert.deepEqual(
      readdirSync(dataDir).filter((f) => f.startsWith('.lenslab-')),
      [],
    );
  } finally {
    closeDatabase(db);
  }
});
