// The contrastive trainer as the job driver runs it: base-model recall at step 0, per-checkpoint recall and held-out
// loss, and a run paused at a checkpoint and resumed takes exactly the steps of an uninterrupted one (same losses,
// same adapter).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyContrastive } from '../../src-main/models/demo/tiny-contrastive';
import { writeContrastiveDataset } from '../../src-main/models/demo/contrastive-dataset';
import { readPairs } from '../../src-main/transport/cli/contrastive';
import { writeSnapshot, type DataItem } from '../../src-main/training/data';
import { loadCheckpoint, saveCheckpoint } from '../../src-main/training/checkpoints';
import { ContrastiveTrainer, contrastiveTrainerModule } from '../../src-main/training/contrastive-trainer';
import { loadTrainerModule } from '../../src-main/jobs/trainers';
import { loadContrastiveAdapter } from '../../src-main/models/families/contrastive/adapter';
import { loadContrastive } from '../../src-main/models/families/contrastive/model';
import type { Annotation } from '../../src-main/datasets/types';

const { dir, cleanup } = tempDir('contrastive-job-');
after(cleanup);

test('contrastive runs evaluate recall per checkpoint beside the base, and resume exactly', async () => {
  const model = join(dir, 'clip');
  writeTinyContrastive(model, 'clip', 1, {
    imageSize: 32,
    patchSize: 8,
    hidden: 64,
    layers: 2,
    heads: 4,
    std: 0.1,
    textPositions: 32,
  });
  const data = join(dir, 'shapes');
  await writeContrastiveDataset(data, { train: 2, val: 1 });
  const items: DataItem[] = [];
  for (const split of ['train', 'val'] as const)
    for (const p of await readPairs(data, { split }))
      items.push({
        key: String(items.length),
        itemId: null,
        image: p.image as string,
        annotations: [{ kind: 'caption', data: { text: p.text! } } as unknown as Annotation],
        split,
      });
  const file = join(dir, 'data.json');
  writeSnapshot(file, {
    format: 'lenslab-data',
    version: 1,
    source: { datasetId: null, name: 'shapes' },
    autoSplit: false,
    items,
  });
  const config = {
    model,
    data: { file },
    options: { method: 'lora', epochs: 2, batchSize: 8, lr: 3e-3, rank: 4 },
    evalEvery: 5,
    saveEvery: 5,
  };
  assert.equal(await loadTrainerModule('contrastive'), contrastiveTrainerModule);
  contrastiveTrainerModule.validateConfig(config);
  assert.throws(
    () => contrastiveTrainerModule.validateConfig({ ...config, options: { ...config.options, batchSize: 1 } }),
    /at least 2 pairs per batch/,
  );
  const logs: string[] = [];
  const ctx = (out: string) => ({ outDir: out, log: (m: string) => logs.push(m) });

  // uninterrupted
  const a = new ContrastiveTrainer(config as never, ctx(join(dir, 'a')));
  await a.init(null);
  assert.equal(a.plan.totalSteps, 10, '40 pairs in batches of 8, 2 epochs');
  assert.equal(a.plan.evalAtStart, true);
  const base = await a.evaluate();
  for (const k of ['i2t_R1', 'i2t_R5', 'i2t_R10', 't2i_R1', 't2i_R5', 't2i_R10', 'loss'])
    assert.ok(Number.isFinite(base.metrics[k]), `${k} at step 0`);
  const lossesA: number[] = [];
  while (a.step < a.plan.totalSteps) lossesA.push((await a.trainStep()).loss);
  const after10 = await a.evaluate();
  assert.notDeepEqual(after10.metrics, base.metrics, 'the adapter changes the held-out numbers');
  for (const [k, v] of Object.entries(after10.metrics)) if (k !== 'loss') assert.ok(v >= 0 && v <= 1, `${k} = ${v}`);
  await a.exportFinal(join(dir, 'a-final'));
  await a.dispose();

  // paused at step 5 (a checkpoint), resumed in a new trainer
  const b = new ContrastiveTrainer(config as never, ctx(join(dir, 'b')));
  await b.init(null);
  const lossesB: number[] = [];
  while (b.step < 5) lossesB.push((await b.trainStep()).loss);
  const ref = saveCheckpoint(join(dir, 'b', 'checkpoints'), 5, await b.saveState());
  await b.dispose();
  const c = new ContrastiveTrainer(config as never, ctx(join(dir, 'b')));
  await c.init(loadCheckpoint(ref.dir));
  assert.equal(c.step, 5);
  while (c.step < c.plan.totalSteps) lossesB.push((await c.trainStep()).loss);
  await c.exportFinal(join(dir, 'b-final'));
  const evC = await c.evaluate();
  await c.dispose();
  assert.equal(lossesB.length, lossesA.length);
  lossesA.forEach((l, i) => assert.ok(Math.abs(l - lossesB[i]) < 1e-6, `step ${i + 1}: ${l} vs ${lossesB[i]}`));
  for (const [k, v] of Object.entries(after10.metrics)) assert.ok(Math.abs(v - evC.metrics[k]) < 1e-5, `${k}`);
  const m = loadContrastive(model);
  try {
    const fa = loadContrastiveAdapter(join(dir, 'a-final'), m.config);
    const fb = loadContrastiveAdapter(join(dir, 'b-final'), m.config);
    for (const [mod, { a: A, b: B }] of fa.lora) {
      const o = fb.lora.get(mod)!;
      for (let i = 0; i < A.length; i++) assert.ok(Math.abs(A[i] - o.a[i]) < 1e-6);
      for (let i = 0; i < B.length; i++) assert.ok(Math.abs(B[i] - o.b[i]) < 1e-6);
    }
  } finally {
    m.close();
  }
  // a checkpoint of other options is refused
  const d = new ContrastiveTrainer(
    { ...config, options: { ...config.options, lr: 1e-2 } } as never,
    ctx(join(dir, 'd')),
  );
  await assert.rejects(d.init(loadCheckpoint(ref.dir)), /other options/);
  await d.dispose();
  assert.ok(logs.some((l) => /contrastive lora on 40 image-text pairs \(20 held out\)/.test(l)));
});
