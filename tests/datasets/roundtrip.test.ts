// Every import format imports, exports (LLaVA, messages, imagefolder) and re-imports to the same
// items and labels (image content, annotations with their kinds, tags, splits).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { walkFiles } from '../../src-main/datasets/read';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { openDatabase, closeDatabase, type Database } from '../../src-main/storage/database';
import { importDataset } from '../../src-main/datasets/import';
import { exportDataset } from '../../src-main/datasets/export';
import { loadItems } from '../../src-main/datasets/rows';
import { imagePath, thumbPath } from '../../src-main/datasets/images';
import { EXPORT_FORMATS } from '../../src-main/datasets/types';
import * as F from './fixtures';
import { parquetWriteBuffer } from 'hyparquet-writer';

let tmp: ReturnType<typeof tempDir>;
let db: Database;
let dataDir: string;

before(() => {
  tmp = tempDir('ds-roundtrip-');
  dataDir = join(tmp.dir, 'data');
  db = openDatabase(join(dataDir, 'lenslab.db'));
});
after(() => {
  closeDatabase(db);
  tmp.cleanup();
});

function snapshot(datasetId: number) {
  return loadItems(db, datasetId).map((it) => ({
    image: it.image ? `${it.image.hash}.${it.image.ext}` : null,
    annotations: it.annotations.map(({ kind, data }) => ({ kind, data })),
    tags: it.tags,
    split: it.split,
  }));
}

const sources: [string, (root: string) => Promise<void>, string, number][] = [
  ['folder', F.folderDataset, 'folder', 4],
  ['imagefolder-jsonl', F.imagefolderJsonl, 'imagefolder', 3],
  ['imagefolder-csv', F.imagefolderCsv, 'imagefolder', 3],
  ['llava', F.llavaJson, 'llava', 4],
  ['messages', F.messagesJsonl, 'messages', 3],
  ['vqa', F.vqaJsonl, 'vqa', 3],
  ['vqa-folders', F.vqaFolders, 'vqa-folders', 3],
  ['parquet', F.parquetDataset, 'parquet', 3],
];

for (const [name, make, format, count] of sources) {
  test(`${name}: import, export to every format, re-import gives the same items and labels`, async () => {
    const src = join(tmp.dir, 'src', name);
    await make(src);
    const rep = await importDataset(db, dataDir, src, { dataset: name, strict: true });
    assert.equal(rep.format, format);
    assert.equal(rep.imported, count);
    assert.deepEqual(rep.skipped, []);
    const original = snapshot(rep.datasetId);
    assert.equal(original.length, count);
    for (const it of loadItems(db, rep.datasetId)) {
      if (!it.image) continue;
      assert.ok(existsSync(imagePath(dataDir, it.image.hash, it.image.ext)), 'image stored content-addressed');
      assert.ok(existsSync(thumbPath(dataDir, it.image.hash)), 'thumbnail made');
      assert.ok(it.sourcePath, 'original path kept');
    }
    for (const fmt of EXPORT_FORMATS) {
      const out = join(tmp.dir, 'out', `${name}-${fmt}`);
      const ex = exportDataset(db, dataDir, rep.datasetId, out, { format: fmt });
      const withoutImage = original.filter((o) => o.image === null).length;
      const unlabeled = original.filter((o) => o.annotations.length === 0).length;
      const expectSkipped = fmt === 'imagefolder' ? withoutImage : unlabeled;
      assert.equal(ex.skipped.length, expectSkipped, `${fmt} skipped ${JSON.stringify(ex.skipped)}`);
      const back = await importDataset(db, dataDir, out, { dataset: `${name}-${fmt}`, strict: true });
      const expected = original.filter((o) => (fmt === 'imagefolder' ? o.image !== null : o.annotations.length > 0));
      assert.deepEqual(snapshot(back.datasetId), expected, `${name} → ${fmt} → re-import`);
    }
  });
}

test('a zip of each format imports to the same items as the folder', async () => {
  for (const [name, , format] of sources) {
    const src = join(tmp.dir, 'src', name);
    const files: Record<string, Uint8Array> = {};
    for (const rel of walkFiles(src)) files[`${name}/${rel}`] = readFileSync(join(src, rel));
    const zip = join(tmp.dir, 'zips', `${name}.zip`);
    mkdirSync(join(tmp.dir, 'zips'), { recursive: true });
    writeFileSync(zip, F.zipOf(files));
    const rep = await importDataset(db, dataDir, zip, { dataset: `zip-${name}`, strict: true });
    assert.equal(rep.format, format, name);
    const folder = (db.prepare('SELECT id FROM datasets WHERE name = ?').get(name) as { id: number }).id;
    assert.deepEqual(snapshot(rep.datasetId), snapshot(folder), `${name}.zip`);
    assert.match(loadItems(db, rep.datasetId)[0].sourcePath ?? '', /./);
    assert.ok(!readdirSync(dataDir).some((f) => f.includes('unzip')), 'the extraction folder is removed');
  }
});

test('zip of a dataset imports like the folder', async () => {
  const src = join(tmp.dir, 'src', 'zipme');
  await F.vqaJsonl(src);
  const files: Record<string, Uint8Array> = {};
  for (const rel of ['vqa.jsonl', 'v/0.png', 'v/1.png', 'v/2.png']) files[`ds/${rel}`] = readFileSync(join(src, rel));
  const zip = join(tmp.dir, 'src', 'ds.zip');
  writeFileSync(zip, F.zipOf(files));
  const rep = await importDataset(db, dataDir, zip, { strict: true });
  assert.equal(rep.datasetName, 'ds');
  assert.equal(rep.format, 'vqa');
  assert.equal(rep.imported, 3);
  const items = loadItems(db, rep.datasetId);
  assert.deepEqual(
    items[1].annotations.map((a) => a.data),
    [{ question: 'Q1?', answer: F.CAPTIONS[1] }],
  );
});

test('export without lenslab fields is plain LLaVA / LLaMA-Factory JSON', async () => {
  const src = join(tmp.dir, 'src', 'plain');
  await F.vqaJsonl(src);
  const rep = await importDataset(db, dataDir, src, { dataset: 'plain' });
  const out = join(tmp.dir, 'out', 'plain-llava');
  exportDataset(db, dataDir, rep.datasetId, out, { format: 'llava', lenslabFields: false });
  const data = JSON.parse(readFileSync(join(out, 'data.json'), 'utf8'));
  assert.equal(data.length, 3);
  assert.deepEqual(Object.keys(data[0]).sort(), ['conversations', 'id', 'image']);
  assert.deepEqual(data[0].conversations, [
    { from: 'human', value: '<image>\nQ0?' },
    { from: 'gpt', value: F.CAPTIONS[0] },
  ]);
  assert.ok(existsSync(join(out, data[0].image)));
  const out2 = join(tmp.dir, 'out', 'plain-messages');
  exportDataset(db, dataDir, rep.datasetId, out2, { format: 'messages', lenslabFields: false });
  const line = JSON.parse(readFileSync(join(out2, 'data.jsonl'), 'utf8').split('\n')[0]);
  assert.deepEqual(line.messages, [
    { role: 'user', content: '<image>\nQ0?' },
    { role: 'assistant', content: F.CAPTIONS[0] },
  ]);
  assert.equal(line.images.length, 1);
  assert.throws(() => exportDataset(db, dataDir, rep.datasetId, out2, { format: 'messages' }), /not empty/);
});

test('records about the same image become one item (one split), unless groupByImage is false', async () => {
  const src = join(tmp.dir, 'src', 'multi-q');
  F.write(src, 'a.png', await F.png(901));
  F.write(src, 'b.png', await F.png(902));
  F.write(
    src,
    'vqa.jsonl',
    [
      { image: 'a.png', question: 'Colour?', answer: 'Red.' },
      { image: 'b.png', question: 'Colour?', answer: 'Blue.' },
      { image: 'a.png', question: 'Shape?', answer: 'Square.' },
    ]
      .map((r) => JSON.stringify(r))
      .join('\n'),
  );
  const rep = await importDataset(db, dataDir, src, { dataset: 'multi-q', strict: true });
  assert.equal(rep.imported, 2);
  const items = loadItems(db, rep.datasetId);
  assert.deepEqual(
    items[0].annotations.map((a) => a.data),
    [
      { question: 'Colour?', answer: 'Red.' },
      { question: 'Shape?', answer: 'Square.' },
    ],
  );
  const prov = db.prepare('SELECT record FROM item_sources WHERE item_id = ?').get(items[0].id) as { record: string };
  assert.equal(prov.record, 'vqa.jsonl:1 (+1 more)');
  const out = join(tmp.dir, 'out', 'multi-q');
  exportDataset(db, dataDir, rep.datasetId, out, { format: 'llava' });
  const back = await importDataset(db, dataDir, out, { dataset: 'multi-q-back', strict: true });
  assert.deepEqual(snapshot(back.datasetId), snapshot(rep.datasetId));
  const apart = await importDataset(db, dataDir, src, { dataset: 'multi-q-apart', groupByImage: false });
  assert.equal(apart.imported, 3);
});

test('parquet in the TRL / LLaMA-Factory shape: messages with content parts + an images list', async () => {
  const src = join(tmp.dir, 'src', 'trl');
  const img = new Uint8Array(await F.png(903));
  // Nested list<struct> columns, as the datasets library writes them.
  const buf = parquetWriteBuffer({
    columnData: [
      {
        name: 'messages',
        data: [
          [
            {
              role: 'user',
              content: [
                { type: 'image', text: null },
                { type: 'text', text: 'What is this?' },
              ],
            },
            { role: 'assistant', content: [{ type: 'text', text: 'A tiny square.' }] },
          ],
        ],
      },
      { name: 'images', data: [[{ bytes: img, path: null }]] },
    ],
    schema: [
      { name: 'root', num_children: 2 },
      { name: 'messages', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
      { name: 'role', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'content', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
      { name: 'type', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'images', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
      { name: 'bytes', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
      { name: 'path', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
    ],
  });
  F.write(src, 'data/train-00000-of-00001.parquet', new Uint8Array(buf));
  const rep = await importDataset(db, dataDir, src, { dataset: 'trl', strict: true });
  assert.equal(rep.format, 'parquet');
  const [item] = loadItems(db, rep.datasetId);
  assert.equal(item.split, 'train');
  assert.ok(item.image);
  assert.deepEqual(
    item.annotations.map(({ kind, data }) => ({ kind, data })),
    [
      {
        kind: 'chat',
        data: {
          messages: [
            { role: 'user', content: '<image>\nWhat is this?' },
            { role: 'assistant', content: 'A tiny square.' },
          ],
        },
      },
    ],
  );
});
