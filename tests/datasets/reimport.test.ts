// Importing into a dataset that already holds the data: items already there (same image content, same
// labels after normalization) are not added again and are counted in `alreadyPresent`; new images, new or
// changed labels are added. Importing into a new dataset is unchanged. Through the real dispatcher.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { createBackend, type Backend } from '../../src-main/services/backend';
import { ApiError } from '../../src-main/contract/errors';
import { alreadyPresentKey } from '../../src-main/datasets/import';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';
import * as F from './fixtures';

let tmp: ReturnType<typeof tempDir>;
let be: Backend;

before(() => {
  tmp = tempDir('ds-reimport-');
  be = createBackend({ dataDir: join(tmp.dir, 'data') });
});
after(() => {
  be.close();
  tmp.cleanup();
});

const call = (m: string, p?: unknown) => be.dispatcher.call(m as never, p as never) as Promise<any>;
const total = async (datasetId: number) => (await call('items.list', { datasetId })).total as number;

test('re-importing the same LLaVA file adds nothing; a changed caption adds that one item; a new image adds one; history is kept', async () => {
  const src = join(tmp.dir, 'llava');
  await F.llavaJson(src); // 3 records with images + 1 text-only record
  const first = await call('datasets.import', { path: join(src, 'data.json'), dataset: 'L' });
  assert.equal(first.imported, 4);
  assert.equal(first.alreadyPresentCount, 0);
  assert.deepEqual(first.alreadyPresent, []);
  const ds = first.datasetId;
  const ids: number[] = (await call('items.list', { datasetId: ds })).items.map((i: any) => i.id);

  // an edit, undone: the redo must survive an import that adds nothing
  await call('items.tag', { datasetId: ds, itemIds: [ids[0]], tags: ['keep'] });
  await call('items.tag', { datasetId: ds, itemIds: [ids[1]], tags: ['redo-me'] });
  await call('datasets.undo', { datasetId: ds });
  const hist0 = await call('datasets.history', { datasetId: ds });
  assert.equal(hist0.canRedo, true);

  const again = await call('datasets.import', { path: join(src, 'data.json'), datasetId: ds });
  assert.equal(again.imported, 0);
  assert.equal(again.annotations, 0);
  assert.equal(again.alreadyPresentCount, 4);
  assert.equal(again.skippedCount, 0);
  assert.equal(again.imagesStored, 0);
  assert.equal(again.imagesReused, 3);
  assert.deepEqual(
    again.alreadyPresent.map((p: any) => [p.ref, p.itemId]),
    ['data.json[0]', 'data.json[1]', 'data.json[2]', 'data.json[3]'].map((r, k) => [r, ids[k]]),
  );
  assert.equal(again.alreadyPresent[0].message, `already in this dataset (item ${ids[0]})`);
  assert.equal(await total(ds), 4);
  assert.deepEqual(
    await call('datasets.history', { datasetId: ds }),
    hist0,
    'an import that adds nothing leaves undo and redo alone',
  );
  const provenance = await call('items.get', { id: ids[0] });
  assert.equal(provenance.provenance.importId, first.importId, 'the existing item keeps its provenance');
  assert.deepEqual(provenance.tags, ['keep'], 'and its tags');

  // one changed answer (a real new label for that image) → exactly that item is added
  const recs = JSON.parse(readFileSync(join(src, 'data.json'), 'utf8'));
  recs[1].conversations[1].value = 'a fixed caption';
  // whitespace at the ends and CRLF line ends are not a change
  recs[2].conversations[3].value = '  Yes.\r\n';
  writeFileSync(join(src, 'data.json'), JSON.stringify(recs));
  const changed = await call('datasets.import', { path: join(src, 'data.json'), datasetId: ds });
  assert.equal(changed.imported, 1);
  assert.equal(changed.alreadyPresentCount, 3);
  assert.equal(changed.imagesStored, 0);
  assert.equal(await total(ds), 5);
  const added = (await call('items.list', { datasetId: ds })).items.at(-1);
  assert.equal(added.annotations[0].data.messages[1].content, 'a fixed caption');
  assert.equal(
    added.image.hash,
    (await call('items.get', { id: ids[1] })).image.hash,
    'same image, new label: a new item',
  );
  const hist1 = await call('datasets.history', { datasetId: ds });
  assert.equal(hist1.canRedo, false, 'an import that adds items drops the redo, as before');
  assert.equal(hist1.undoLabel, hist0.undoLabel);
  // a case change is a change
  recs[0].conversations[3].value = 'YES.';
  // and a new image adds one item
  F.write(src, 'images/new.png', await F.png(99));
  recs.push({
    image: 'new.png',
    conversations: [
      { from: 'human', value: '<image>\nWhat is new?' },
      { from: 'gpt', value: 'This.' },
    ],
  });
  writeFileSync(join(src, 'data.json'), JSON.stringify(recs));
  const more = await call('datasets.import', { path: join(src, 'data.json'), datasetId: ds });
  assert.equal(more.imported, 2);
  assert.equal(more.alreadyPresentCount, 3);
  assert.equal(more.imagesStored, 1);
  assert.equal(await total(ds), 7);

  // undo still undoes the last edit (imports are not undo entries), the items stay
  const u = await call('datasets.undo', { datasetId: ds });
  assert.equal(u.label, hist0.undoLabel);
  assert.deepEqual((await call('items.get', { id: ids[0] })).tags, []);
  assert.equal(await total(ds), 7);

  // importing into a new dataset is unchanged: every item is stored (the images are reused)
  const fresh = await call('datasets.import', { path: join(src, 'data.json'), dataset: 'L2' });
  assert.equal(fresh.imported, 5);
  assert.equal(fresh.alreadyPresentCount, 0);
  assert.equal(fresh.imagesStored, 0);
  assert.equal(fresh.imagesReused, 4);
});

test('re-dropping a folder after labelling in the app adds only the new images; all-or-nothing holds', async () => {
  const src = join(tmp.dir, 'folder');
  await F.folderDataset(src); // 3 captioned images + dogs/unlabeled.png
  const first = await call('datasets.import', { path: src, dataset: 'Folder' });
  assert.equal(first.imported, 4);
  const ds = first.datasetId;
  const items = (await call('items.list', { datasetId: ds })).items;
  const unlabeled = items.find((i: any) => i.annotations.length === 0);
  await call('annotations.add', {
    datasetId: ds,
    itemId: unlabeled.id,
    annotation: { kind: 'caption', data: { text: 'a dog, labelled in the app' } },
  });

  F.write(src, 'cats/img9.png', await F.png(123));
  F.write(src, 'cats/img9.txt', 'a new cat\n');
  const again = await call('datasets.import', { path: src, datasetId: ds });
  assert.equal(again.imported, 1, 'only the new image');
  assert.equal(again.alreadyPresentCount, 4);
  const dog = again.alreadyPresent.find((p: any) => p.itemId === unlabeled.id);
  assert.match(
    dog.message,
    new RegExp(`no labels, and its image is already in this dataset \\(item ${unlabeled.id}\\)`),
  );
  assert.equal(await total(ds), 5);

  // strict: a bad record aborts the whole import, already-present items or not; nothing is stored
  F.write(src, 'cats/img10.png', await F.png(124));
  F.write(src, 'cats/broken.png', 'not a png');
  await assert.rejects(
    call('datasets.import', { path: src, datasetId: ds, strict: true }),
    (e: unknown) => e instanceof ApiError && /broken\.png/.test(e.message),
  );
  assert.equal(await total(ds), 5);
});

test('records that duplicate each other in one import are all stored (as before); a re-import skips them all', async () => {
  const src = join(tmp.dir, 'dups');
  F.write(src, 'a.png', await F.png(200));
  const line = JSON.stringify({ image: 'a.png', question: 'Q?', answer: 'A' });
  F.write(src, 'vqa.jsonl', `${line}\n${line}\n`);
  const first = await call('datasets.import', { path: join(src, 'vqa.jsonl'), dataset: 'Dups', groupByImage: false });
  assert.equal(first.imported, 2);
  const again = await call('datasets.import', {
    path: join(src, 'vqa.jsonl'),
    datasetId: first.datasetId,
    groupByImage: false,
  });
  assert.equal(again.imported, 0);
  assert.equal(again.alreadyPresentCount, 2);
  assert.equal(
    new Set(again.alreadyPresent.map((p: any) => p.itemId)).size,
    1,
    'both match the first of the stored copies',
  );
});

test('the demo folder: the ground-truth scenes.jsonl is left out with one warning; alone it imports as unlabeled items', async () => {
  const src = join(tmp.dir, 'demo');
  await writeDemoDataset(src, { seed: 3, count: 5, families: ['colors'] });
  const rep = await call('datasets.import', { path: src, dataset: 'Demo' });
  assert.equal(rep.imported, 5);
  assert.equal(rep.warningCount, 1);
  assert.equal(rep.warnings[0].ref, 'scenes.jsonl');
  assert.match(rep.warnings[0].message, /^not imported: none of its 5 record\(s\) has labels/);
  const items = (await call('items.list', { datasetId: rep.datasetId })).items;
  assert.ok(
    items.every((i: any) => i.annotations.some((a: any) => a.kind === 'caption')),
    'captions.jsonl is imported',
  );
  const again = await call('datasets.import', { path: src, datasetId: rep.datasetId });
  assert.equal(again.imported, 0);
  assert.equal(again.alreadyPresentCount, 5);

  const alone = await call('datasets.import', { path: join(src, 'scenes.jsonl'), dataset: 'Scenes' });
  assert.equal(alone.imported, 5);
  assert.equal(alone.warningCount, 5, 'a file imported on its own keeps its per-record warnings');
});

test('alreadyPresentKey: label order, end whitespace, CRLF and NFC do not matter; kind, case, roles and image do', () => {
  const cap = (text: string) => ({ kind: 'caption' as const, data: { text } });
  const qa = (question: string, answer: string) => ({ kind: 'qa' as const, data: { question, answer } });
  const k = alreadyPresentKey;
  assert.equal(k('h', [cap('a b'), qa('q', 'a')]), k('h', [qa(' q', 'a\n'), cap('a b')]));
  assert.equal(k('h', [cap('line 1\r\nline 2')]), k('h', [cap('line 1\nline 2')]));
  assert.equal(k('h', [cap('caf\u00e9')]), k('h', [cap('cafe\u0301')]));
  assert.notEqual(k('h', [cap('a b')]), k('h', [cap('A b')]));
  assert.notEqual(k('h', [cap('a  b')]), k('h', [cap('a b')]));
  assert.notEqual(k('h', [cap('a')]), k('g', [cap('a')]));
  assert.notEqual(k('h', [cap('a')]), k('h', [cap('a'), cap('a')]));
  assert.notEqual(
    k('h', [qa('q', 'a')]),
    k('h', [
      {
        kind: 'chat',
        data: {
          messages: [
            { role: 'user', content: 'q' },
            { role: 'assistant', content: 'a' },
          ],
        },
      },
    ]),
  );
  assert.notEqual(
    k('h', [{ kind: 'chat', data: { messages: [{ role: 'user', content: 'x' }] } }]),
    k('h', [{ kind: 'chat', data: { messages: [{ role: 'assistant', content: 'x' }] } }]),
  );
});
