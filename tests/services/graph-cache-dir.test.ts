// One compiled-graph cache per data directory: a training job's evaluation compiles the generation graphs into
// <dataDir>/cache/graphs, and an evaluation of the run's adapter from the backend afterwards finds them there
// (no new entries), as chat does. LENSLAB_GRAPH_CACHE moves it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/wait';
import { createBackend } from '../../src-main/services/backend';
import { graphCacheDirOf } from '../../src-main/storage/data-dir';
import { importIcons, writeTinyModel } from '../training/vlm-fixture';

delete process.env.LENSLAB_GRAPH_CACHE; // this test is about the default
const tmp = tempDir('graph-cache-dir-');
const dataDir = join(tmp.dir, 'app');
const backend = createBackend({ dataDir, host: 'test', log: { error() {}, warn() {} } });
after(async () => {
  await backend.shutdown();
  backend.close();
  tmp.cleanup();
});

test('graphCacheDirOf: the data directory, unless LENSLAB_GRAPH_CACHE says otherwise', () => {
  assert.equal(graphCacheDirOf('/data', {}), join('/data', 'cache', 'graphs'));
  assert.equal(graphCacheDirOf('/data', { LENSLAB_GRAPH_CACHE: ' ' }), join('/data', 'cache', 'graphs'));
  assert.equal(graphCacheDirOf('/data', { LENSLAB_GRAPH_CACHE: '/elsewhere/graphs' }), '/elsewhere/graphs');
});

const entries = (dir: string) =>
  existsSync(dir)
    ? readdirSync(dir)
        .filter((n) => !n.startsWith('.'))
        .sort()
    : [];

test("a run's evaluation graphs land in the data directory's cache and serve a later evaluation of its adapter", async () => {
  const modelDir = writeTinyModel(join(tmp.dir, 'model'));
  const datasetId = await importIcons(backend.db, dataDir, join(tmp.dir, 'icons'), 12);
  await backend.dispatcher.call('datasets.split', { datasetId, seed: 0, train: 0.75, val: 0.25, test: 0 });
  const events: { event: string; payload: any }[] = [];
  const off = backend.events.subscribe((event, payload) => events.push({ event, payload }));
  const waitFor = (pred: () => boolean, what: string) => until(pred, what, 120_000, 25);

  const { run } = (await backend.dispatcher.call('runs.start', {
    model: { path: modelDir },
    data: { datasetId, trainSplit: 'train', evalSplit: 'val' },
    hparams: { maxSteps: 2, batchSize: 2, rank: 4, evalEvery: 2, saveEvery: 0 },
    evalMaxItems: 2,
  })) as any;
  await waitFor(
    () =>
      events.some(
        (e) =>
          e.event === 'runs.status' && e.payload.runId === run.id && ['completed', 'failed'].includes(e.payload.status),
      ),
    'the run',
  );
  const final = events.find(
    (e) => e.event === 'runs.status' && e.payload.runId === run.id && e.payload.status !== 'running',
  );
  assert.equal(final?.payload.status, 'completed', final?.payload.error ?? '');
  const listed = ((await backend.dispatcher.call('runs.list', {})) as any).runs.find((r: any) => r.id === run.id);
  assert.equal(listed.modelId, null);
  assert.equal(listed.modelName, 'model', 'a run on a model folder outside the Models list is named by the folder');
  assert.ok(
    events.some((e) => e.event === 'runs.eval' && e.payload.runId === run.id),
    'the run evaluated (generation graphs compiled)',
  );

  const cache = graphCacheDirOf(dataDir, {});
  const afterRun = entries(cache);
  assert.ok(afterRun.length >= 3, `the job compiled into ${cache}: ${afterRun.join(', ')}`);

  const ev = (await backend.dispatcher.call('evaluations.start', {
    model: { path: modelDir },
    adapter: { runId: run.id },
    data: { datasetId, split: 'val' },
    maxNewTokens: 3,
  })) as any;
  await waitFor(() => events.some((e) => e.event === 'evaluations.status' && e.payload.id === ev.id), 'the evaluation');
  off();
  assert.equal(
    events.find((e) => e.event === 'evaluations.status' && e.payload.id === ev.id)?.payload.status,
    'completed',
  );
  assert.deepEqual(entries(cache), afterRun, "the adapter's evaluation reused the run's generation graphs");
});
