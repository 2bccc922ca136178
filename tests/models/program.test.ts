// buildTrainableVlm on the tiny LLaVA through the engine's step programs: the loss is the causal-shifted token
// cross-entropy of the inference logits graph, frozen weights stay inside the graph (only trainable tensors are
// inputs), and a few AdamW steps on one batch reduce the loss for every method. Projector-only trains only the
// projector; full training covers decoder + projector and saves a loadable folder.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import {
  buildTrainableVlm,
  buildLogitsGraph,
  loadVlm,
  saveAdapter,
  saveFullModel,
  loadAdapter,
  type LoadedVlm,
} from '../../src-main/models/program';
import { buildTrainStep, serializeModel, Session, StepExecutor, tensor, type ort } from '../../src-main/engine';
import { demoRng } from '../../src-main/models/demo/rng';
import { assertDirectionalGradient, demoRows, LORA_ALL_TARGETS, makeFeeds, type QaRow } from './program-fixture';
import { existsSync } from 'node:fs';

const { dir, cleanup } = tempDir('program-');
let m: LoadedVlm;
let rows: QaRow[];
before(async () => {
  writeTinyLlava(join(dir, 'base'), 0, { initStd: 0.2 });
  m = loadVlm(join(dir, 'base'));
  rows = await demoRows(m, 7, 3, 'counting');
});
after(() => {
  m?.close();
  cleanup();
});

const LORA = LORA_ALL_TARGETS;

/** The base model's logits [B, T, V] for a batch, from the inference logits graph. */
async function baseLogits(feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const sess = await Session.create(serializeModel(buildLogitsGraph(m)).model, { threads: 1 });
  try {
    const { input_ids, attention_mask, pixel_values } = feeds;
    return (await sess.run({ input_ids, attention_mask, pixel_values })).logits.data as Float32Array;
  } finally {
    await sess.dispose();
  }
}

/** Mean token cross-entropy of logits[t] vs labels[t+1] over non-ignored labels, in float64 JS. */
function referenceLoss(logits: Float32Array, labels: BigInt64Array, B: number, T: number, V: number): number {
  let sum = 0;
  let n = 0;
  for (let b = 0; b < B; b++)
    for (let t = 0; t + 1 < T; t++) {
      const y = Number(labels[b * T + t + 1]);
      if (y === -100) continue;
      const off = (b * T + t) * V;
      let mx = -Infinity;
      for (let j = 0; j < V; j++) mx = Math.max(mx, logits[off + j]);
      let z = 0;
      for (let j = 0; j < V; j++) z += Math.exp(logits[off + j] - mx);
      sum += Math.log(z) + mx - logits[off + y];
      n++;
    }
  return sum / n;
}

async function train(method: 'lora' | 'projector' | 'lora+projector' | 'full', steps: number, lr: number) {
  const tv = buildTrainableVlm(m, method, method === 'projector' || method === 'full' ? null : LORA);
  const ex = await StepExecutor.create(
    { params: tv.params, forward: tv.forward, clipNorm: 1, score: { forward: tv.score }, session: { threads: 1 } },
    tv.initialValues(0),
  );
  const feeds = makeFeeds(m, rows);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) losses.push((await ex.step(feeds, lr)).loss);
  const state = ex.state();
  const scored = await ex.score(feeds);
  await ex.dispose();
  return { tv, losses, values: state.params as Record<string, Float32Array>, scored, feeds };
}

test('the training loss equals the shifted cross-entropy of the logits graph; only trainable tensors are graph inputs', async () => {
  const tv = buildTrainableVlm(m, 'lora', LORA);
  const feeds = makeFeeds(m, rows);
  const [B, T] = feeds.input_ids.dims as number[];
  const V = m.config.text.vocabSize;
  const lg = await baseLogits(feeds);
  const want = referenceLoss(lg, feeds.labels.data as BigInt64Array, B, T, V);

  const prog = buildTrainStep({ params: tv.params, forward: tv.forward });
  const names = prog.graph.inputs.map((v) => v.name);
  assert.deepEqual(prog.dataInputs.sort(), ['attention_mask', 'input_ids', 'labels', 'pixel_values']);
  for (const n of names)
    assert.ok(
      /^(param|adam_m|adam_v)\.base_model\.model\..*lora_[AB]\.weight$/.test(n) ||
        ['lr', 'step', ...prog.dataInputs].includes(n),
      `unexpected graph input ${n}`,
    );
  assert.equal(tv.params.length, 2 * 7 * m.config.text.numHiddenLayers);
  assert.ok(
    prog.graph.initializers.some((v) => v.name === 'language_model.model.layers.0.self_attn.q_proj.weight.T'),
    'frozen weights are initializers',
  );

  const ex = await StepExecutor.create(
    { params: tv.params, forward: tv.forward, outputGrads: true },
    tv.initialValues(3),
  );
  const r = await ex.step(feeds, 0);
  await ex.dispose();
  assert.ok(Math.abs(r.loss - want) < 1e-4 * Math.max(1, want), `loss ${r.loss} vs reference ${want}`);
  let count = 0;
  const lb = feeds.labels.data as BigInt64Array;
  for (let b = 0; b < B; b++) for (let t = 1; t < T; t++) if (lb[b * T + t] !== -100n) count++;
  assert.equal(Number((r.outputs.token_count.data as Float32Array)[0]), count);
  // B = 0 at init: A gets no gradient, B does
  const gA = r.grads['base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_A.weight']
    .data as Float32Array;
  const gB = r.grads['base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_B.weight']
    .data as Float32Array;
  assert.ok(gA.every((x) => x === 0));
  assert.ok(gB.some((x) => Math.abs(x) > 1e-6));
});

test('the LM head runs on label positions only: per-sample scores match the logits graph, no labels give zeros', async () => {
  const tv = buildTrainableVlm(m, 'lora', LORA);
  const feeds = makeFeeds(m, rows);
  const [B, T] = feeds.input_ids.dims as number[];
  const V = m.config.text.vocabSize;
  // the second row learns nothing: its score is 0 over 0 tokens, the others' are unchanged
  const lb = BigInt64Array.from(feeds.labels.data as BigInt64Array);
  lb.fill(-100n, T, 2 * T);
  const withHole = { ...feeds, labels: tensor('int64', [B, T], lb) };
  const lg = await baseLogits(feeds);

  const prog = buildTrainStep({ params: tv.params, forward: tv.forward });
  assert.ok(
    prog.graph.nodes.some((n) => n.opType === 'NonZero'),
    'the training graph selects label positions at run time',
  );
  const init = tv.initialValues(3);
  const ex = await StepExecutor.create(
    {
      params: tv.params,
      forward: tv.forward,
      outputGrads: true,
      score: { forward: tv.score },
      session: { threads: 1 },
    },
    init,
  );
  const scored = await ex.score(withHole);
  const losses = scored.losses.data as Float32Array;
  const counts = scored.token_count.data as Float32Array;
  for (let b = 0; b < B; b++) {
    const one = (a: BigInt64Array | Float32Array, n: number) => a.slice(b * n, (b + 1) * n);
    const want = b === 1 ? 0 : referenceLoss(one(lg, T * V) as Float32Array, one(lb, T) as BigInt64Array, 1, T, V);
    assert.ok(Math.abs(losses[b] - want) < 1e-4 * Math.max(1, want), `row ${b}: score ${losses[b]} vs ${want}`);
    let n = 0;
    for (let t = 1; t < T; t++) if (lb[b * T + t] !== -100n) n++;
    assert.equal(counts[b], n, `row ${b} token count`);
  }
  // a batch without any label: loss 0 and no gradient at all (with labels, lora_B has one: the test above)
  const none = await ex.step({ ...feeds, labels: tensor('int64', [B, T], new BigInt64Array(B * T).fill(-100n)) }, 0);
  assert.ok(none.loss === 0, `loss ${none.loss} without labels`);
  assert.equal(Number((none.outputs.token_count.data as Float32Array)[0]), 0);
  for (const [name, g] of Object.entries(none.grads))
    assert.ok(
      (g.data as Float32Array).every((x) => x === 0),
      `${name} has a gradient without labels`,
    );
  await ex.dispose();
});

test('LoRA: a few steps on one batch reduce the loss; the saved adapter reproduces the trained model', async () => {
  const { losses, values, scored, feeds } = await train('lora', 8, 1e-2);
  assert.ok(losses[losses.length - 1] < 0.5 * losses[0], `losses ${losses.map((x) => x.toFixed(3)).join(' ')}`);
  // per-row score losses, token-weighted, give the batch loss of the trained parameters
  const sums = scored.token_loss_sum.data as Float32Array;
  const counts = scored.token_count.data as Float32Array;
  const mean = sums.reduce((a, b) => a + b, 0) / counts.reduce((a, b) => a + b, 0);
  assert.ok(mean < losses[losses.length - 1] * 1.5);
  const ad = join(dir, 'lora-adapter');
  saveAdapter(ad, m, 'lora', LORA, values);
  const back = loadAdapter(ad, m);
  assert.equal(back.method, 'lora');
  assert.deepEqual(back.lora, { ...LORA, includeVision: false, useRslora: false });
  assert.deepEqual(Object.keys(back.values).sort(), Object.keys(values).sort());
  for (const k of Object.keys(values)) assert.deepEqual(back.values[k], values[k]);
  // the adapter's logits give the same loss as the executor's score program
  const sess = await Session.create(serializeModel(buildLogitsGraph(m, { adapter: back.adapter })).model, {
    threads: 1,
  });
  const lg = (
    await sess.run({
      input_ids: feeds.input_ids,
      attention_mask: feeds.attention_mask,
      pixel_values: feeds.pixel_values,
    })
  ).logits.data as Float32Array;
  await sess.dispose();
  const [B, T] = feeds.input_ids.dims as number[];
  const ref = referenceLoss(lg, feeds.labels.data as BigInt64Array, B, T, m.config.text.vocabSize);
  assert.ok(Math.abs(ref - mean) < 1e-4 * Math.max(1, ref), `adapter logits loss ${ref} vs score ${mean}`);
});

test('projector-only trains only the projector (no LoRA tensors anywhere) and reduces the loss', async () => {
  const { tv, losses, values } = await train('projector', 8, 1e-2);
  const names = tv.params.map((p) => p.name).sort();
  assert.deepEqual(names, [
    'multi_modal_projector.linear_1.bias',
    'multi_modal_projector.linear_1.weight',
    'multi_modal_projector.linear_2.bias',
    'multi_modal_projector.linear_2.weight',
  ]);
  const prog = buildTrainStep({ params: tv.params, forward: tv.forward });
  assert.ok(!prog.graph.inputs.some((v) => v.name.includes('lora')));
  assert.ok(losses[losses.length - 1] < 0.8 * losses[0], `losses ${losses.map((x) => x.toFixed(3)).join(' ')}`);
  const ad = join(dir, 'proj-adapter');
  saveAdapter(ad, m, 'projector', null, values);
  const back = loadAdapter(ad, m);
  assert.equal(back.method, 'projector');
  assert.deepEqual(Object.keys(back.values).sort(), names);
  assert.equal(
    back.adapter.lora.size > 0 ? [...back.adapter.lora.values()].every((ab) => ab.b.every((x) => x === 0)) : true,
    true,
    'projector mode stores no-op LoRA matrices only',
  );
});

test('lora+projector and full training both reduce the loss; a full result saves as a loadable folder', async () => {
  const lp = await train('lora+projector', 8, 1e-2);
  assert.equal(lp.tv.params.length, 2 * 7 * m.config.text.numHiddenLayers + 4);
  assert.ok(
    lp.losses[lp.losses.length - 1] < 0.5 * lp.losses[0],
    `lora+projector losses ${lp.losses.map((x) => x.toFixed(3)).join(' ')}`,
  );
  const full = await train('full', 8, 3e-3);
  assert.ok(full.tv.params.some((p) => p.name === 'language_model.model.embed_tokens.weight'));
  assert.ok(!full.tv.params.some((p) => p.name.startsWith('vision_tower.')));
  assert.ok(
    full.losses[full.losses.length - 1] < 0.5 * full.losses[0],
    `full losses ${full.losses.map((x) => x.toFixed(3)).join(' ')}`,
  );
  const out = join(dir, 'full-model');
  saveFullModel(out, m, full.values);
  assert.ok(existsSync(join(out, 'tokenizer.json')));
  const m2 = loadVlm(out);
  assert.deepEqual(m2.weights.get('language_model.model.norm.weight'), full.values['language_model.model.norm.weight']);
  assert.deepEqual(
    m2.weights.get('vision_tower.vision_model.post_layernorm.weight'),
    m.weights.get('vision_tower.vision_model.post_layernorm.weight'),
  );
  m2.close();
});

test('float64 whole-model gradients (vision tower, projector, decoder) match central differences', async () => {
  // a small variant (32 px, 16 image tokens) with the tanh GELU in the projector: ORT has no float64 Erf
  const d = join(dir, 'f64');
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
    };
    const tv = buildTrainableVlm(small, 'full', null, {
      fullParts: ['vision', 'projector', 'decoder'],
      dtype: 'float64',
    });
    // ORT's QuickGelu fusion has a float32-only kernel: float64 sessions run with basic optimizations
    const session = { optimization: 'basic' as const, threads: 1 };
    const init = tv.initialValues(0);
    const ex = await StepExecutor.create({ params: tv.params, forward: tv.forward, outputGrads: true, session }, init);
    const grads = (await ex.step(feeds, 0)).grads;
    await ex.dispose();
    const rng = demoRng(3);
    for (const part of ['vision_tower.', 'multi_modal_projector.', 'language_model.']) {
      const dirs: Record<string, Float64Array> = {};
      for (const p of tv.params) {
        const dv = new Float64Array(init[p.name].length);
        if (p.name.startsWith(part)) for (let i = 0; i < dv.length; i++) dv[i] = rng.normal();
        dirs[p.name] = dv;
      }
      await assertDirectionalGradient({ tv, init, grads, dirs, feeds, session, label: part });
    }
  } finally {
    small.close();
  }
});
