// Gradient checkpointing (engine/autodiff.ts recompute, hparams gradientCheckpointing): each layer's forward is
// emitted again for the backward, so the loss and gradients are the same as without it (float64, tiny LLaVA, LoRA on
// every decoder and vision projection so both stacks are checkpointed), and the backward reads nothing computed
// inside a layer's forward: only what enters a layer stays alive until the backward.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import {
  buildTrainableVlm,
  layerSegment,
  loadVlm,
  type LoadedVlm,
  type LoraOptions,
} from '../../src-main/models/program';
import { buildTrainStep, StepExecutor, tensor, type ort } from '../../src-main/engine';
import { demoRng } from '../../src-main/models/demo/rng';
import { demoRows, gradientDifference, LORA_ALL_TARGETS, makeFeeds, type QaRow } from '../models/program-fixture';

const { dir, cleanup } = tempDir('checkpointing-');
let m: LoadedVlm;
let rows: QaRow[];
before(async () => {
  writeTinyLlava(join(dir, 'base'), 5, { initStd: 0.2, imageSize: 32, patchSize: 8 });
  m = loadVlm(join(dir, 'base'));
  rows = await demoRows(m, 13, 3, 'colors');
});
after(() => {
  m?.close();
  cleanup();
});

const LORA: LoraOptions = { ...LORA_ALL_TARGETS, dropout: 0.1, includeVision: true };

/** The float32 feeds of makeFeeds with float64 pixels. */
function feeds64(): Record<string, ort.Tensor> {
  const f = makeFeeds(m, rows);
  const px = f.pixel_values;
  return {
    ...f,
    pixel_values: tensor('float64', px.dims as number[], Float64Array.from(px.data as Float32Array)),
    dropout_seed: tensor('int64', [], new BigInt64Array([7n])),
  };
}

test('checkpointed layers give the same loss and gradients (float64), with LoRA dropout', async () => {
  const tv = buildTrainableVlm(m, 'lora', LORA, { dtype: 'float64' });
  const rng = demoRng(9);
  const init: Record<string, Float64Array> = {};
  for (const [k, v] of Object.entries(tv.initialValues(0)))
    init[k] = Float64Array.from(v, (x) => x + 0.1 * rng.normal());
  const session = { optimization: 'basic' as const, threads: 1 };
  const run = async (recompute: boolean) => {
    const ex = await StepExecutor.create(
      {
        params: tv.params,
        forward: tv.forward,
        outputGrads: true,
        session,
        ...(recompute ? { recompute: layerSegment } : {}),
      },
      init,
    );
    try {
      return await ex.step(feeds64(), 0);
    } finally {
      await ex.dispose();
    }
  };
  const want = await run(false);
  const got = await run(true);
  assert.ok(Math.abs(got.loss - want.loss) < 1e-12 * Math.abs(want.loss), `loss ${got.loss} vs ${want.loss}`);
  const { maxErr, maxAbs } = gradientDifference(tv.params, got.grads!, want.grads!);
  const vision = gradientDifference(tv.params, got.grads!, want.grads!, (n) => n.includes('vision')).maxAbs;
  assert.ok(maxAbs > 1e-3 && vision > 1e-6, 'the gradients (vision tower included) are not trivial');
  assert.ok(maxErr < 1e-11 * maxAbs, `gradients differ by ${maxErr} (largest ${maxAbs})`);
});

test('with checkpointing the backward reads no value computed inside a layer, only recomputed ones', () => {
  const tv = buildTrainableVlm(m, 'lora', LORA);
  const reads = (recompute: boolean) => {
    const prog = buildTrainStep({
      params: tv.params,
      forward: tv.forward,
      ...(recompute ? { recompute: layerSegment } : {}),
    });
    const nodes = prog.graph.nodes;
    const fwd = nodes.filter((n) => n.name.startsWith('fwd/'));
    // a layer's values that leave it (read by a forward node outside the layer): these stay alive either way
    const leaving = new Set<unknown>();
    for (const n of fwd)
      for (const x of n.inputs) {
        const p = x?.producer;
        if (p && layerSegment(p) && layerSegment(p) !== layerSegment(n)) leaving.add(x);
      }
    const internal = new Set<string>();
    for (const n of nodes)
      if (n.name.startsWith('grad/') && !n.name.startsWith('grad/recompute/'))
        for (const x of n.inputs) {
          const p = x?.producer;
          if (p && p.name.startsWith('fwd/') && layerSegment(p) && !leaving.has(x)) internal.add(p.name);
        }
    return { internal, recomputed: nodes.filter((n) => n.name.startsWith('grad/recompute/')).length };
  };
  const plain = reads(false);
  const ckpt = reads(true);
  assert.ok(plain.internal.size > 50, `without checkpointing the backward reads ${plain.internal.size} layer values`);
  assert.equal(plain.recomputed, 0);
  assert.ok(ckpt.recomputed > 50, `${ckpt.recomputed} recomputed nodes`);
  assert.deepEqual([...ckpt.internal], [], "the backward reads values from inside a layer's forward");
});
