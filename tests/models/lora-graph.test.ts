// LoRA inside the graphs: an adapter with random non-zero A and B (decoder + vision tower, plus a changed projector)
// applied as separate LoRA branches gives the logits of the merged weights (mergeAdapter) within 1e-4; the PEFT files
// saved and loaded back give identical logits; rsLoRA scaling goes through; dropout only acts in training graphs.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { adapterFromValues, buildLogitsGraph, buildTrainableVlm, loadAdapter, loadVlm, saveAdapter, type LoadedVlm, type LoraOptions, type TrainMethod } from '../../src-main/models/program';
import { serializeModel, Session, StepExecutor } from '../../src-main/engine';
import { Rng } from '../../src-main/models/demo/rng';
import { demoRows, makeFeeds, type QaRow } from './program-fixture';
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
  const rng = new Rng(seed);
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
  const r = await sess.run({ input_ids: feeds.input_ids, attention_mask: feeds.attention_mask, pixel_values: feeds.pixel_values });
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
  ['decoder + vision LoRA with a changed projector', 'lora+projector', { rank: 4, alpha: 8, dropout: 0, targetModules: ALL, includeVision: true }],
  ['attention-only rsLoRA', 'lora', { rank: 8, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj'], useRslora: true }],
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

test('LoRA dropout acts in the training step only; the score program is deterministic', async () => {
  const lora: LoraOptions = { rank: 4, alpha: 8, dropout: 0.5, targetModules: ['q_proj', 'v_proj', 'down_proj'] };
  const tv = buildTrainableVlm(m, 'lora', lora);
  const values = randomValues('lora', lora, 9);
  const ex = await StepExecutor.create({ params: tv.params, forward: tv.forward, score: { forward: tv.score }, session: { threads: 1 } }, values);
  const feeds = makeFeeds(m, rows);
  const s1 = (await ex.score(feeds)).losses.data as Float32Array;
  const l1 = (await ex.step(feeds, 0)).loss;
  const l2 = (await ex.step(feeds, 0)).loss;
  const s2 = (await ex.score(feeds)).losses.data as Float32Array;
  await ex.dispose();
  assert.deepEqual(s1, s2, 'score is deterministic (lr 0 keeps the parameters)');
  assert.notEqual(l1, l2, 'training losses differ between steps (new dropout masks)');
  const mean = (s1[0] + s1[1]) / 2;
  assert.ok(Math.abs(l1 - mean) > 1e-6, 'dropout changes the training loss');
});
