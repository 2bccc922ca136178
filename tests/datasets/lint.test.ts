// The linter: each rule fires on the item that has the problem (and not elsewhere); results are stored and filterable.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { openDatabase, closeDatabase, type Database } from '../../src-main/storage/database';
import { importDataset } from '../../src-main/datasets/import';
import { loadItems } from '../../src-main/datasets/rows';
import { imagePath } from '../../src-main/datasets/images';
import { lintDataset, listLintResults, normalizeText } from '../../src-main/datasets/lint';
import * as F from './fixtures';
import { WhitespaceTokenizer, chatml } from './standin';

let tmp: ReturnType<typeof tempDir>;
let db: Database;
let dataDir: string;

before(() => {
  tmp = tempDir('ds-lint-');
  dataDir = join(tmp.dir, 'data');
  db = openDatabase(join(dataDir, 'lenslab.db'));
});
after(() => {
  closeDatabase(db);
  tmp.cleanup();
});

test('every rule finds its item; results are stored and filterable', async () => {
  const src = join(tmp.dir, 'src');
  const same = await F.png(1);
  F.write(src, 'a.png', same);
  F.write(src, 'b.png', same); // exact duplicate of a.png
  F.write(src, 'c.png', await F.png(2));
  F.write(src, 'd.png', await F.png(3));
  F.write(src, 'e.png', await F.png(4));
  F.write(src, 'f.png', await F.png(5));
  F.write(src, 'g.png', await F.png(6));
  F.write(src, 'h.png', await F.png(7));
  const long = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
  const recs = [
    { file_name: 'a.png', text: 'A small red square on a white table today.' }, // 0
    { file_name: 'b.png', text: 'a small red square on a white table' }, // 1 near-duplicate of 0 (6/7 shingles)
    { file_name: 'c.png', text: '   ' }, // 2 empty caption
    {
      file_name: 'd.png',
      messages: [
        { role: 'user', content: 'No image tag here' },
        { role: 'assistant', content: 'ok' },
      ],
    }, // 3 mismatch
    { file_name: 'e.png', messages: [{ role: 'user', content: '<image>\nHello?' }] }, // 4 no assistant
    { file_name: 'f.png', question: '<image>\nQ?', answer: '' }, // 5 empty answer
    { file_name: 'g.png', text: long }, // 6 too long for a 30-token context
    { file_name: 'h.png' }, // 7 unlabeled
  ];
  F.write(src, 'metadata.jsonl', recs.map((r) => JSON.stringify(r)).join('\n'));
  const rep = await importDataset(db, dataDir, src, { dataset: 'lint', strict: true });
  const ids = loadItems(db, rep.datasetId).map((i) => i.id);
  const tk = new WhitespaceTokenizer();
  const model = {
    template: chatml,
    tokenizer: tk,
    image: { tokenId: tk.encode('<image>')[0], count: 4 },
    contextLength: 40,
  };

  const r = await lintDataset(db, dataDir, rep.datasetId, { model });
  const got = r.findings.map((f) => `${ids.indexOf(f.itemId)}:${f.rule}`);
  assert.deepEqual(got, [
    '0:duplicate_image',
    '0:near_duplicate_caption',
    '1:duplicate_image',
    '1:near_duplicate_caption',
    '2:empty_answer',
    '3:image_token_mismatch',
    '4:no_assistant',
    '5:empty_answer',
    '6:too_long',
    '7:unlabeled',
  ]);
  assert.match(
    r.findings.find((f) => f.rule === 'near_duplicate_caption')!.message,
    /86% similar to the caption of item/,
  );
  assert.match(
    r.findings.find((f) => f.rule === 'image_token_mismatch')!.message,
    /chat 1: 0 <image> tag\(s\) but 1 image/,
  );
  assert.match(r.findings.find((f) => f.rule === 'too_long')!.message, /is \d+ tokens; the model's context is 40/);
  assert.equal(r.itemsWithErrors, 5);

  // Stored and filterable.
  assert.deepEqual(
    listLintResults(db, rep.datasetId, { rule: 'duplicate_image' }).map((f) => f.itemId),
    [ids[0], ids[1]],
  );
  assert.equal(listLintResults(db, rep.datasetId, { severity: 'error' }).length, 5);
  assert.deepEqual(
    listLintResults(db, rep.datasetId, { itemId: ids[7] }).map((f) => f.rule),
    ['unlabeled'],
  );

  // Damage the image store: a missing file and a corrupted one (same size, so only the deep check sees it).
  const items = loadItems(db, rep.datasetId);
  rmSync(imagePath(dataDir, items[2].image!.hash, items[2].image!.ext));
  const fFile = imagePath(dataDir, items[3].image!.hash, items[3].image!.ext);
  const bytes = readFileSync(fFile);
  bytes[bytes.length - 20] ^= 0xff;
  writeFileSync(fFile, bytes);
  const shallow = await lintDataset(db, dataDir, rep.datasetId, { store: false });
  assert.deepEqual(
    shallow.findings.filter((f) => f.rule.startsWith('image_')).map((f) => `${ids.indexOf(f.itemId)}:${f.rule}`),
    ['2:image_missing', '3:image_token_mismatch'],
  );
  const deep = await lintDataset(db, dataDir, rep.datasetId, { deep: true });
  assert.deepEqual(
    deep.findings
      .filter((f) => f.rule === 'image_missing' || f.rule === 'image_corrupt')
      .map((f) => `${ids.indexOf(f.itemId)}:${f.rule}`),
    ['2:image_missing', '3:image_corrupt'],
  );
  assert.equal(
    listLintResults(db, rep.datasetId, { rule: 'too_long' }).length,
    0,
    'the stored lint was replaced (no model this time)',
  );
});

test('normalizeText folds case, punctuation and spacing', () => {
  assert.equal(normalizeText('  A Red,  SQUARE!! '), 'a red square');
  assert.equal(normalizeText('Ünïcödé — ok'), 'ünïcödé ok');
});
