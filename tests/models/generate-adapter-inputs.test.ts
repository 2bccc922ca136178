// Adapters as graph inputs in generation: two checkpoints of one run (same structure, other values) share one set
// of compiled graphs, each gives what the same model with that adapter merged gives (logits within float rounding,
// identical greedy tokens, scores), a structurally different adapter compiles its own graphs, and the base model's
// graphs and outputs are untouched.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { loadHfFolder, saveHfFolder, type HfModel } from '../../src-main/models/hf-folder';
import { makeSample } from '../../src-main/models/demo/shapes';
import {
  createGenerator,
  loadGenerator,
  openGenerateSessions,
  renderSetupOf,
  type Generator,
} from '../../src-main/models/generate';
import { renderConversation } from '../../src-main/datasets/render';
import {
  loadAdapter,
  mergeAdapter,
  projectorParams,
  resolveLoraModules,
  saveAdapter,
  targetModulesRegex,
  type Adapter,
  type LoraSpec,
} from '../../src-main/models/peft';
import {
  ADAPTER_INPUT,
  adapterInputTensors,
  adapterStructure,
  buildForwardGraph,
  IO,
} from '../../src-main/models/llava';
import { serializeModel } from '../../src-main/engine/graph/serialize';
import { Session } from '../../src-main/engine/runtime/session';
import { tensor } from '../../src-main/engine/runtime/tensor';
import { Rng } from '../../src-main/training/rng';
import type { LlavaModelConfig } from '../../src-main/models/config';
import type { RgbImage } from '../../src-main/models/image-processor';
import { tinyLlavaReference } from '../fixtures/models/tiny-llava-reference';

const c = tinyLlavaReference.cases[0];
const tmp = tempDir('generate-adapter-inputs-');
const cacheDir = join(tmp.dir, 'graph-cache');
const dir = join(tmp.dir, 'model');
let m: HfModel;
let cfg: LlavaModelConfig;
let image: RgbImage;
const spec: LoraSpec = {
  mode: 'lora+projector',
  r: 4,
  alpha: 8,
  dropout: 0,
  targets: ['q_proj', 'v_proj', 'down_proj'],
  includeVision: true,
  useRslora: false,
};
const adapters: Adapter[] = [];
const open: Generator[] = [];

/** Graph cache entries (finished ones: temp folders start with a dot). */
const entries = () =>
  readdirSync(cacheDir)
    .filter((n) => !n.startsWith('.'))
    .sort();

/** A "checkpoint": the spec's LoRA matrices and a changed projector, from a seed, written and loaded as a PEFT folder. */
function checkpoint(seed: number, s: LoraSpec, name: string): Adapter {
  const rng = new Rng(seed);
  const lora = new Map<string, { a: Float32Array; b: Float32Array }>();
  for (const mod of resolveLoraModules(cfg, targetModulesRegex(cfg, s)))
    lora.set(mod.module, {
      a: Float32Array.from({ length: s.r * mod.inFeatures }, () => 0.3 * rng.normal()),
      b: Float32Array.from({ length: mod.outFeatures * s.r }, () => 0.3 * rng.normal()),
    });
  const saved = new Map(
    projectorParams(cfg).map((n) => [n, m.weights.get(n).map((x) => x * (1 + 0.5 * rng.normal()))]),
  );
  const adDir = join(tmp.dir, name);
  saveAdapter(adDir, cfg, s, lora, saved);
  return loadAdapter(adDir, cfg);
}

/** A folder holding the model with the adapter merged into its weights. */
function mergedFolder(adapter: Adapter, name: string): string {
  const out = join(tmp.dir, name);
  const j = m.json;
  saveHfFolder(out, {
    config: j.config,
    weights: mergeAdapter(m.weights, adapter),
    tokenizer: j.tokenizer,
    tokenizerConfig: j.tokenizerConfig,
    preprocessorConfig: j.preprocessorConfig,
    generationConfig: j.generationConfig,
  });
  return out;
}

const ask = () => ({ image, messages: [{ role: 'user', content: c.question }] });
const scored = () => [
  {
    image,
    messages: [
      { role: 'user', content: c.question },
      { role: 'assistant', content: 'Two squares and a circle.' },
    ],
  },
];

before(() => {
  writeTinyLlava(dir, c.seed, c.options);
  m = loadHfFolder(dir);
  cfg = m.config as LlavaModelConfig;
  const s = makeSample(c.image.seed, c.image.index, { size: cfg.vision.imageSize });
  image = { data: s.rgb, width: s.scene.size, height: s.scene.size };
  adapters.push(checkpoint(1, spec, 'ckpt-1'), checkpoint(2, spec, 'ckpt-2'));
});
after(async () => {
  for (const g of open) await g.dispose();
  m?.close();
  tmp.cleanup();
});

test('adapter inputs: names, shapes, and a structure that ignores the values', () => {
  const [a1, a2] = adapters;
  const feeds = adapterInputTensors(a1, m.weights);
  const vision = a1.modules.filter((x) => x.module.includes('vision_tower'));
  assert.ok(vision.length > 0 && vision.length < a1.modules.length, 'decoder and vision modules are adapted');
  assert.equal(feeds.length, 2 * a1.modules.length + a1.saved.size);
  const q = a1.modules[0];
  const fa = feeds.find((f) => f.name === ADAPTER_INPUT.loraA(q.module))!;
  assert.deepEqual(fa.dims, [spec.r, q.inFeatures]);
  assert.equal(fa.data, a1.lora.get(q.module)!.a, 'fed over the adapter array, not a copy');
  const p = projectorParams(cfg)[0];
  assert.deepEqual(feeds.find((f) => f.name === ADAPTER_INPUT.saved(p))!.dims, m.weights.info(p).shape);
  assert.deepEqual(adapterStructure(a1), adapterStructure(a2));
  const other = { ...a1, config: { ...a1.config, alpha: 16 }, scaling: 4 };
  assert.notDeepEqual(adapterStructure(other), adapterStructure(a1));
  const bad = { ...a1, lora: new Map([[q.module, { a: new Float32Array(3), b: a1.lora.get(q.module)!.b }]]) };
  assert.throws(
    () => adapterInputTensors(bad, m.weights),
    new RegExp(`adapter tensor ${ADAPTER_INPUT.loraA(q.module).replace(/\./g, '\\.')}: 3 values`),
  );
});

test("'inputs' forward graph: logits equal the merged graph's within float rounding, per adapter", async () => {
  const r = renderConversation(
    [
      { role: 'user', content: `<image>\n${c.question}` },
      { role: 'assistant', content: 'Two squares.' },
    ],
    renderSetupOf(m),
  );
  const pv = await m.imageProcessor!.process(image);
  const data = {
    [IO.inputIds]: tensor('int64', [1, r.ids.length], r.ids),
    [IO.attentionMask]: tensor(
      'int64',
      [1, r.ids.length],
      r.ids.map(() => 1),
    ),
    [IO.pixelValues]: tensor('float32', [1, 3, pv.height, pv.width], pv.data),
  };
  const g = buildForwardGraph(m, { mode: 'full', image: true, adapter: adapters[0], adapterMode: 'inputs' });
  const names = g.inputs.map((v) => v.name);
  const inits = new Set([...g.initData.keys()].map((v) => v.name));
  // every adapter tensor is an input (vision LoRA, decoder LoRA, projector), none is an initializer
  for (const f of adapterInputTensors(adapters[0], m.weights)) {
    assert.ok(names.includes(f.name), f.name);
    assert.ok(!inits.has(f.name), f.name);
  }
  const withInputs = await Session.create(serializeModel(g).model);
  const logitsOf = async (s: Session, extra: Record<string, ReturnType<typeof tensor>> = {}) =>
    (await s.run({ ...data, ...extra }))[IO.logits].data as Float32Array;
  try {
    const outs: Float32Array[] = [];
    for (const a of adapters) {
      const feeds = Object.fromEntries(
        adapterInputTensors(a, m.weights).map((f) => [f.name, tensor('float32', f.dims, f.data)]),
      );
      const got = await logitsOf(withInputs, feeds);
      const merged = await Session.create(
        serializeModel(buildForwardGraph(m, { mode: 'full', image: true, adapter: a, adapterMode: 'merge' })).model,
      );
      try {
        const want = await logitsOf(merged);
        let maxDiff = 0;
        let maxAbs = 0;
        for (let i = 0; i < want.length; i++) {
          maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
          maxAbs = Math.max(maxAbs, Math.abs(want[i]));
        }
        assert.ok(maxDiff <= 1e-4 * Math.max(1, maxAbs), `max |inputs - merged| = ${maxDiff} (max |logit| ${maxAbs})`);
      } finally {
        await merged.dispose();
      }
      outs.push(got);
    }
    let d = 0;
    for (let i = 0; i < outs[0].length; i++) d = Math.max(d, Math.abs(outs[0][i] - outs[1][i]));
    assert.ok(d > 1e-2, `the two adapters give different logits (max diff ${d})`);
  } finally {
    await withInputs.dispose();
  }
});

test('generation: two checkpoints share one compiled graph set and each equals its merged model; the base is unchanged', async () => {
  const base = await createGenerator(m, null, { cacheDir });
  open.push(base);
  const baseFirst = await base.generate(ask(), { maxNewTokens: c.greedy_tokens.length });
  assert.deepEqual(baseFirst.ids, c.greedy_tokens, 'base model: the PyTorch fixture tokens');
  const [baseScore] = await base.score(scored());
  const baseEntries = entries();
  assert.equal(baseEntries.length, 3, 'decoder, vision, score-image');

  const results: Array<{ ids: number[]; loss: number }> = [];
  const statuses: string[][] = [];
  for (const [k, a] of adapters.entries()) {
    const seen: string[] = [];
    const g = await createGenerator(m, a, { cacheDir, onStatus: (s) => seen.push(s) });
    open.push(g);
    const r = await g.generate(ask(), { maxNewTokens: 10 });
    const [sc] = await g.score(scored());
    results.push({ ids: r.ids, loss: sc.loss });
    statuses.push(seen);
    if (k === 0)
      assert.equal(
        entries().length,
        baseEntries.length + 3,
        'the first adapter compiles its decoder, vision and score graphs',
      );
  }
  const after2 = entries();
  assert.equal(after2.length, baseEntries.length + 3, 'the second checkpoint compiles no graph');
  for (const kind of ['decoder', 'vision', 'score-image']) {
    assert.ok(
      statuses[1].includes(`loading the ${kind} graph (cached)`),
      `${kind}: cache hit for the second checkpoint (${statuses[1].join('; ')})`,
    );
    assert.ok(statuses[0].includes(`loading the ${kind} graph`), `${kind}: compiled for the first`);
  }
  assert.notDeepEqual(results[0].ids, results[1].ids, 'the checkpoints generate different tokens');
  const base10 = (await base.generate(ask(), { maxNewTokens: 10 })).ids;
  for (const r of results) assert.notDeepEqual(r.ids, base10, 'an adapter changes the tokens');

  // each equals the merged model (a written copy of the weights with the adapter merged, base graphs)
  for (const [k, a] of adapters.entries()) {
    const merged = await loadGenerator(mergedFolder(a, `merged-${k}`), null, { cacheDir });
    try {
      const r = await merged.generate(ask(), { maxNewTokens: 10 });
      const [sc] = await merged.score(scored());
      assert.deepEqual(results[k].ids, r.ids, `checkpoint ${k}: greedy tokens equal the merged model's`);
      assert.ok(
        Math.abs(results[k].loss - sc.loss) <= 1e-4 * Math.max(1, Math.abs(sc.loss)),
        `checkpoint ${k}: loss ${results[k].loss} vs merged ${sc.loss}`,
      );
      assert.ok(Math.abs(results[k].loss - baseScore.loss) > 1e-3, `checkpoint ${k}: the adapter changes the loss`);
    } finally {
      await merged.dispose();
    }
  }

  // the base model after all this: same tokens, same loss, and its graphs were never rebuilt
  const base2 = await createGenerator(m, null, { cacheDir, onStatus: () => {} });
  open.push(base2);
  assert.deepEqual((await base2.generate(ask(), { maxNewTokens: c.greedy_tokens.length })).ids, c.greedy_tokens);
  assert.equal((await base2.score(scored()))[0].loss, baseScore.loss);
  for (const e of baseEntries) assert.ok(entries().includes(e), `base entry ${e} still in the cache`);
});

test('generators with same-structure adapters share their ORT sessions, each with its own adapter feeds', async () => {
  const dir2 = join(tmp.dir, 'share-cache');
  const want: number[][] = [];
  for (const a of adapters) {
    const g = await createGenerator(m, a, { cacheDir: dir2 });
    want.push((await g.generate(ask(), { maxNewTokens: 8 })).ids);
    await g.dispose();
  }
  const n0 = openGenerateSessions();
  const g1 = await createGenerator(m, adapters[0], { cacheDir: dir2 });
  assert.equal(openGenerateSessions(), n0 + 2, 'decoder + vision');
  const g2 = await createGenerator(m, adapters[1], { cacheDir: dir2 });
  assert.equal(openGenerateSessions(), n0 + 2, 'the second generator opens no session');
  try {
    // interleaved and concurrent runs: each generator feeds its own adapter
    const [r1, r2] = await Promise.all([
      g1.generate(ask(), { maxNewTokens: 8 }),
      g2.generate(ask(), { maxNewTokens: 8 }),
    ]);
    assert.deepEqual(r1.ids, want[0]);
    assert.deepEqual(r2.ids, want[1]);
    await g1.dispose();
    assert.equal(openGenerateSessions(), n0 + 2, 'still held by the second generator');
    assert.deepEqual((await g2.generate(ask(), { maxNewTokens: 8 })).ids, want[1]);
  } finally {
    await g1.dispose();
    await g2.dispose();
  }
  assert.equal(openGenerateSessions(), n0, 'the last dispose closes them');
});

test('a structurally different adapter (another rank) compiles its own graphs', async () => {
  const before = entries().length;
  const other = checkpoint(3, { ...spec, r: 2 }, 'rank-2');
  const seen: string[] = [];
  const g = await createGenerator(m, other, { cacheDir, onStatus: (s) => seen.push(s) });
  open.push(g);
  await g.generate(ask(), { maxNewTokens: 3 });
  assert.equal(entries().length, before + 2, 'decoder + vision');
  assert.ok(!seen.some((s) => s.endsWith('(cached)')), seen.join('; '));
});
