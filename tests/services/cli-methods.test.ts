// The methods the CLI's eval and train stand on besides inference.*: datasets.find (a --data argument by name or by
// the path it was imported from) and evaluations.start with wait (answers when the evaluation has ended; the
// request's signal cancels it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { createBackend, type Backend } from '../../src-main/services/backend';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { makeSample } from '../../src-main/models/demo/shapes';
import { tempDir } from '../helpers/tmp';
import { failOn as fail, okOn as ok } from '../helpers/dispatch';

const tmp = tempDir('cli-methods-');
const quiet = { error() {}, warn() {} };
const llava = join(tmp.dir, 'llava');
const data = join(tmp.dir, 'qa.json');
let backend: Backend;
let datasetId = 0;

before(async () => {
  writeTinyLlava(llava, 0, { initStd: 0.2 });
  const s = makeSample(5, 3, { size: 64 });
  await sharp(Buffer.from(s.rgb), { raw: { width: 64, height: 64, channels: 3 } })
    .png()
    .toFile(join(tmp.dir, 'img.png'));
  const qa = (id: string, q: string, a: string) => ({
    id,
    image: 'img.png',
    conversations: [
      { from: 'human', value: `<image>\n${q}` },
      { from: 'gpt', value: a },
    ],
  });
  writeFileSync(
    data,
    JSON.stringify([
      qa('a', 'How many squares?', 'Two.'),
      qa('b', 'What is red?', 'A square.'),
      qa('c', 'What is green?', 'A triangle.'),
      qa('d', 'Any circles?', 'No.'),
    ]),
  );
  backend = createBackend({ dataDir: join(tmp.dir, 'data'), dbFile: ':memory:', host: 'test', log: quiet });
  datasetId = (await ok(backend, 'datasets.import', { path: data, dataset: 'shapes qa' })).datasetId;
});

after(async () => {
  await backend.shutdown();
  backend.close();
  tmp.cleanup();
});

test('datasets.find: by name, by the path it was imported from, null when none', async () => {
  assert.equal((await ok(backend, 'datasets.find', { name: 'shapes qa' })).dataset.id, datasetId);
  assert.equal((await ok(backend, 'datasets.find', { importedFrom: data })).dataset.id, datasetId);
  assert.equal((await ok(backend, 'datasets.find', { name: 'nothing like it' })).dataset, null);
  assert.equal((await ok(backend, 'datasets.find', { importedFrom: join(tmp.dir, 'elsewhere.json') })).dataset, null);
  assert.equal((await fail(backend, 'datasets.find', {})).field, 'name');
  assert.equal((await fail(backend, 'datasets.find', { name: 'a', importedFrom: data })).field, 'name');
  assert.equal((await fail(backend, 'datasets.find', { name: 7 })).field, 'name');
});

test('evaluations.start with wait: answers with the ended evaluation', async () => {
  const ev = await ok(backend, 'evaluations.start', {
    model: { path: llava },
    data: { datasetId, split: 'train' },
    maxItems: 2,
    maxNewTokens: 2,
    wait: true,
  });
  assert.equal(ev.status, 'completed', ev.error ?? '');
  assert.equal(ev.predictionCount, 2);
  assert.equal(typeof ev.metrics.exact_match, 'number');
  assert.equal(
    (
      await fail(backend, 'evaluations.start', {
        model: { path: llava },
        data: { datasetId, split: 'train' },
        wait: 'yes',
      })
    ).field,
    'wait',
  );
});

test('evaluations.start with wait: the request going away cancels the evaluation', async () => {
  const ac = new AbortController();
  const off = backend.events.subscribe((event) => {
    if (event === 'evaluations.progress') ac.abort();
  });
  setTimeout(() => ac.abort(), 50);
  const env = await backend.dispatcher.dispatch(
    'evaluations.start',
    { model: { path: llava }, data: { datasetId, split: 'train' }, maxNewTokens: 4, wait: true },
    { signal: ac.signal },
  );
  off();
  assert.ok(env.ok, JSON.stringify(env));
  const ev = (env as { result: any }).result;
  assert.equal(ev.status, 'cancelled');
  assert.equal((await ok(backend, 'evaluations.get', { id: ev.id })).status, 'cancelled');
});

test('runs.find by folder; runs.started and runs.ended follow a run to its end', async () => {
  const outDir = join(tmp.dir, 'run');
  assert.equal((await ok(backend, 'runs.find', { outDir })).run, null);
  assert.equal((await fail(backend, 'runs.find', { outDir: '' })).field, 'outDir');
  assert.equal((await fail(backend, 'runs.find', {})).field, 'outDir');
  const seen: { event: string; payload: any }[] = [];
  const off = backend.events.subscribe((event, payload) => seen.push({ event, payload }));
  const { run } = await ok(backend, 'runs.start', {
    model: { path: llava },
    data: { datasetId, trainSplit: 'train', evalSplit: 'train' },
    hparams: { maxSteps: 2, batchSize: 2, rank: 2, saveEvery: 0 },
    evalMaxItems: 1,
    outDir,
  });
  const ended = () =>
    seen.some(
      (e) =>
        e.event === 'runs.status' && e.payload.runId === run.id && ['completed', 'failed'].includes(e.payload.status),
    );
  for (let i = 0; i < 1200 && !ended(); i++) await new Promise((r) => setTimeout(r, 100));
  off();
  const mine = seen.filter((e) => e.payload.runId === run.id);
  assert.equal(
    mine.find((e) => e.event === 'runs.status' && e.payload.status !== 'running')?.payload.status,
    'completed',
    JSON.stringify(mine.filter((e) => e.event === 'runs.log')),
  );
  assert.deepEqual(mine.find((e) => e.event === 'runs.started')?.payload, {
    runId: run.id,
    totalSteps: 2,
    resumedFrom: null,
  });
  const end = mine.find((e) => e.event === 'runs.ended')?.payload;
  assert.equal(end.kind, 'done');
  assert.equal(end.step, 2);
  assert.equal(end.outputDir, join(outDir, 'final'));
  assert.equal(typeof end.metrics.loss, 'number');
  assert.ok(
    mine.findIndex((e) => e.event === 'runs.ended') <
      mine.findIndex((e) => e.event === 'runs.status' && e.payload.status === 'completed'),
  );
  const found = (await ok(backend, 'runs.find', { outDir })).run;
  assert.equal(found.id, run.id);
  assert.equal(found.status, 'completed');
});
