// The OPT decoder (OPTForCausalLM, BLIP-2's language model): config.json with OPTConfig's defaults, the published
// tensor names, and a tiny random OPT against the float64 PyTorch reference written from modeling_opt.py
// (tests/fixtures/models/blip2-reference.json): logits, greedy tokens through the KV-cache prefill + decode graphs,
// the training loss and every tensor's gradient through our autodiff, and PEFT's q_proj/v_proj LoRA modules.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { ConfigError, parseHfConfig, type TextModelConfig } from '../../src-main/models/config';
import { writeTinyOpt } from '../../src-main/models/demo/tiny-blip2';
import { loadHfFolder } from '../../src-main/models/hf-folder';
import { buildForwardGraph, IO } from '../../src-main/models/llava';
import { buildTrainableVlm } from '../../src-main/models/program';
import { resolveLoraModules, targetModulesRegex } from '../../src-main/models/peft';
import { expectedTensors } from '../../src-main/models/weights/names';
import { serializeModel, Session, StepExecutor, tensor } from '../../src-main/engine';
import { OPT_OPTIONS } from '../fixtures/models/blip2';
import { gradDirection } from '../fixtures/models/idefics3';

const { dir, cleanup } = tempDir('opt-');
after(cleanup);
const ref = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/models/blip2-reference.json'), 'utf8'))
  .opt as {
  seed: number;
  model_sha256: string;
  input_ids: number[];
  train_ids: number[];
  train_labels: number[];
  logits_positions: number[];
  logits: number[][];
  greedy: number[];
  loss: number;
  grads: Record<string, { norm: number; dot: number; head: number[] }>;
};
const modelDir = join(dir, 'opt');
writeTinyOpt(modelDir, ref.seed, OPT_OPTIONS);
const ids64 = (ids: number[]) => tensor('int64', [1, ids.length], BigInt64Array.from(ids.map(BigInt)));
const ones = (n: number) => tensor('int64', [1, n], new BigInt64Array(n).fill(1n));

test('facebook/opt-2.7b config.json: OPTConfig defaults, tensor names, errors naming the field', () => {
  const c = parseHfConfig({
    model_type: 'opt',
    architectures: ['OPTForCausalLM'],
    hidden_size: 2560,
    ffn_dim: 10240,
    num_attention_heads: 32,
    num_hidden_layers: 32,
    word_embed_proj_dim: 2560,
    prefix: '</s>',
  }) as TextModelConfig;
  assert.equal(c.kind, 'text');
  const t = c.text;
  assert.equal(t.vocabSize, 50272);
  assert.equal(t.maxPositionEmbeddings, 2048);
  assert.equal(t.hiddenAct, 'relu');
  assert.equal(t.headDim, 80);
  assert.equal(t.tieWordEmbeddings, true);
  assert.deepEqual(t.eosTokenIds, [2]);
  assert.equal(t.opt!.layerNormBefore, true);
  const specs = expectedTensors(c);
  const names = new Map(specs.map((s) => [s.name, s.shape]));
  assert.deepEqual(names.get('model.decoder.embed_positions.weight'), [2050, 2560]);
  assert.deepEqual(names.get('model.decoder.layers.31.fc1.weight'), [10240, 2560]);
  assert.deepEqual(names.get('model.decoder.layers.0.self_attn.out_proj.bias'), [2560]);
  assert.ok(names.has('model.decoder.final_layer_norm.bias'));
  assert.ok(!names.has('lm_head.weight'), 'tied head');
  const params = specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  assert.ok(Math.abs(params - 2.65e9) < 0.05e9, `opt-2.7b has ~2.65B parameters, got ${params}`);
  assert.throws(
    () => parseHfConfig({ model_type: 'opt', hidden_size: 1024, num_attention_heads: 16, word_embed_proj_dim: 512 }),
    (e: unknown) => e instanceof ConfigError && /word_embed_proj_dim/.test((e as Error).message),
  );
  assert.throws(() => parseHfConfig({ model_type: 'opt', activation_function: 'tanhh' }), /activation_function/);
  assert.throws(
    () => parseHfConfig({ model_type: 'opt', hidden_size: 100, num_attention_heads: 3 }),
    /num_attention_heads/,
  );
  // opt-350m style post-LN has no final layer norm
  const post = parseHfConfig({ model_type: 'opt', do_layer_norm_before: false }) as TextModelConfig;
  assert.ok(!expectedTensors(post).some((s) => s.name === 'model.decoder.final_layer_norm.weight'));
});

test('the tiny OPT folder is the published layout and the reference weights', () => {
  assert.equal(
    createHash('sha256')
      .update(readFileSync(join(modelDir, 'model.safetensors')))
      .digest('hex'),
    ref.model_sha256,
  );
  const m = loadHfFolder(modelDir);
  try {
    assert.equal(m.config.kind, 'text');
    assert.equal(m.weights.names().length, expectedTensors(m.config).length);
    // OPT's tokenizer prepends </s> (id 2)
    assert.equal(ref.input_ids[0], 2);
    assert.deepEqual(m.tokenizer!.encode('a red circle above a blue'), ref.input_ids);
  } finally {
    m.close();
  }
});

test('logits match PyTorch within 1e-4; greedy decoding with the KV cache gives its tokens', async () => {
  const m = loadHfFolder(modelDir);
  try {
    const V = (m.config as TextModelConfig).text.vocabSize;
    const full = await Session.create(serializeModel(buildForwardGraph(m)).model, { threads: 1 });
    const T = ref.input_ids.length;
    const r = await full.run({ [IO.inputIds]: ids64(ref.input_ids), [IO.attentionMask]: ones(T) });
    await full.dispose();
    const lg = r[IO.logits].data as Float32Array;
    let d = 0;
    ref.logits_positions.forEach((p, k) => {
      for (let j = 0; j < V; j++) d = Math.max(d, Math.abs(lg[p * V + j] - ref.logits[k][j]));
    });
    assert.ok(d < 1e-4, `max |logit - reference| = ${d}`);
    // prefill + decode: learned positions of the new token come from past + mask
    const L = (m.config as TextModelConfig).text.numHiddenLayers;
    const prefill = await Session.create(serializeModel(buildForwardGraph(m, { mode: 'prefill' })).model, {
      threads: 1,
    });
    const decode = await Session.create(serializeModel(buildForwardGraph(m, { mode: 'decode' })).model, { threads: 1 });
    const argmax = (x: Float32Array) => x.reduce((b, v, i) => (v > x[b] ? i : b), 0);
    let out = await prefill.run({ [IO.inputIds]: ids64(ref.input_ids), [IO.attentionMask]: ones(T) });
    const greedy: number[] = [];
    let len = T;
    for (let s = 0; s < ref.greedy.length; s++) {
      const next = argmax(out[IO.logits].data as Float32Array);
      greedy.push(next);
      if (s === ref.greedy.length - 1) break;
      const feeds: Record<string, ReturnType<typeof tensor>> = {
        [IO.inputIds]: ids64([next]),
        [IO.attentionMask]: ones(len + 1),
      };
      for (let i = 0; i < L; i++) {
        feeds[IO.pastKey(i)] = out[IO.presentKey(i)];
        feeds[IO.pastValue(i)] = out[IO.presentValue(i)];
      }
      out = await decode.run(feeds);
      len++;
    }
    await prefill.dispose();
    await decode.dispose();
    assert.deepEqual(greedy, ref.greedy);
  } finally {
    m.close();
  }
});

test("float64 training step: the loss and every tensor's gradient match PyTorch", async () => {
  const m = loadHfFolder(modelDir);
  try {
    const tv = buildTrainableVlm(m, 'full', null, { fullParts: ['decoder'], dtype: 'float64' });
    assert.deepEqual(tv.params.map((p) => p.name).sort(), Object.keys(ref.grads).sort(), 'every tensor trains');
    const T = ref.train_ids.length;
    const ex = await StepExecutor.create(
      { params: tv.params, forward: tv.forward, outputGrads: true, session: { optimization: 'basic', threads: 1 } },
      tv.initialValues(0),
    );
    const r = await ex.step(
      {
        input_ids: ids64(ref.train_ids),
        attention_mask: ones(T),
        labels: tensor('int64', [1, T], BigInt64Array.from(ref.train_labels.map(BigInt))),
      },
      0,
    );
    await ex.dispose();
    assert.ok(Math.abs(r.loss - ref.loss) < 1e-6, `loss ${r.loss} vs ${ref.loss}`);
    for (const p of tv.params) {
      const g = r.grads[p.name].data as Float64Array;
      const want = ref.grads[p.name];
      let n2 = 0;
      for (const x of g) n2 += x * x;
      const dir = gradDirection(p.name, g.length);
      let dot = 0;
      for (let i = 0; i < g.length; i++) dot += g[i] * dir[i];
      const tol = 1e-5 * Math.max(1, want.norm);
      assert.ok(want.norm > 0, `${p.name}: the reference has a gradient`);
      assert.ok(Math.abs(Math.sqrt(n2) - want.norm) < tol, `${p.name}: |grad| ${Math.sqrt(n2)} vs ${want.norm}`);
      assert.ok(
        Math.abs(dot - want.dot) < 1e-5 * Math.max(1, Math.abs(want.dot), want.norm),
        `${p.name}: grad . d ${dot} vs ${want.dot}`,
      );
      want.head.forEach((v, i) => assert.ok(Math.abs(g[i] - v) < tol, `${p.name}[${i}]: ${g[i]} vs ${v}`));
    }
  } finally {
    m.close();
  }
});

test("LoRA targets use OPT's names: q_proj/v_proj, o_proj as out_proj, up/down as fc1/fc2", () => {
  const c = parseHfConfig({ model_type: 'opt', num_hidden_layers: 2 });
  const mods = (targets: string[]) =>
    resolveLoraModules(c, targetModulesRegex(c, { targets: targets as never, includeVision: false })).map(
      (x) => x.module,
    );
  assert.deepEqual(mods(['q_proj', 'v_proj']), [
    'model.decoder.layers.0.self_attn.v_proj',
    'model.decoder.layers.0.self_attn.q_proj',
    'model.decoder.layers.1.self_attn.v_proj',
    'model.decoder.layers.1.self_attn.q_proj',
  ]);
  assert.deepEqual(mods(['o_proj', 'up_proj', 'down_proj']).slice(0, 3), [
    'model.decoder.layers.0.self_attn.out_proj',
    'model.decoder.layers.0.fc1',
    'model.decoder.layers.0.fc2',
  ]);
  assert.throws(() => mods(['gate_proj']), /gate_proj/);
});
