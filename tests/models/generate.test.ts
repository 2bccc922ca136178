// Generation with the tiny LLaVA: greedy tokens vs the PyTorch fixture, KV cache vs full recomputation, EOS and
// stop strings, cancel, seeded sampling, adapters, scoring, prompts identical to the training renderer's.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import {
  demoPreprocessorConfig,
  demoTokenizerFiles,
  randomWeights,
  tinyLlavaConfig,
  writeTinyLlava,
} from '../../src-main/models/demo/tiny-llava';
import { expectedTensors } from '../../src-main/models/weights/names';
import { memorySource } from '../../src-main/models/weights/safetensors';
import { loadHfFolder, saveHfFolder, type HfModel } from '../../src-main/models/hf-folder';
import { makeSample } from '../../src-main/models/demo/shapes';
import {
  createGenerator,
  loadGenerator,
  renderSetupOf,
  GenerateError,
  type Generator,
} from '../../src-main/models/generate';
import { renderConversation } from '../../src-main/datasets/render';
import {
  loadAdapter,
  mergeAdapter,
  resolveLoraModules,
  saveAdapter,
  targetModulesRegex,
  projectorParams,
  type LoraSpec,
} from '../../src-main/models/peft';
import { buildForwardGraph, IO } from '../../src-main/models/llava';
import { serializeModel } from '../../src-main/engine/graph/serialize';
import { Session } from '../../src-main/engine/runtime/session';
import { tensor } from '../../src-main/engine/runtime/tensor';
import { logSoftmax } from '../../src-main/models/sampling';
import { Rng } from '../../src-main/training/rng';
import type { LlavaModelConfig } from '../../src-main/models/config';
import type { RgbImage } from '../../src-main/models/image-processor';
import { tinyLlavaReference, type TinyLlavaRefCase } from '../fixtures/models/tiny-llava-reference';

const ref = tinyLlavaReference;
type RefCase = TinyLlavaRefCase;

const tmp = tempDir('generate-');
const cacheDir = join(tmp.dir, 'graph-cache');
const open: Array<{ g: Generator; m: HfModel }> = [];
after(async () => {
  for (const { g, m } of open) {
    await g.dispose();
    m.close();
  }
  tmp.cleanup();
});

interface Setup {
  c: RefCase;
  dir: string;
  m: HfModel;
  g: Generator;
  image: RgbImage;
}
const setups: Setup[] = [];

before(async () => {
  for (const c of ref.cases) {
    const dir = join(tmp.dir, c.name);
    writeTinyLlava(dir, c.seed, c.options);
    const m = loadHfFolder(dir);
    const size = (m.config as LlavaModelConfig).vision.imageSize;
    const s = makeSample(c.image.seed, c.image.index, { size });
    const g = await createGenerator(m, null, { cacheDir });
    open.push({ g, m });
    setups.push({ c, dir, m, g, image: { data: s.rgb, width: s.scene.size, height: s.scene.size } });
  }
});

const ask = (s: Setup) => ({ image: s.image, messages: [{ role: 'user', content: s.c.question }] });

test('the prompt is the fixture prompt, and the same tokens training puts before the answer', () => {
  for (const s of setups) {
    const ids = s.g.promptIds([{ role: 'user', content: s.c.question }], true);
    assert.equal(ids.length, s.c.expanded_input_ids_length, s.c.name);
    const cfg = s.m.config as LlavaModelConfig;
    const compact = ids.filter((id, i) => id !== cfg.imageTokenIndex || ids[i - 1] !== cfg.imageTokenIndex);
    assert.deepEqual(compact, s.c.input_ids, `${s.c.name}: prompt ids`);
    // training's renderer: the generation prompt is exactly what precedes the first loss token
    const r = renderConversation(
      [
        { role: 'user', content: `<image>\n${s.c.question}` },
        { role: 'assistant', content: 'Two squares and a circle.' },
      ],
      renderSetupOf(s.m),
    );
    const first = r.lossMask.indexOf(1);
    assert.deepEqual(r.ids.slice(0, first), ids, `${s.c.name}: inference prompt == training prefix`);
  }
});

test('greedy decoding with the KV cache gives the PyTorch fixture tokens', async () => {
  for (const s of setups) {
    const r = await s.g.generate(ask(s), { maxNewTokens: s.c.greedy_tokens.length });
    assert.deepEqual(r.ids, s.c.greedy_tokens, s.c.name);
    assert.equal(r.finishReason, 'length');
    assert.equal(r.promptTokens, s.c.expanded_input_ids_length);
  }
});

test('KV-cache decoding equals full recomputation (greedy, 16 tokens, both fixture models)', async () => {
  for (const s of setups) {
    const cached = await s.g.generate(ask(s), { maxNewTokens: 16 });
    const full = await s.g.generate(ask(s), { maxNewTokens: 16, kvCache: false });
    assert.equal(cached.ids.length, 16);
    assert.deepEqual(cached.ids, full.ids, s.c.name);
    assert.equal(cached.text, full.text);
    assert.deepEqual(cached.ids.slice(0, 6), s.c.greedy_tokens);
  }
});

test('seeded sampling: same seed same tokens (cached and recomputed), another seed other tokens', async () => {
  const s = setups[0];
  const o = { maxNewTokens: 16, temperature: 1.3, topK: 50, topP: 0.95, seed: 11 };
  const a = await s.g.generate(ask(s), o);
  const b = await s.g.generate(ask(s), o);
  const full = await s.g.generate(ask(s), { ...o, kvCache: false });
  const other = await s.g.generate(ask(s), { ...o, seed: 12 });
  assert.deepEqual(a.ids, b.ids);
  assert.deepEqual(a.ids, full.ids);
  assert.notDeepEqual(a.ids, other.ids);
  const greedy = await s.g.generate(ask(s), { maxNewTokens: 16 });
  assert.notDeepEqual(a.ids, greedy.ids, 'sampling at T=1.3 departs from greedy');
});

test('streaming: one onToken per id, texts concatenate to the answer', async () => {
  for (const s of setups) {
    const seen: { id: number; text: string }[] = [];
    const r = await s.g.generate(ask(s), { maxNewTokens: 12, onToken: (t) => seen.push(t) });
    assert.deepEqual(
      seen.map((t) => t.id),
      r.ids,
    );
    assert.equal(seen.map((t) => t.text).join(''), r.text);
    assert.equal(r.text, s.m.tokenizer!.decode(r.ids, { skipSpecialTokens: true }));
    assert.ok(r.timings.firstTokenMs > 0 && r.timings.decodeTokens === 11);
  }
});

test('EOS ends generation (generation_config eos ids count), the EOS id is returned but not its text', async () => {
  const s = setups[1];
  const want = (await s.g.generate(ask(s), { maxNewTokens: 6 })).ids;
  const dir = join(tmp.dir, 'eos-model');
  writeTinyLlava(dir, s.c.seed, s.c.options);
  const gc = JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8'));
  gc.eos_token_id = [2, want[2]];
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(gc));
  const g = await loadGenerator(dir, null, { cacheDir });
  try {
    assert.ok(g.eosIds.has(want[2]) && g.eosIds.has(2));
    const seen: string[] = [];
    const r = await g.generate(ask(s), { maxNewTokens: 20, onToken: (t) => seen.push(t.text) });
    assert.equal(r.finishReason, 'eos');
    assert.deepEqual(r.ids, want.slice(0, 3));
    assert.equal(r.text, g.model.tokenizer!.decode(want.slice(0, 2)));
    assert.equal(seen.join(''), r.text);
  } finally {
    await g.dispose();
  }
});

test('stop strings: the answer ends before the stop string, which is never streamed, even across tokens', async () => {
  const s = setups[1];
  const base = await s.g.generate(ask(s), { maxNewTokens: 16 });
  const tok = s.m.tokenizer!;
  // a stop string made of the last character of token k and the first of token k+1
  let k = -1;
  let prefixText = '';
  for (let i = 2; i < base.ids.length - 1 && k < 0; i++) {
    const upto = tok.decode(base.ids.slice(0, i + 1));
    const next = tok.decode(base.ids.slice(0, i + 2));
    if (
      !upto.endsWith('\uFFFD') &&
      next.length > upto.length &&
      !next.slice(upto.length).startsWith('\uFFFD') &&
      upto.length > 0
    ) {
      k = i;
      prefixText = upto;
    }
  }
  assert.ok(k > 0, 'found a token boundary inside the greedy text');
  const full = tok.decode(base.ids.slice(0, k + 2));
  const stop = full.slice(prefixText.length - 1, prefixText.length + 1);
  const streamed: string[] = [];
  const r = await s.g.generate(ask(s), {
    maxNewTokens: 16,
    stop: ['never-there', stop],
    onToken: (t) => streamed.push(t.text),
  });
  assert.equal(r.finishReason, 'stop');
  const at = base.text.indexOf(stop);
  assert.equal(r.text, base.text.slice(0, at));
  assert.equal(streamed.join(''), r.text);
  assert.ok(r.ids.length <= k + 2);
  assert.deepEqual(r.ids, base.ids.slice(0, r.ids.length));
});

test('cancel: an aborted signal ends generation between tokens with the text so far', async () => {
  const s = setups[0];
  const ac = new AbortController();
  let n = 0;
  const r = await s.g.generate(ask(s), {
    maxNewTokens: 50,
    signal: ac.signal,
    onToken: () => {
      if (++n === 3) ac.abort();
    },
  });
  assert.equal(r.finishReason, 'cancelled');
  assert.equal(r.ids.length, 3);
  assert.deepEqual(r.ids, s.c.greedy_tokens.slice(0, 3));
  const pre = new AbortController();
  pre.abort();
  const none = await s.g.generate(ask(s), { signal: pre.signal });
  assert.deepEqual(none.ids, []);
  assert.equal(none.finishReason, 'cancelled');
});

test('text-only prompts, bad requests and bad paths give clear errors', async () => {
  const s = setups[0];
  const r = await s.g.generate(
    { messages: [{ role: 'user', content: 'Describe a red circle.' }] },
    { maxNewTokens: 4 },
  );
  assert.equal(r.ids.length, 4);
  assert.equal(r.promptTokens, s.g.promptIds([{ role: 'user', content: 'Describe a red circle.' }], false).length);
  await assert.rejects(
    s.g.generate({ messages: [{ role: 'user', content: '<image>\nWhat?' }] }),
    (e: Error) => e instanceof GenerateError && /no image/.test(e.message),
  );
  await assert.rejects(s.g.generate({ image: s.image, messages: [] }), /at least one message/);
  await assert.rejects(s.g.generate(ask(s), { maxNewTokens: 0 }), /maxNewTokens/);
  await assert.rejects(s.g.generate(ask(s), { temperature: -2 }), /temperature/);
  await assert.rejects(
    s.g.generate({ image: join(tmp.dir, 'missing.png'), messages: [{ role: 'user', content: 'hi' }] }),
    /missing\.png/,
  );
  await assert.rejects(loadGenerator(join(tmp.dir, 'no-such-model')), /no-such-model: model folder not found/);
  await assert.rejects(
    loadGenerator(s.dir, join(tmp.dir, 'no-such-adapter')),
    /no-such-adapter: adapter folder not found/,
  );
});

test('score: mean NLL over assistant tokens, equal to log-softmax of the full forward computed separately', async () => {
  const s = setups[0];
  const answer = 'Two squares.';
  const messages = [
    { role: 'user', content: s.c.question },
    { role: 'assistant', content: answer },
  ];
  const [res, noAnswer] = await s.g.score([
    { image: s.image, messages },
    { image: s.image, messages: [{ role: 'user', content: s.c.question }] },
  ]);
  // reference: all-position logits of a plain 'full' graph, log-softmax in JS
  const r = renderConversation(
    [
      { role: 'user', content: `<image>\n${s.c.question}` },
      { role: 'assistant', content: answer },
    ],
    renderSetupOf(s.m),
  );
  const sess = await Session.create(serializeModel(buildForwardGraph(s.m, { mode: 'full', image: true })).model);
  try {
    const pv = await s.m.imageProcessor!.process(s.image);
    const out = await sess.run({
      [IO.inputIds]: tensor('int64', [1, r.ids.length], r.ids),
      [IO.attentionMask]: tensor(
        'int64',
        [1, r.ids.length],
        r.ids.map(() => 1),
      ),
      [IO.pixelValues]: tensor('float32', [1, 3, pv.height, pv.width], pv.data),
    });
    const logits = out[IO.logits].data as Float32Array;
    const V = out[IO.logits].dims[2];
    let sum = 0;
    let n = 0;
    for (let t = 1; t < r.ids.length; t++) {
      if (!r.lossMask[t]) continue;
      sum -= logSoftmax(logits.subarray((t - 1) * V, t * V))[r.ids[t]];
      n++;
    }
    assert.equal(res.tokens, n);
    assert.ok(n >= 3);
    assert.ok(Math.abs(res.loss - sum / n) < 1e-4, `${res.loss} vs ${sum / n}`);
  } finally {
    await sess.dispose();
  }
  assert.equal(noAnswer.tokens, 0);
  assert.ok(Number.isNaN(noAnswer.loss));
  // the model's own greedy answer scores lower than a random one
  const greedy = await s.g.generate(ask(s), { maxNewTokens: 8 });
  const [own] = await s.g.score([
    {
      image: s.image,
      messages: [
        { role: 'user', content: s.c.question },
        { role: 'assistant', content: greedy.text },
      ],
    },
  ]);
  assert.ok(own.loss < res.loss, `${own.loss} < ${res.loss}`);
});

test('an adapter changes the output, and equals generating from the merged folder', async () => {
  const s = setups[0];
  const cfg = s.m.config as LlavaModelConfig;
  const spec: LoraSpec = {
    mode: 'lora+projector',
    r: 4,
    alpha: 8,
    dropout: 0,
    targets: ['q_proj', 'v_proj', 'down_proj'],
    includeVision: false,
    useRslora: false,
  };
  const rng = new Rng(3);
  const lora = new Map<string, { a: Float32Array; b: Float32Array }>();
  for (const mod of resolveLoraModules(cfg, targetModulesRegex(cfg, spec))) {
    lora.set(mod.module, {
      a: Float32Array.from({ length: spec.r * mod.inFeatures }, () => 0.3 * rng.normal()),
      b: Float32Array.from({ length: mod.outFeatures * spec.r }, () => 0.3 * rng.normal()),
    });
  }
  const saved = new Map(projectorParams(cfg).map((n) => [n, s.m.weights.get(n).map((x) => x * 1.5)]));
  const adDir = join(tmp.dir, 'adapter');
  saveAdapter(adDir, cfg, spec, lora, saved);
  const withAdapter = await loadGenerator(s.dir, adDir, { cacheDir });
  const mergedDir = join(tmp.dir, 'merged');
  const j = s.m.json;
  saveHfFolder(mergedDir, {
    config: j.config,
    weights: mergeAdapter(s.m.weights, loadAdapter(adDir, cfg)),
    tokenizer: j.tokenizer,
    tokenizerConfig: j.tokenizerConfig,
    preprocessorConfig: j.preprocessorConfig,
    generationConfig: j.generationConfig,
  });
  const merged = await loadGenerator(mergedDir, null, { cacheDir });
  try {
    const a = await withAdapter.generate(ask(s), { maxNewTokens: 10 });
    const b = await merged.generate(ask(s), { maxNewTokens: 10 });
    const base = await s.g.generate(ask(s), { maxNewTokens: 10 });
    assert.deepEqual(a.ids, b.ids);
    assert.notDeepEqual(a.ids, base.ids);
  } finally {
    await withAdapter.dispose();
    await merged.dispose();
  }
});

test('ids past the tokenizer (padded embedding rows) are generated without text and without failing', async () => {
  const dir = join(tmp.dir, 'padded-vocab');
  const { tokenizer, tokenizerConfig } = demoTokenizerFiles();
  const vocab = (tokenizer.model as { vocab: Record<string, number> }).vocab;
  const n = Object.keys(vocab).length;
  const cfg = tinyLlavaConfig(n + 200, vocab['<image>']);
  const weights = randomWeights(expectedTensors(cfg), 4, 0.2);
  // lm_head: every row 0 but two opposite rows past the tokenizer: one of them is always the argmax
  const head = weights.get('language_model.lm_head.weight')!;
  const H = cfg.text.hiddenSize;
  const data = new Float32Array(head.data.length);
  for (let i = 0; i < H; i++) {
    data[(n + 100) * H + i] = 1 + (i % 3);
    data[(n + 101) * H + i] = -(1 + (i % 3));
  }
  weights.set('language_model.lm_head.weight', { ...head, data });
  saveHfFolder(dir, {
    config: cfg.raw,
    weights: memorySource(weights),
    tokenizer,
    tokenizerConfig,
    preprocessorConfig: demoPreprocessorConfig(cfg.vision.imageSize),
  });
  const g = await loadGenerator(dir, null, { cacheDir });
  try {
    const texts: string[] = [];
    const r = await g.generate(
      { image: setups[0].image, messages: [{ role: 'user', content: 'Hi' }] },
      { maxNewTokens: 4, onToken: (t) => texts.push(t.text) },
    );
    assert.equal(r.ids.length, 4);
    assert.ok(
      r.ids.every((id) => id === n + 100 || id === n + 101),
      JSON.stringify(r.ids),
    );
    assert.equal(r.text, '');
    assert.deepEqual(texts, ['', '', '', '']);
  } finally {
    await g.dispose();
  }
});

test('dispose releases the sessions; a disposed generator refuses work', async () => {
  const g = await loadGenerator(setups[0].dir, null, { cacheDir });
  await g.dispose();
  await g.dispose();
  await assert.rejects(g.generate(ask(setups[0])), /disposed/);
});
