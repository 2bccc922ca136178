// LoRA inside the graphs: an adapter with random non-zero A and B (decoder + vision tower, plus a changed projector)
// applied as separate LoRA branches gives the logits of the merged weights (mergeAdapter) within 1e-4; the PEFT files
// saved and loaded back give identical logits; rsLoRA scaling goes through; dropout only acts in training graphs,
// its masks are a pure function of dropout_seed (statistics, reference, gradients with a fixed mask).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import {
  adapterFromValues,
  buildLogitsGraph,
  buildTrainableVlm,
  loadAdapter,
  loadVlm,
  saveAdapter,
  type LoadedVlm,
  type LoraOptions,
  type TrainMethod,
} from '../../src-main/models/program';
import { buildTrainStep, Graph, serializeModel, Session, StepExecutor } from '../../src-main/engine';
import { buildScore } from '../../src-main/engine/programs/score';
import { tensor } from '../../src-main/engine/runtime/tensor';
import {
  DROPOUT_SEED_INPUT,
  dropoutMaskReference,
  dropoutStepSeed,
  loraDropoutMask,
} from '../../src-main/models/layers';
import { demoRng } from '../../src-main/models/demo/rng';
import { assertDirectionalGradient, demoRows, makeFeeds, type QaRow } from './program-fixture';
import type { Adapter } from '../../src-main/models/peft';

const { dir, cleanup } = tempDir('lora-graph-');
let m: LoadedVlm;
let rows: QaRow[];
before(async () => {
  writeTinyLlava(join(dir, 'base'), 0, { initStd: 0.2 });
  m = loadVlm(join(dir, 'base'));
  rows = await demoRows(m, 11, 2, 'colors');
});
after(() => {
  m?.close();
  cleanup();
});

const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** Random non-zero values for every trainable tensor of a method (projector tensors perturbed from the base). */
function randomValues(method: TrainMethod, lora: LoraOptions, seed: number): Record<string, Float32Array> {
  const tv = buildTrainableVlm(m, method, lora);
  const rng = demoRng(seed);
  const init = tv.initialValues(seed);
  const out: Record<string, Float32Array> = {};
  for (const p of tv.params) {
    const v = Float32Array.from(init[p.name]);
    const info = tv.paramInfo.get(p.name)!;
    const std = info.kind === 'full' ? 0.05 : 0.1;
    for (let i = 0; i < v.length; i++) v[i] += std * rng.normal();
    out[p.name] = v;
  }
  return out;
}

async function logitsOf(adapter: Adapter | null, mode: 'merge' | 'lora'): Promise<Float32Array> {
  const feeds = makeFeeds(m, rows);
  const g = buildLogitsGraph(m, { adapter, adapterMode: mode });
  const sess = await Session.create(serializeModel(g).model, { threads: 1 });
  const r = await sess.run({
    input_ids: feeds.input_ids,
    attention_mask: feeds.attention_mask,
    pixel_values: feeds.pixel_values,
  });
  await sess.dispose();
  return r.logits.data as Float32Array;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

const CASES: Array<[string, TrainMethod, LoraOptions]> = [
  [
    'decoder + vision LoRA with a changed projector',
    'lora+projector',
    { rank: 4, alpha: 8, dropout: 0, targetModules: ALL, includeVision: true },
  ],
  [
    'attention-only rsLoRA',
    'lora',
    { rank: 8, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj'], useRslora: true },
  ],
];
for (const [name, method, lora] of CASES) {
  test(`${name}: LoRA branches == merged weights (1e-4); saved PEFT adapter reloads to identical logits`, async () => {
    const values = randomValues(method, lora, 5);
    const adapter = adapterFromValues(m, method, lora, values);
    const base = await logitsOf(null, 'merge');
    const branches = await logitsOf(adapter, 'lora');
    const merged = await logitsOf(adapter, 'merge');
    const d = maxDiff(branches, merged);
    assert.ok(d < 1e-4, `LoRA vs merged: max diff ${d}`);
    assert.ok(maxDiff(base, merged) > 0.05, 'the adapter changes the logits');
    const ad = join(dir, `adapter-${method}`);
    saveAdapter(ad, m, method, lora, values);
    const back = loadAdapter(ad, m);
    assert.equal(back.method, method);
    assert.equal(back.adapter.scaling, adapter.scaling);
    const again = await logitsOf(back.adapter, 'lora');
    assert.deepEqual(again, branches);
    if (method === 'lora+projector') assert.ok(adapter.modules.some((x) => x.module.startsWith('vision_tower.')));
  });
}

test('LoRA dropout: training step only, masks a function of dropout_seed (same seed same loss, across sessions)', async () => {
  const lora: LoraOptions = { rank: 4, alpha: 8, dropout: 0.5, targetModules: ['q_proj', 'v_proj', 'down_proj'] };
  const tv = buildTrainableVlm(m, 'lora', lora);
  assert.ok(buildTrainStep({ params: tv.params, forward: tv.forward }).dataInputs.includes(DROPOUT_SEED_INPUT));
  assert.ok(
    !buildScore({ params: tv.params, forward: tv.score }).graph.inputs.some((v) => v.name === DROPOUT_SEED_INPUT),
    'score graph has no dropout',
  );
  const values = randomValues('lora', lora, 9);
  const create = () =>
    StepExecutor.create(
      { params: tv.params, forward: tv.forward, score: { forward: tv.score }, session: { threads: 1 } },
      values,
    );
  const ex = await create();
  const feeds = makeFeeds(m, rows);
  const seeded = (s: number) => ({ ...feeds, [DROPOUT_SEED_INPUT]: tensor('int64', [], [BigInt(s)]) });
  const s1 = (await ex.score(feeds)).losses.data as Float32Array;
  const l1 = (await ex.step(seeded(1), 0)).loss;
  const l2 = (await ex.step(seeded(2), 0)).loss;
  const l1again = (await ex.step(seeded(1), 0)).loss;
  const s2 = (await ex.score(feeds)).losses.data as Float32Array;
  await ex.dispose();
  const ex2 = await create(); // a fresh session: no hidden generator state
  const l1fresh = (await ex2.step(seeded(1), 0)).loss;
  const lBig = (await ex2.step(seeded(dropoutStepSeed(0xffffffff, 123456, 3)), 0)).loss;
  await ex2.dispose();
  assert.deepEqual(s1, s2, 'score is deterministic (lr 0 keeps the parameters)');
  assert.equal(l1again, l1, 'same seed, same loss');
  assert.equal(l1fresh, l1, 'same seed, same loss in another session');
  assert.notEqual(l1, l2, 'different seeds, different masks');
  assert.ok(Number.isFinite(lBig));
  const mean = (s1[0] + s1[1]) / 2;
  assert.ok(Math.abs(l1 - mean) > 1e-6, 'dropout changes the training loss');
});

test('LoRA dropout mask: P(drop) = p, mean scale 1, equal to the JS reference, independent across modules and seeds', async () => {
  const shape = [3, 97, 256]; // 74,496 elements, not a power of two
  const n = shape.reduce((a, b) => a * b, 1);
  for (const p of [0.05, 0.1, 0.5]) {
    const g = new Graph('mask');
    const x = g.input('x', 'float32', ['B', 'T', shape[2]]);
    const seed = g.input('seed', 'int64', []);
    g.output(loraDropoutMask(g, x, p, seed, 'layers.0.q_proj', 'float32'), 'a');
    g.output(loraDropoutMask(g, x, p, seed, 'layers.0.k_proj', 'float32'), 'b');
    const sess = await Session.create(serializeModel(g).model, { threads: 1 });
    const run = async (s: number) => {
      const r = await sess.run({ x: tensor('float32', shape), seed: tensor('int64', [], [BigInt(s)]) });
      return [r.a.data as Float32Array, r.b.data as Float32Array];
    };
    const [a, b] = await run(7);
    const [a2] = await run(7);
    const [c] = await run(8);
    await sess.dispose();
    assert.deepEqual(a2, a, 'same seed, same mask');
    const ref = dropoutMaskReference(7, 'layers.0.q_proj', n, p);
    const scale = Math.fround(1 / (1 - p));
    let dropped = 0;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      assert.ok(a[i] === 0 || a[i] === scale, `mask value ${a[i]}`);
      if (a[i] !== Math.fround(ref[i])) assert.fail(`element ${i}: graph ${a[i]} vs reference ${ref[i]}`);
      if (a[i] === 0) dropped++;
      sum += a[i];
    }
    const sd = Math.sqrt((p * (1 - p)) / n);
    assert.ok(Math.abs(dropped / n - p) < 5 * sd, `p ${p}: dropped fraction ${dropped / n}`);
    assert.ok(Math.abs(sum / n - 1) < (5 * sd) / (1 - p), `p ${p}: mean scale ${sum / n}`);
    // another module / another seed: both dropped in about p^2 of the elements (independent masks)
    for (const [other, what] of [
      [b, 'module'],
      [c, 'seed'],
    ] as const) {
      let both = 0;
      for (let i = 0; i < n; i++) if (a[i] === 0 && other[i] === 0) both++;
      const sd2 = Math.sqrt((p * p * (1 - p * p)) / n);
      assert.ok(
        Math.abs(both / n - p * p) < 5 * sd2,
        `p ${p}, other ${what}: both dropped in ${both / n}, independent masks give ${p * p}`,
      );
    }
    // neighbours are uncorrelated too (flat index i vs i + 1 and vs the next row)
    for (const lag of [1, shape[2]]) {
      let both = 0;
      for (let i = 0; i + lag < n; i++) if (a[i] === 0 && a[i + lag] === 0) both++;
      const m2 = n - lag;
      assert.ok(
        Math.abs(both / m2 - p * p) < 5 * Math.sqrt((p * p * (1 - p * p)) / m2),
        `p ${p}, lag ${lag}: ${both / m2}`,
      );
    }
  }
});

test('float64 LoRA gradients with dropout match central differences (the mask is a constant of the seed)', async () => {
  const d = join(dir, 'f64-dropout');
  writeTinyLlava(d, 2, { initStd: 0.2, projectorHiddenAct: 'gelu_pytorch_tanh', imageSize: 32, patchSize: 8 });
  const small = loadVlm(d);
  try {
    const r32 = await demoRows(small, 11, 2, 'colors');
    const f = makeFeeds(small, r32);
    const feeds = {
      ...f,
      pixel_values: tensor(
        'float64',
        f.pixel_values.dims as number[],
        Float64Array.from(f.pixel_values.data as Float32Array),
      ),
      [DROPOUT_SEED_INPUT]: tensor('int64', [], [5n]),
    };
    const lora: LoraOptions = { rank: 4, alpha: 8, dropout: 0.3, targetModules: ['q_proj', 'v_proj', 'up_proj'] };
    const tv = buildTrainableVlm(small, 'lora', lora, { dtype: 'float64' });
    const rng = demoRng(4);
    const init: Record<string, Float64Array> = {};
    for (const [k, v] of Object.entries(tv.initialValues(0)))
      init[k] = Float64Array.from(v, (x) => x + 0.1 * rng.normal());
    const session = { optimization: 'basic' as const, threads: 1 };
    const ex = await StepExecutor.create({ params: tv.params, forward: tv.forward, outputGrads: true, session }, init);
    const grads = (await ex.step(feeds, 0)).grads;
    await ex.dispose();
    const dirs: Record<string, Float64Array> = {};
    for (const p of tv.params) dirs[p.name] = Float64Array.from(init[p.name], () => rng.normal());
    await assertDirectionalGradient({ tv, init, grads, dirs, feeds, session, label: 'LoRA with dropout' });
  } finally {
    small.close();
  }
});
