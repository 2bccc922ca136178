// Sequence packing: samples of a micro-batch laid end to end in fewer rows (batching.ts pack; llava.ts packedMask
// keeps attention within a sample and restarts positions) give the loss and LoRA gradients of the padded batch, in
// float64 on the tiny LLaVA, and the packed graph's gradients pass a central-difference check.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { buildTrainableVlm, loadVlm, type LoadedVlm } from '../../src-main/models/program';
import { StepExecutor, tensor, type ort } from '../../src-main/engine';
import { demoRng } from '../../src-main/models/demo/rng';
import { collate, pack, type Batch, type RenderedSample } from '../../src-main/training/batching';
import {
  assertDirectionalGradient,
  demoRows,
  encodeRow,
  gradientDifference,
  LORA_ALL_TARGETS,
  type QaRow,
} from '../models/program-fixture';
import { writeIconSnapshot } from '../helpers/icon-snapshot';

const { dir, cleanup } = tempDir('packing-');
let m: LoadedVlm;
let rows: QaRow[];
let samples: RenderedSample[];
before(async () => {
  writeTinyLlava(join(dir, 'base'), 2, {
    initStd: 0.2,
    projectorHiddenAct: 'gelu_pytorch_tanh',
    imageSize: 32,
    patchSize: 8,
  });
  m = loadVlm(join(dir, 'base'));
  rows = [...(await demoRows(m, 11, 3, 'colors')), ...(await demoRows(m, 12, 2, 'counting'))];
  samples = rows.map((r, i) => {
    const e = encodeRow(m, r);
    return { ids: e.ids, lossMask: e.labels.map((l) => (l === -100 ? 0 : 1)), imageCount: 1, key: i };
  });
  // one sample without its prompt's image: rows of mixed lengths, one with no image at all
  const textOnly = encodeRow(m, { question: 'what is shown?', answer: 'a red square' });
  const noImage = textOnly.ids.flatMap((id, t) => (id === m.imageTokenId ? [] : [[id, textOnly.labels[t]]]));
  samples.push({
    ids: noImage.map((x) => x[0]),
    lossMask: noImage.map((x) => (x[1] === -100 ? 0 : 1)),
    imageCount: 0,
    key: 'text',
  });
});
after(() => {
  m?.close();
  cleanup();
});

const LORA = LORA_ALL_TARGETS;

/** Float64 feeds of a batch: the images of its samples in sampleIndices order. */
function feedsOf(b: Batch): Record<string, ort.Tensor> {
  const S = m.config.vision.imageSize;
  const withImage = b.sampleIndices.filter((i) => samples[i].imageCount > 0);
  const px = new Float64Array(Math.max(1, withImage.length) * 3 * S * S);
  withImage.forEach((i, k) => px.set(rows[i].pixels, k * 3 * S * S));
  const dims = [b.batchSize, b.seqLen];
  const i64 = (a: Int32Array) => BigInt64Array.from(a, (x) => BigInt(x));
  return {
    input_ids: tensor('int64', dims, i64(b.inputIds)),
    attention_mask: tensor('int64', dims, i64(b.attentionMask)),
    labels: tensor('int64', dims, i64(b.labels)),
    pixel_values: tensor('float64', [Math.max(1, withImage.length), 3, S, S], px),
  };
}

test('a packed batch has the loss and LoRA gradients of the padded batch (float64), and they pass a central difference', async () => {
  const idx = samples.map((_, i) => i);
  const padded = collate(samples, idx, { padId: m.tokenizer.padTokenId ?? 0 });
  const longest = Math.max(...samples.map((s) => s.ids.length));
  const packed = pack(samples, idx, { padId: m.tokenizer.padTokenId ?? 0, capacity: 3 * longest });
  assert.ok(packed.batchSize < padded.batchSize, `${packed.batchSize} packed rows for ${padded.batchSize} samples`);
  assert.ok(packed.batchSize * packed.seqLen < padded.batchSize * padded.seqLen);
  assert.ok(Math.max(...packed.attentionMask) >= 3, 'some row holds three samples');

  const session = { optimization: 'basic' as const, threads: 1 };
  const rng = demoRng(4);
  const plain = buildTrainableVlm(m, 'lora', LORA, { dtype: 'float64' });
  const init: Record<string, Float64Array> = {};
  for (const [k, v] of Object.entries(plain.initialValues(0)))
    init[k] = Float64Array.from(v, (x) => x + 0.1 * rng.normal());
  const run = async (tv: typeof plain, feeds: Record<string, ort.Tensor>) => {
    const ex = await StepExecutor.create({ params: tv.params, forward: tv.forward, outputGrads: true, session }, init);
    try {
      return await ex.step(feeds, 0);
    } finally {
      await ex.dispose();
    }
  };
  const want = await run(plain, feedsOf(padded));
  const tvPacked = buildTrainableVlm(m, 'lora', LORA, { dtype: 'float64', packed: true });
  const got = await run(tvPacked, feedsOf(packed));
  assert.ok(Math.abs(got.loss - want.loss) < 1e-12 * Math.abs(want.loss), `loss ${got.loss} vs ${want.loss}`);
  const { maxErr, maxAbs } = gradientDifference(plain.params, got.grads!, want.grads!);
  assert.ok(maxAbs > 1e-3, 'the gradients are not trivial');
  assert.ok(maxErr < 1e-11 * maxAbs, `gradients differ by ${maxErr} (largest ${maxAbs})`);
  // the padded batch through the packed graph (one sample a row) is the same step too
  const same = await run(tvPacked, feedsOf(padded));
  assert.ok(Math.abs(same.loss - want.loss) < 1e-12 * Math.abs(want.loss));

  const dirs: Record<string, Float64Array> = {};
  for (const p of tvPacked.params) dirs[p.name] = Float64Array.from(init[p.name], () => rng.normal());
  await assertDirectionalGradient({
    tv: tvPacked,
    init,
    grads: got.grads!,
    dirs,
    feeds: feedsOf(packed),
    session,
    label: 'packed LoRA',
  });
});

test('the trainer with packing: true takes the same steps as padded batches (images follow their samples)', async () => {
  const { mkdtempSync } = await import('node:fs');
  const { writeDemoDataset } = await import('../../src-main/models/demo/dataset');
  const { vlmTrainerModule } = await import('../../src-main/training/vlm-trainer');
  const { writeTinyModel } = await import('./vlm-fixture');
  const root = mkdtempSync(join(dir, 'trainer-'));
  const model = writeTinyModel(join(root, 'model'));
  const icons = join(root, 'icons');
  await writeDemoDataset(icons, { seed: 7, count: 8, size: 32, families: ['colors'] });
  // every other answer is long, so a batch mixes lengths and short samples share a row
  const data = writeIconSnapshot(icons, join(root, 'data.json'), {
    answer: (a, i) => (i % 2 ? `${a}, ${'and the background is plain white, '.repeat(3)}the end` : a),
  });
  const run = async (packing: boolean) => {
    const hparams = {
      method: 'lora',
      rank: 4,
      alpha: 8,
      dropout: 0,
      maxSteps: 3,
      batchSize: 4,
      saveEvery: 0,
      evalEvery: 0,
      lr: 5e-3,
      seed: 3,
      packing,
    };
    const tr = vlmTrainerModule.createTrainer(
      { model, data: { file: data }, hparams, eval: { maxItems: 1 }, featureCache: false },
      { outDir: mkdtempSync(join(root, 'run-')), log: () => {} },
    );
    await tr.init(null);
    const out: { loss: number; samples: number; tokens: number }[] = [];
    try {
      while (tr.step < tr.plan.totalSteps) {
        const r = await tr.trainStep();
        out.push({ loss: r.loss, samples: r.samples, tokens: r.tokens ?? 0 });
      }
    } finally {
      await tr.dispose?.();
    }
    return out;
  };
  const padded = await run(false);
  const packed = await run(true);
  assert.equal(packed.length, 3);
  for (let i = 0; i < padded.length; i++) {
    assert.equal(packed[i].samples, padded[i].samples);
    assert.equal(packed[i].tokens, padded[i].tokens);
    assert.ok(
      Math.abs(packed[i].loss - padded[i].loss) < 1e-4 * padded[i].loss,
      `step ${i + 1}: loss ${packed[i].loss} packed vs ${padded[i].loss}`,
    );
  }
});
