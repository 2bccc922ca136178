// runs.start on a CLIP model: a contrastive job in its own process (the Runs view lists it like any run), with
// held-out recall@k at step 0 (the base model) and at each evaluation, checkpoints with the adapter, and a final
// adapter the search can use. Bad hyperparameters are refused naming the field.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/wait';
import { createBackend } from '../../src-main/services/backend';
import { writeTinyContrastive } from '../../src-main/models/demo/tiny-contrastive';
import { writeContrastiveDataset } from '../../src-main/models/demo/contrastive-dataset';

const tmp = tempDir('contrastive-runs-');
const dataDir = join(tmp.dir, 'app');
const backend = createBackend({ dataDir, host: 'test', log: { error() {}, warn() {} } });
after(async () => {
  await backend.shutdown();
  backend.close();
  tmp.cleanup();
});

test('a contrastive run of a CLIP model: recall beside the base per evaluation, checkpoints, a final adapter', async () => {
  const call = (m: string, p: unknown) => backend.dispatcher.call(m as never, p as never) as Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const model = join(tmp.dir, 'clip');
  writeTinyContrastive(model, 'clip', 1, {
    imageSize: 32,
    patchSize: 8,
    hidden: 64,
    layers: 2,
    heads: 4,
    std: 0.1,
    textPositions: 32,
  });
  const data = join(tmp.dir, 'shapes');
  await writeContrastiveDataset(data, { train: 2, val: 1 });
  const train = (await call('datasets.import', { path: join(data, 'train'), dataset: 'shapes' })).datasetId as number;
  const ids = async () =>
    ((await call('items.list', { datasetId: train, limit: 100 })).items as Array<{ id: number }>).map((it) => it.id);
  const trainIds = await ids();
  await call('datasets.import', { path: join(data, 'val'), datasetId: train });
  const valIds = (await ids()).filter((id) => !trainIds.includes(id));
  assert.deepEqual([trainIds.length, valIds.length], [40, 20]);
  await call('items.setSplit', { datasetId: train, itemIds: trainIds, split: 'train' });
  await call('items.setSplit', { datasetId: train, itemIds: valIds, split: 'val' });
  const modelId = (await call('models.import', { path: model })).model.id as number;

  await assert.rejects(
    call('runs.start', { model: { id: modelId }, data: { datasetId: train }, hparams: { batchSize: 1 } }),
    (e: { field?: string }) => e.field === 'hparams.batchSize',
  );
  await assert.rejects(
    call('runs.start', { model: { id: modelId }, data: { datasetId: train }, hparams: { method: 'lora+projector' } }),
    (e: { field?: string }) => e.field === 'hparams.method',
  );
  // settings the image-text trainer would not honour are refused by name
  for (const hparams of [{ quantizeBase: 'int4' as const }, { packing: true }, { gradientCheckpointing: true }])
    await assert.rejects(
      call('runs.start', { model: { id: modelId }, data: { datasetId: train }, hparams }),
      (e: { field?: string; message: string }) =>
        e.field === `hparams.${Object.keys(hparams)[0]}` && /CLIP \/ SigLIP/.test(e.message),
    );

  const events: { event: string; payload: any }[] = []; // eslint-disable-line @typescript-eslint/no-explicit-any
  const off = backend.events.subscribe((event, payload) => events.push({ event, payload }));
  const { run, memory } = await call('runs.start', {
    model: { id: modelId },
    data: { datasetId: train, trainSplit: 'train', evalSplit: 'val' },
    hparams: { epochs: 2, batchSize: 8, lr: 3e-3, rank: 4, evalEvery: 5, saveEvery: 5 },
  });
  assert.equal(memory, null);
  assert.equal(run.totalSteps, 10);
  assert.match(run.name, /contrastive lora on shapes/);
  await until(
    () =>
      events.some(
        (e) =>
          e.event === 'runs.status' && e.payload.runId === run.id && ['completed', 'failed'].includes(e.payload.status),
      ),
    'the run',
    180_000,
    25,
  );
  off();
  const final = events.find(
    (e) =>
      e.event === 'runs.status' &&
      e.payload.runId === run.id &&
      e.payload.status !== 'running' &&
      e.payload.status !== 'queued',
  );
  assert.equal(final?.payload.status, 'completed', final?.payload.error ?? '');

  // recall at step 0 (the base) and after training, as metric series
  const { series } = (await call('runs.metrics', { id: run.id })) as {
    series: Record<string, { steps: number[]; values: Array<number | null> }>;
  };
  const names = Object.keys(series);
  const s = (name: string) => series[names.find((n) => n.endsWith(name)) ?? ''];
  const t2i = s('t2i_R1');
  assert.ok(t2i, `metric names: ${names.join(', ')}`);
  assert.ok(t2i.steps.includes(0) && t2i.steps.includes(10), `t2i_R1 at steps ${t2i.steps}`);
  for (const v of t2i.values) assert.ok(v !== null && v >= 0 && v <= 1);
  for (const name of ['i2t_R1', 'i2t_R5', 'i2t_R10', 't2i_R5', 't2i_R10']) assert.ok(s(name), name);

  const cks = await call('runs.checkpoints', { id: run.id });
  assert.ok(cks.checkpoints.some((c: { step: number }) => c.step === 5));
  assert.ok(existsSync(join(cks.finalDir, 'adapter_config.json')));
  // the run's adapter searches the dataset
  const found = await call('datasets.search', {
    datasetId: train,
    modelId,
    text: 'a red circle',
    adapter: { runId: run.id },
    limit: 5,
  });
  assert.equal(found.items.length, 5);
});
