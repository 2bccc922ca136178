// The dataset layouts of the BLIP VQA and BLIP-2 captioning recipes import as their authors lay them out:
// icon-VQA (train.jsonl of pids + image folders, test_data sample folders as the held-out split), Hugging Face
// `datasets` parquet (image structs, sharded files, a dataset card beside them) and COCO-Karpathy JSON. Bad
// input names the file, line or row, and field; a strict import of it stores nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { png, write } from './fixtures';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { openDatabase, closeDatabase, type Database } from '../../src-main/storage/database';
import { importDataset } from '../../src-main/datasets/import';
import { parseSource } from '../../src-main/datasets/parse';
import { loadItems } from '../../src-main/datasets/rows';
import { formatProblem, ImportError } from '../../src-main/datasets/types';
import {
  HF_CAPTIONS,
  ICON_TEST,
  ICON_TRAIN,
  KARPATHY,
  cocoKarpathy,
  hfParquet,
  hfParquetPaths,
  iconVqa,
} from './blip-layouts';

let tmp: ReturnType<typeof tempDir>;
let db: Database;
let dataDir: string;
let n = 0;
const fresh = (name: string) => join(tmp.dir, `src${n++}`, name);

before(() => {
  tmp = tempDir('ds-blip-');
  dataDir = join(tmp.dir, 'data');
  db = openDatabase(join(dataDir, 'lenslab.db'));
});
after(() => {
  closeDatabase(db);
  tmp.cleanup();
});

const counts = () =>
  db
    .prepare(
      'SELECT (SELECT COUNT(*) FROM datasets) AS d, (SELECT COUNT(*) FROM items) AS i, (SELECT COUNT(*) FROM annotations) AS a',
    )
    .get() as { d: number; i: number; a: number };

function qaBySplit(datasetId: number) {
  return loadItems(db, datasetId)
    .map((it) => ({ split: it.split, qa: it.annotations.map((a) => a.data as { question: string; answer: string }) }))
    .flatMap((it) => it.qa.map((q) => `${it.split}|${q.question}|${q.answer}`))
    .sort();
}

const expectedTrain = ICON_TRAIN.map((r) => `train|${r.question}|${r.answer}`);
const expectedTest = ICON_TEST.map((r) => `test|${r.question}|${r.answer}`);

test('icon-VQA, the parent folder: train.jsonl pids find their images, test_data items go to the test split', async () => {
  const src = fresh('iconqa');
  await iconVqa(src);
  const rep = await importDataset(db, dataDir, src, { strict: true });
  assert.equal(rep.format, 'icon-vqa');
  assert.equal(rep.imported, ICON_TRAIN.length + ICON_TEST.length);
  assert.deepEqual(rep.skipped, []);
  assert.deepEqual(rep.warnings, []);
  assert.deepEqual(qaBySplit(rep.datasetId), [...expectedTest, ...expectedTrain].sort());
  // the test id '100' that is also a training pid does not take the training image
  const items = loadItems(db, rep.datasetId);
  const hashes = new Set(items.map((it) => it.image!.hash));
  assert.equal(hashes.size, items.length, 'every item has its own image');
  const sources = db
    .prepare(
      'SELECT s.record, s.image_original FROM item_sources s JOIN items i ON i.id = s.item_id WHERE i.dataset_id = ? ORDER BY s.record',
    )
    .all(rep.datasetId) as { record: string; image_original: string }[];
  assert.deepEqual(
    sources.find((s) => s.record === 'train.jsonl:1'),
    { record: 'train.jsonl:1', image_original: 'train_fill_in_blank/train_fill_in_blank/100/image.png' },
  );
  assert.ok(
    sources.some((s) => s.record === 'test_data/100/data.json' && s.image_original === 'test_data/100/image.png'),
  );
});

test('icon-VQA: the train folder alone, the test folder alone, the parent with the train folder one level down, the .jsonl file', async () => {
  const parent = fresh('icon-nested');
  await iconVqa(parent, { train: 'train' });
  const all = await importDataset(db, dataDir, parent, { strict: true });
  assert.equal(all.format, 'icon-vqa');
  assert.deepEqual(qaBySplit(all.datasetId), [...expectedTest, ...expectedTrain].sort());

  const train = await importDataset(db, dataDir, join(parent, 'train'), { dataset: 'icon-train', strict: true });
  assert.equal(train.format, 'icon-vqa');
  assert.deepEqual(qaBySplit(train.datasetId), expectedTrain.slice().sort());

  const testOnly = await importDataset(db, dataDir, join(parent, 'test_data'), { dataset: 'icon-test', strict: true });
  assert.equal(testOnly.format, 'vqa-folders');
  assert.deepEqual(
    qaBySplit(testOnly.datasetId),
    expectedTest.slice().sort(),
    'a dropped test_data folder is the held-out split',
  );

  const file = await importDataset(db, dataDir, join(parent, 'train', 'train.jsonl'), {
    dataset: 'icon-file',
    strict: true,
  });
  assert.equal(file.format, 'icon-vqa');
  assert.deepEqual(
    qaBySplit(file.datasetId),
    expectedTrain.slice().sort(),
    'the file alone imports its records, not the test folder',
  );
});

test('icon-VQA: the image tree alone (no train.jsonl) imports unlabeled with one warning saying where the labels are', async () => {
  const src = fresh('icon-images');
  await iconVqa(src);
  const rep = await importDataset(db, dataDir, join(src, 'train_fill_in_blank'), { dataset: 'icon-images' });
  assert.equal(rep.format, 'folder');
  assert.equal(rep.imported, ICON_TRAIN.length);
  assert.equal(rep.warnings.length, 1);
  assert.match(
    rep.warnings[0].message,
    /labels are in the train\.jsonl beside that folder: import the folder that holds train\.jsonl/,
  );
  // train.jsonl with the image tree (a drop of both) is the layout again
  const both = fresh('icon-both');
  await iconVqa(both);
  rmSync(join(both, 'test_data'), { recursive: true });
  const rep2 = await importDataset(db, dataDir, both, { dataset: 'icon-both', strict: true });
  assert.equal(rep2.format, 'icon-vqa');
  assert.equal(rep2.imported, ICON_TRAIN.length);
  // a plain folder of captioned or differently named images is not warned about
  const plain = fresh('plain');
  write(plain, 'a/image.png', await png(300));
  write(plain, 'b/photo.png', await png(301));
  assert.deepEqual((await importDataset(db, dataDir, plain, { dataset: 'plain' })).warnings, []);
});

test('icon-VQA bad input: a line missing its answer, a pid without an image folder; strict stores nothing', async () => {
  const src = fresh('icon-bad');
  const lines = ICON_TRAIN.map((r) => JSON.stringify(r));
  lines[1] = JSON.stringify({ pid: '101', question: 'How many stars are there?' });
  lines[2] = JSON.stringify({ pid: '999', question: 'How many circles are there?', answer: '2' });
  lines[3] = JSON.stringify({ question: 'How many hearts are there?', answer: '5' });
  await iconVqa(src, { lines });
  const parsed = await parseSource(src);
  try {
    const errs = parsed.problems.filter((p) => p.severity === 'error').map(formatProblem);
    assert.equal(errs.length, 3, errs.join('\n'));
    assert.match(errs[0], /^train\.jsonl:2\.answer: missing/);
    assert.match(errs[1], /^train\.jsonl:3\.pid: no image for pid "999"/);
    assert.match(errs[2], /^train\.jsonl:4\.pid: missing/);
  } finally {
    parsed.cleanup();
  }
  const before = counts();
  await assert.rejects(importDataset(db, dataDir, src, { dataset: 'icon-bad', strict: true }), (err: unknown) => {
    assert.ok(err instanceof ImportError);
    assert.match(err.message, /train\.jsonl:2\.answer: missing .*\(and 2 more\)/);
    return true;
  });
  assert.deepEqual(counts(), before, 'nothing stored');
  // without strict the good records are imported and each bad one is reported with its line and field
  const rep = await importDataset(db, dataDir, src, { dataset: 'icon-bad' });
  assert.equal(rep.imported, 1 + ICON_TEST.length);
  assert.deepEqual(
    rep.skipped.map((p) => `${p.ref}.${p.field}`),
    ['train.jsonl:2.answer', 'train.jsonl:3.pid', 'train.jsonl:4.pid'],
  );
});

test('HF parquet: sharded train-0000N-of-00002 files with README.md and dataset_info.json beside them', async () => {
  const src = fresh('football-dataset');
  await hfParquet(src);
  const rep = await importDataset(db, dataDir, src, { strict: true });
  assert.equal(rep.format, 'parquet');
  assert.equal(rep.imported, HF_CAPTIONS.length);
  assert.deepEqual(rep.warnings, [], 'the card and dataset_info.json are not datasets and not warned about');
  const items = loadItems(db, rep.datasetId);
  assert.deepEqual(
    items.map((it) => [it.split, (it.annotations[0].data as { text: string }).text]),
    HF_CAPTIONS.map((t) => ['train', t]),
    'rows of both shards, in shard order, split from the file name',
  );
  const orig = db
    .prepare(
      'SELECT s.image_original FROM item_sources s JOIN items i ON i.id = s.item_id WHERE i.dataset_id = ? ORDER BY i.position',
    )
    .all(rep.datasetId) as { image_original: string }[];
  assert.equal(orig[3].image_original, 'data/train-00001-of-00002.parquet[0].image (football_3.png)');

  // a shard left out: imported with one warning naming it
  const partial = fresh('football-partial');
  await hfParquet(partial, { shards: [1] });
  const rep2 = await importDataset(db, dataDir, partial);
  assert.equal(rep2.imported, 2);
  assert.equal(rep2.warnings.length, 1);
  assert.equal(rep2.warnings[0].ref, 'data/train-00000-of-00002.parquet');
  assert.match(rep2.warnings[0].message, /shard missing: 1 of the 2 shards of 'train'/);
});

test('HF parquet bad input: image structs whose paths do not exist name the file, row and column; nothing stored', async () => {
  const src = fresh('pq-missing');
  await hfParquetPaths(src, false);
  const before = counts();
  for (const strict of [true, false]) {
    await assert.rejects(importDataset(db, dataDir, src, { dataset: 'pq-missing', strict }), (err: unknown) => {
      assert.ok(err instanceof ImportError);
      assert.match(err.message, /train-00000-of-00001\.parquet\[0\]\.image\.path: file not found: images\/p0\.png/);
      return true;
    });
    assert.deepEqual(counts(), before, 'nothing stored');
  }
  // the same file with its images beside it imports
  const ok = fresh('pq-paths');
  await hfParquetPaths(ok, true);
  const rep = await importDataset(db, dataDir, ok, { strict: true });
  assert.equal(rep.imported, 2);
});

test('COCO-Karpathy JSON: captions of one image become one item, images relative to the JSON, image_id ignored', async () => {
  const src = fresh('coco');
  await cocoKarpathy(src);
  // through the folder and through the file
  for (const source of [src, join(src, 'coco_karpathy_train.json')]) {
    const rep = await importDataset(db, dataDir, source, { dataset: `coco-${source.length}`, strict: true });
    assert.equal(rep.imported, 3);
    assert.deepEqual(rep.warnings, []);
    const items = loadItems(db, rep.datasetId);
    assert.deepEqual(
      items.map((it) => it.annotations.map((a) => `${a.kind}:${(a.data as { text: string }).text}`)),
      [
        [`caption:${KARPATHY[0].caption}`, `caption:${KARPATHY[1].caption}`],
        [`caption:${KARPATHY[2].caption}`],
        [`caption:${KARPATHY[3].caption}`],
      ],
    );
    assert.deepEqual(
      items.map((it) => it.image!.ext),
      ['jpg', 'jpg', 'jpg'],
    );
  }
  // the Karpathy val/test files: one record per image with a list of captions
  const test5 = fresh('coco-test');
  await cocoKarpathy(test5, { name: 'coco_karpathy_test.json' });
  writeFileSync(
    join(test5, 'coco_karpathy_test.json'),
    JSON.stringify([{ image: KARPATHY[0].image, caption: [KARPATHY[0].caption, KARPATHY[1].caption, 'a cake'] }]),
  );
  const rt = await importDataset(db, dataDir, test5, { dataset: 'coco-test', strict: true });
  assert.equal(rt.imported, 1);
  assert.equal(rt.format, 'vqa');
  assert.deepEqual(
    loadItems(db, rt.datasetId)[0].annotations.map((a) => (a.data as { text: string }).text),
    [KARPATHY[0].caption, KARPATHY[1].caption, 'a cake'],
  );

  // a record whose image is missing, a record without a caption: named by index and field; strict stores nothing
  const bad = fresh('coco-bad');
  await cocoKarpathy(bad);
  const recs = [
    ...KARPATHY,
    { caption: 'a dog', image: 'val2014/missing.jpg', image_id: 'coco_1' },
    { caption: 7, image: KARPATHY[3].image, image_id: 'coco_9' },
  ];
  writeFileSync(join(bad, 'coco_karpathy_train.json'), JSON.stringify(recs));
  const before = counts();
  await assert.rejects(importDataset(db, dataDir, bad, { dataset: 'coco-bad', strict: true }), (err: unknown) => {
    assert.ok(err instanceof ImportError);
    assert.match(
      err.message,
      /coco_karpathy_train\.json\[4\]\.image: file not found: val2014\/missing\.jpg \(and 1 more\)/,
    );
    assert.deepEqual(
      err.problems.filter((p) => p.severity === 'error').map(formatProblem)[1],
      'coco_karpathy_train.json[5].caption: expected string, received number',
    );
    return true;
  });
  assert.deepEqual(counts(), before, 'nothing stored');
});

test('icon-VQA: a pid that is not a folder name, or not a string or integer, is refused by name; paths never leave the root', async () => {
  const src = fresh('icon-hostile');
  const lines = [
    JSON.stringify({ pid: '../../etc', question: 'q?', answer: '1' }),
    JSON.stringify({ pid: { $ne: 1 }, question: 'q?', answer: '1' }),
    JSON.stringify({ pid: 100, question: 'How many diamonds are there?', answer: 1 }),
    '{"pid": "101", "question": ',
  ];
  await iconVqa(src, { lines });
  const parsed = await parseSource(src);
  try {
    const errs = parsed.problems.filter((p) => p.severity === 'error').map(formatProblem);
    assert.deepEqual(
      errs.map((e) => e.replace(/: .*$/, '')),
      ['train.jsonl:1.pid', 'train.jsonl:2.pid', 'train.jsonl:4'],
    );
    assert.match(errs[0], /"\.\.\/\.\.\/etc" is not a folder name/);
    assert.match(errs[1], /expected a string or an integer, got object/);
    assert.match(errs[2], /invalid JSON/);
    // an integer pid and a numeric answer are read as the published files write them
    const train = parsed.items.filter((it) => it.split === 'train');
    assert.equal(train.length, 1);
    assert.deepEqual(train[0].annotations, [
      { kind: 'qa', data: { question: 'How many diamonds are there?', answer: '1' } },
    ]);
  } finally {
    parsed.cleanup();
  }
});

test('lenslab import: the three layouts, and the error of a parquet with missing image paths', async () => {
  const { runCli } = await import('../../src-main/cli');
  const cli = async (...argv: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(argv, { out: (t) => out.push(t), err: (t) => err.push(t) }, {});
    return { code, out: out.join('\n'), err: err.join('\n') };
  };
  const dir = join(tmp.dir, 'cli-data');
  const icon = fresh('iconqa');
  await iconVqa(icon);
  let r = await cli('import', icon, '--data-dir', dir);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /Imported 6 item\(s\) with 6 label\(s\) into dataset 1 "iconqa" \(format icon-vqa\)/);
  const football = fresh('football-dataset');
  await hfParquet(football);
  r = await cli('import', football, '--data-dir', dir, '--json');
  assert.equal(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out).imported, 5);
  const coco = fresh('coco');
  await cocoKarpathy(coco);
  r = await cli('import', join(coco, 'coco_karpathy_train.json'), '--data-dir', dir);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /Imported 3 item\(s\) with 4 label\(s\)/);
  const broken = fresh('broken');
  await hfParquetPaths(broken, false);
  r = await cli('import', broken, '--data-dir', dir);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /train-00000-of-00001\.parquet\[0\]\.image\.path: file not found: images\/p0\.png/);
  r = await cli('datasets', 'list', '--data-dir', dir, '--json');
  const names = (JSON.parse(r.out) as { name: string }[]).map((d) => d.name).sort();
  assert.deepEqual(names, ['coco_karpathy_train', 'football-dataset', 'iconqa'], 'the failed import stored no dataset');
});
