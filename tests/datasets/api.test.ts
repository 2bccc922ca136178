// The datasets-io contract through the real dispatcher (validation, error codes and fields, events),
// and the `lenslab import` / `lenslab export` CLI commands.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { createBackend, type Backend } from '../../src-main/services/backend';
import { ApiError } from '../../src-main/contract/errors';
import { runCli } from '../../src-main/cli';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import * as F from './fixtures';

let tmp: ReturnType<typeof tempDir>;
let be: Backend;
const events: [string, unknown][] = [];

before(() => {
  tmp = tempDir('ds-api-');
  be = createBackend({ dataDir: join(tmp.dir, 'data') });
  be.events.subscribe((e, p) => events.push([e, p]));
});
after(() => {
  be.close();
  tmp.cleanup();
});

const call = (m: string, p?: unknown) => be.dispatcher.call(m as never, p as never) as Promise<any>;
async function rejectsWith(p: Promise<unknown>, code: string, field: string | undefined, msg: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ApiError, String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.field, field, e.message);
    assert.match(e.message, msg);
    return true;
  });
}

test('import, browse, label, undo/redo, split, lint, preview and export through the API', async () => {
  const src = join(tmp.dir, 'vqa');
  await F.vqaJsonl(src);
  F.write(
    src,
    'vqa.jsonl',
    readFileSync(join(src, 'vqa.jsonl'), 'utf8') + '\n{"image": "../../etc/passwd", "question": "q", "answer": "a"}\n',
  );
  const rep = await call('datasets.import', { path: src, dataset: 'Shapes' });
  assert.equal(rep.imported, 3);
  assert.equal(rep.skippedCount, 1);
  assert.deepEqual(rep.skipped[0], {
    ref: 'vqa.jsonl:4',
    field: 'image',
    message: 'path escapes the import folder: ../../etc/passwd',
    severity: 'error',
  });
  assert.ok(
    events.some(
      ([e, p]) => e === 'datasets.changed' && (p as any).kind === 'created' && (p as any).id === rep.datasetId,
    ),
  );
  assert.ok(
    events.some(([e, p]) => e === 'datasets.importProgress' && (p as any).done === 3 && (p as any).total === 3),
  );
  const ds = rep.datasetId;

  await rejectsWith(
    call('datasets.import', { path: join(tmp.dir, 'nope') }),
    'invalid_request',
    'path',
    /nope: not found/,
  );
  await rejectsWith(
    call('datasets.import', { path: src, strict: true, dataset: 'Strict' }),
    'invalid_request',
    'path',
    /vqa\.jsonl:4\.image: path escapes the import folder/,
  );
  await rejectsWith(call('datasets.import', { path: src, format: 'csv' }), 'invalid_request', 'format', /format/);
  assert.equal((await call('datasets.list')).datasets.length, 1, 'the strict failure created no dataset');

  let page = await call('items.list', { datasetId: ds, limit: 2 });
  assert.equal(page.total, 3);
  assert.equal(page.items.length, 2);
  assert.deepEqual(
    page.items[0].annotations.map((a: any) => a.kind),
    ['qa'],
  );
  assert.equal(page.items[0].image.ext, 'png');
  page = await call('items.list', { datasetId: ds, search: 'ÜNÏCÖDÉ'.toLowerCase() });
  assert.equal(page.total, 1);
  const ids: number[] = (await call('items.list', { datasetId: ds })).items.map((i: any) => i.id);
  const one = await call('items.get', { id: ids[0] });
  assert.deepEqual(one.provenance, { importId: rep.importId, record: 'vqa.jsonl:1', imageOriginal: 'v/0.png' });

  const a0 = one.annotations[0].id;
  let r = await call('annotations.update', {
    id: a0,
    annotation: { kind: 'qa', data: { question: 'Q0?', answer: 'A red square.' } },
  });
  assert.equal(r.changed, 1);
  assert.equal(r.history.undoLabel, 'edit qa');
  await rejectsWith(
    call('annotations.update', { id: a0, annotation: { kind: 'caption', data: { text: 'x' } } }),
    'invalid_request',
    'annotation.kind',
    /is a qa, not a caption/,
  );
  await rejectsWith(
    call('annotations.update', { id: a0, annotation: { kind: 'qa', data: { question: 'q' } } }),
    'invalid_request',
    'annotation.data.answer',
    /answer/,
  );
  await rejectsWith(
    call('items.delete', { datasetId: ds, itemIds: [ids[0], 99999] }),
    'not_found',
    'itemIds.1',
    /item 99999 is not in dataset/,
  );
  r = await call('items.tag', { datasetId: ds, itemIds: ids.slice(0, 2), tags: ['red'] });
  assert.equal(r.changed, 2);
  assert.deepEqual((await call('datasets.tags', { datasetId: ds })).tags, [{ name: 'red', count: 2 }]);
  assert.equal((await call('items.list', { datasetId: ds, tag: 'red' })).total, 2);
  r = await call('datasets.undo', { datasetId: ds });
  assert.equal(r.label, 'tag red');
  assert.equal((await call('datasets.tags', { datasetId: ds })).tags.length, 0);
  r = await call('datasets.redo', { datasetId: ds });
  assert.equal(r.label, 'tag red');
  assert.ok(events.some(([e, p]) => e === 'items.changed' && (p as any).reason === 'redo'));
  const added = await call('items.add', {
    datasetId: ds,
    items: [{ imagePath: join(src, 'v', '1.png'), annotations: [{ kind: 'caption', data: { text: 'again' } }] }, {}],
  });
  assert.equal(added.ids.length, 2);
  assert.equal((await call('items.list', { datasetId: ds, unlabeled: true })).total, 1);
  const sp = await call('datasets.split', { datasetId: ds, seed: 1, train: 3, val: 1, test: 1 });
  assert.deepEqual(sp.counts, { train: 3, val: 1, test: 1 });
  assert.equal((await call('items.list', { datasetId: ds, split: 'train' })).total, 3);

  // A tiny LLaVA model for lengths and the tokenized preview.
  const modelDir = join(tmp.dir, 'tiny-llava');
  const cfg = writeTinyLlava(modelDir, 1);
  const now = new Date().toISOString();
  const modelId = Number(
    be.db
      .prepare('INSERT INTO models (name, path, created_at, updated_at) VALUES (?, ?, ?, ?)')
      .run('tiny', modelDir, now, now).lastInsertRowid,
  );
  const lint = await call('datasets.lint', { datasetId: ds, modelId, contextLength: cfg.numImageTokens + 10 });
  assert.equal(lint.items, 5);
  assert.ok(lint.counts.too_long >= 1, JSON.stringify(lint.counts));
  assert.equal(lint.counts.duplicate_image, 2, 'the added item repeats image 1');
  assert.equal(lint.counts.unlabeled, 1);
  const dup = await call('datasets.lintResults', { datasetId: ds, rule: 'duplicate_image' });
  assert.equal(dup.findings.length, 2);
  assert.equal((await call('items.list', { datasetId: ds, lintRule: 'duplicate_image' })).total, 2);
  await rejectsWith(
    call('datasets.lint', { datasetId: ds, contextLength: 5 }),
    'invalid_request',
    'contextLength',
    /needs a modelId/,
  );
  // the model's tokenizer loads in the backend worker: a bad folder is the same typed error, and the stored lint stays
  await rejectsWith(
    call('datasets.lint', { datasetId: ds, modelId: 999 }),
    'not_found',
    'modelId',
    /model 999 does not exist/,
  );
  const badModel = Number(
    be.db
      .prepare('INSERT INTO models (name, path, created_at, updated_at) VALUES (?, ?, ?, ?)')
      .run('bad', join(tmp.dir, 'no-model'), now, now).lastInsertRowid,
  );
  await rejectsWith(
    call('datasets.lint', { datasetId: ds, modelId: badModel }),
    'unavailable',
    'modelId',
    new RegExp(`model ${badModel} cannot be used for tokenization: .*config\\.json`),
  );
  assert.equal(
    (await call('datasets.lintResults', { datasetId: ds, rule: 'too_long' })).findings.length,
    lint.counts.too_long,
  );
  await rejectsWith(
    call('items.preview', { itemId: ids[0], modelId: 999 }),
    'not_found',
    'modelId',
    /model 999 does not exist/,
  );

  const pv = await call('items.preview', { itemId: ids[0], modelId });
  assert.equal(pv.contextLength, cfg.text.maxPositionEmbeddings);
  const conv = pv.conversations[0];
  assert.equal(conv.kind, 'qa');
  assert.equal(
    conv.tokens
      .filter((t: any) => t.inLoss)
      .map((t: any) => t.text)
      .join(''),
    ' A red square.</s>',
  );
  assert.deepEqual(
    conv.tokens.filter((t: any) => t.repeat),
    [{ id: cfg.imageTokenIndex, text: '<image>', inLoss: false, repeat: cfg.numImageTokens }],
  );
  assert.equal(conv.totalTokens, conv.tokens.length - 1 + cfg.numImageTokens);

  const out = join(tmp.dir, 'export');
  const ex = await call('datasets.export', { datasetId: ds, dir: out, format: 'messages', split: 'train' });
  assert.equal(ex.items + ex.skipped.length, 3, 'the train split');
  assert.ok(ex.skipped.every((s: any) => s.reason === 'no labels to export'));
  assert.ok(existsSync(join(out, 'data.jsonl')));
  await rejectsWith(
    call('datasets.export', { datasetId: ds, dir: out, format: 'messages' }),
    'conflict',
    'dir',
    /not empty/,
  );
  // overwrite replaces an earlier export (to another format too) ...
  const again = await call('datasets.export', { datasetId: ds, dir: out, format: 'llava', overwrite: true });
  assert.ok(existsSync(join(out, 'data.json')) && !existsSync(join(out, 'data.jsonl')), 'the old export was replaced');
  assert.equal(again.dir, out);
  // ... but never a folder holding anything else: refused by name, nothing deleted
  writeFileSync(join(out, 'notes.txt'), 'mine');
  await rejectsWith(
    call('datasets.export', { datasetId: ds, dir: out, format: 'messages', overwrite: true }),
    'conflict',
    'dir',
    /not a Lenslab export \(it holds 'notes.txt'\)/,
  );
  assert.equal(readFileSync(join(out, 'notes.txt'), 'utf8'), 'mine');
  assert.ok(existsSync(join(out, 'data.json')), 'the export beside it is untouched');
  const home = join(tmp.dir, 'home');
  mkdirSync(join(home, 'images'), { recursive: true });
  writeFileSync(join(home, 'images', 'holiday.jpg'), 'x');
  await rejectsWith(
    call('datasets.export', { datasetId: ds, dir: home, format: 'messages', overwrite: true }),
    'conflict',
    'dir',
    /it holds 'images\/holiday.jpg'/,
  );
  assert.ok(existsSync(join(home, 'images', 'holiday.jpg')));
  const gc = await call('datasets.cleanImages', { minAgeMinutes: 0 });
  assert.equal(gc.removed, 0, 'every stored image is in use');
  assert.ok(gc.kept >= 6);
});

test('lenslab import / export on the command line', async () => {
  const dataDir = join(tmp.dir, 'cli-data');
  const src = join(tmp.dir, 'cli-src');
  await F.llavaJson(src);
  F.write(src, 'bad.json', '[{"conversations": 5}]');
  const io = { out: [] as string[], err: [] as string[] };
  const cli = async (...argv: string[]) => {
    io.out = [];
    io.err = [];
    const code = await runCli(argv, { out: (t) => io.out.push(t), err: (t) => io.err.push(t) }, {});
    return code;
  };
  assert.equal(
    await cli('import', join(src, 'data.json'), '--dataset', 'Chats', '--data-dir', dataDir),
    0,
    io.err.join('\n'),
  );
  assert.match(io.out.join('\n'), /Imported 4 item\(s\) with 4 label\(s\) into dataset 1 "Chats" \(format llava\)/);
  assert.equal(await cli('import', join(src, 'bad.json'), '--data-dir', dataDir), 1);
  assert.match(
    io.err.join('\n'),
    /error \(invalid_request\): bad\.json: nothing to import: .*bad\.json\[0\]\.conversations: expected array, received number/,
  );
  assert.equal(await cli('import', src, '--format', 'nope', '--data-dir', dataDir), 2);
  assert.match(io.err.join('\n'), /--format must be one of/);
  assert.equal(await cli('import', join(src, 'data.json'), '--dataset-id', '1', '--json', '--data-dir', dataDir), 0);
  // the same file again into the same dataset: nothing is added, the report says why
  const again = JSON.parse(io.out.join('\n'));
  assert.equal(again.imported, 0);
  assert.equal(again.alreadyPresentCount, 4);
  assert.equal(await cli('import', join(src, 'data.json'), '--dataset-id', '1', '--data-dir', dataDir), 0);
  assert.match(io.out.join('\n'), /Imported 0 item\(s\)[^]*Not imported again: 4 item\(s\) already in this dataset/);
  const out = join(tmp.dir, 'cli-out');
  assert.equal(
    await cli('export', '1', out, '--format', 'llava', '--plain', '--data-dir', dataDir),
    0,
    io.err.join('\n'),
  );
  assert.match(io.out.join('\n'), /Exported 4 item\(s\) as 4 llava record\(s\) and 3 image\(s\)/);
  const data = JSON.parse(readFileSync(join(out, 'data.json'), 'utf8'));
  assert.equal(data.length, 4);
  assert.equal(data[0].lenslab, undefined);
  assert.equal(await cli('export', '1', out, '--data-dir', dataDir), 2);
  assert.match(io.err.join('\n'), /--format is required/);
});
