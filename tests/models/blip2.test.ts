// BLIP-2 OPT (Blip2ForConditionalGeneration) as a family: config.json with transformers' defaults and the published
// tensor names, the processor's prompt (num_query_tokens image tokens, then </s> and the text), and a tiny random
// BLIP-2 against the float64 PyTorch reference written from modeling_blip_2.py / modeling_opt.py
// (tests/fixtures/models/blip2-reference.json): pixel values, logits, greedy captions and answers through the
// generator, the training loss and every tensor's gradient, and a LoRA (q_proj, v_proj) + Q-Former adapter saved with
// PEFT's keys that scores as PyTorch does with the adapter merged under PEFT's rules.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { ConfigError, parseHfConfig } from '../../src-main/models/config';
import type { Blip2ModelConfig } from '../../src-main/models/families/blip2/config';
import { lazyRandomBlip2Weights, writeTinyBlip2 } from '../../src-main/models/demo/tiny-blip2';
import {
  adapterFromValues,
  buildTrainableVlm,
  loadVlm,
  renderSetupOf,
  saveAdapter,
} from '../../src-main/models/program';
import { buildForwardGraph, IO } from '../../src-main/models/llava';
import { createGenerator, renderPromptIds } from '../../src-main/models/generate';
import { loadAdapter as loadPeft } from '../../src-main/models/peft';
import { loadHfFolder } from '../../src-main/models/hf-folder';
import { SafetensorsFile } from '../../src-main/models/weights/safetensors';
import { expectedTensors } from '../../src-main/models/weights/names';
import { runnableKind } from '../../src-main/models/registry';
import { estimateTrainingMemory, shapeOfVlm } from '../../src-main/training/memory';
import { serializeModel, Session, StepExecutor, tensor } from '../../src-main/engine';
import {
  BLIP2_ANSWER,
  BLIP2_LORA,
  BLIP2_OPTIONS,
  BLIP2_QUESTION,
  blip2AdapterValues,
  blip2Image,
} from '../fixtures/models/blip2';
import { gradDirection } from '../fixtures/models/idefics3';

const { dir, cleanup } = tempDir('blip2-');
after(cleanup);
const ref = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/models/blip2-reference.json'), 'utf8'))
  .blip2 as {
  seed: number;
  model_sha256: string;
  pixel_values: number[];
  input_ids: number[];
  caption_ids: number[];
  caption_greedy: number[];
  caption_logits: number[];
  train_ids: number[];
  train_labels: number[];
  logits_positions: number[];
  logits: number[][];
  greedy: number[];
  loss: number;
  adapter_loss: number;
  grads: Record<string, { norm: number; dot: number; head: number[] }>;
};
const modelDir = join(dir, 'model');
writeTinyBlip2(modelDir, ref.seed, BLIP2_OPTIONS);
const S = 32;
const pixels = (dtype: 'float32' | 'float64' = 'float32') =>
  tensor(
    dtype,
    [1, 3, S, S],
    (dtype === 'float32' ? Float32Array.from(ref.pixel_values) : Float64Array.from(ref.pixel_values)) as Float32Array,
  );
const ids64 = (ids: number[]) => tensor('int64', [1, ids.length], BigInt64Array.from(ids.map(BigInt)));
const ones = (n: number) => tensor('int64', [1, n], new BigInt64Array(n).fill(1n));
const vqa = [{ role: 'user', content: BLIP2_QUESTION }];
const vqaTrain = [...vqa, { role: 'assistant', content: BLIP2_ANSWER }];
const placeImageFirst = (msgs: Array<{ role: string; content: string }>) =>
  msgs.map((x, i) => (i === 0 ? { ...x, content: `<image>\n${x.content}` } : x));

/** Salesforce/blip2-opt-2.7b's config.json (the updated repository: image_token_index, fields at their values). */
const OPT27 = {
  architectures: ['Blip2ForConditionalGeneration'],
  model_type: 'blip-2',
  image_token_index: 50265,
  num_query_tokens: 32,
  initializer_factor: 1.0,
  initializer_range: 0.02,
  qformer_config: { model_type: 'blip_2_qformer', cross_attention_frequency: 2, encoder_hidden_size: 1408 },
  text_config: {
    model_type: 'opt',
    _name_or_path: 'facebook/opt-2.7b',
    architectures: ['OPTForCausalLM'],
    eos_token_id: 50118,
    ffn_dim: 10240,
    hidden_size: 2560,
    num_attention_heads: 32,
    num_hidden_layers: 32,
    prefix: '</s>',
    torch_dtype: 'float16',
    vocab_size: 50304,
    word_embed_proj_dim: 2560,
  },
  use_decoder_only_language_model: true,
  vision_config: { model_type: 'blip_2_vision_model', dropout: 0.0 },
};

test('Salesforce/blip2-opt-2.7b config.json: defaults, tensor names and shapes, ~3.8B parameters; bad configs name the field', () => {
  const c = parseHfConfig(OPT27) as Blip2ModelConfig;
  assert.equal(c.kind, 'blip2');
  assert.equal(runnableKind(c), 'vlm');
  assert.equal(c.vision.hiddenSize, 1408);
  assert.equal(c.vision.numHiddenLayers, 39);
  assert.equal(c.vision.numPositions, 257);
  assert.equal(c.vision.hiddenAct, 'gelu');
  assert.equal(c.qformer.numHiddenLayers, 12);
  assert.equal(c.qformer.encoderHiddenSize, 1408);
  assert.equal(c.text.hiddenSize, 2560);
  assert.deepEqual(c.text.eosTokenIds, [50118]);
  assert.equal(c.numImageTokens, 32);
  const specs = expectedTensors(c);
  const shape = new Map(specs.map((s) => [s.name, s.shape]));
  assert.deepEqual(shape.get('query_tokens'), [1, 32, 768]);
  assert.deepEqual(shape.get('vision_model.embeddings.class_embedding'), [1, 1, 1408]);
  assert.deepEqual(shape.get('vision_model.embeddings.position_embedding'), [1, 257, 1408]);
  assert.deepEqual(shape.get('vision_model.encoder.layers.38.self_attn.qkv.weight'), [4224, 1408]);
  assert.deepEqual(shape.get('vision_model.encoder.layers.0.self_attn.q_bias'), [1408]);
  assert.deepEqual(shape.get('qformer.encoder.layer.0.crossattention.attention.key.weight'), [768, 1408]);
  assert.ok(
    !shape.has('qformer.encoder.layer.1.crossattention.attention.key.weight'),
    'cross-attention every second layer',
  );
  assert.deepEqual(shape.get('qformer.encoder.layer.11.output_query.LayerNorm.weight'), [768]);
  assert.deepEqual(shape.get('language_projection.weight'), [2560, 768]);
  assert.deepEqual(shape.get('language_model.model.decoder.embed_positions.weight'), [2050, 2560]);
  assert.deepEqual(shape.get('language_model.model.decoder.layers.31.self_attn.v_proj.weight'), [2560, 2560]);
  const params = specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  assert.ok(Math.abs(params - 3.745e9) < 0.02e9, `blip2-opt-2.7b has ~3.74B parameters, got ${params}`);
  const err = (patch: Record<string, unknown>, re: RegExp) =>
    assert.throws(
      () => parseHfConfig({ ...OPT27, ...patch }),
      (e: unknown) => e instanceof ConfigError && re.test((e as Error).message),
    );
  err({ image_token_index: undefined }, /image_token_index.*before transformers 4\.47/);
  err({ text_config: { model_type: 't5' } }, /text_config\.model_type.*Flan-T5/);
  err({ qformer_config: { hidden_size: 770 } }, /qformer_config\.num_attention_heads/);
  err({ image_token_index: 60000 }, /image_token_index.*outside/);
});

test('the tiny folder: published layout, Blip2Processor prompt ids, BlipImageProcessor pixels as PyTorch gives them', async () => {
  assert.equal(
    createHash('sha256')
      .update(readFileSync(join(modelDir, 'model.safetensors')))
      .digest('hex'),
    ref.model_sha256,
  );
  const m = loadVlm(modelDir);
  try {
    assert.equal(m.weights.names().length, expectedTensors(m.config).length);
    assert.equal(m.chatTemplate.origin, 'built-in BLIP-2 template');
    const setup = renderSetupOf(m);
    assert.deepEqual(renderPromptIds(setup, [{ role: 'user', content: `<image>\n${BLIP2_QUESTION}` }]), ref.input_ids);
    assert.deepEqual(renderPromptIds(setup, [{ role: 'user', content: '<image>\n' }]), ref.caption_ids);
    // training sample: the answer and "\n" are the loss, image tokens, </s> and the question are not
    const { renderConversation } = await import('../../src-main/datasets/render');
    const r = renderConversation(
      [
        { role: 'user', content: `<image>\n${BLIP2_QUESTION}` },
        { role: 'assistant', content: BLIP2_ANSWER },
      ] as never,
      setup,
    );
    assert.deepEqual(r.ids, ref.train_ids);
    assert.deepEqual(
      r.ids.map((x, i) => (r.lossMask[i] ? x : -100)),
      ref.train_labels,
    );
    // caption annotations train prompt-free: image tokens, </s>, the caption and "\n" (in the loss)
    const { renderItem } = await import('../../src-main/datasets/render');
    const [cap] = renderItem(
      { id: 1, annotations: [{ kind: 'caption', data: { text: 'two red circles' } }] as never, hasImage: true },
      setup,
    );
    assert.deepEqual(cap.ids, [
      ...ref.caption_ids,
      ...m.tokenizer.encode('two red circles\n', { addSpecialTokens: false }),
    ]);
    assert.equal(cap.lossMask.indexOf(1), ref.caption_ids.length);
    const f = await m.images.process(blip2Image());
    assert.equal(f.frames, 1);
    let d = 0;
    f.data.forEach((v, i) => (d = Math.max(d, Math.abs(v - ref.pixel_values[i]))));
    assert.ok(d < 1e-5, `max |pixel - reference| = ${d}`);
  } finally {
    m.close();
  }
});

test('logits match PyTorch within 1e-4; the generator gives its greedy answer and caption; score gives its loss', async () => {
  const m = loadVlm(modelDir);
  try {
    const sess = await Session.create(serializeModel(buildForwardGraph(m)).model, { threads: 1 });
    const T = ref.input_ids.length;
    const r = await sess.run({
      [IO.inputIds]: ids64(ref.input_ids),
      [IO.attentionMask]: ones(T),
      [IO.pixelValues]: pixels(),
    });
    await sess.dispose();
    const V = m.config.text.vocabSize;
    const lg = r[IO.logits].data as Float32Array;
    let d = 0;
    ref.logits_positions.forEach((p, k) => {
      for (let j = 0; j < V; j++) d = Math.max(d, Math.abs(lg[p * V + j] - ref.logits[k][j]));
    });
    assert.ok(d < 1e-4, `max |logit - reference| = ${d}`);
    const gen = await createGenerator(m, null, { cacheDir: join(dir, 'cache') });
    try {
      const a = await gen.generate({ image: blip2Image(), messages: vqa }, { maxNewTokens: ref.greedy.length });
      assert.deepEqual(a.ids, ref.greedy);
      assert.equal(a.promptTokens, ref.input_ids.length);
      const c = await gen.generate(
        { image: blip2Image(), messages: [{ role: 'user', content: '' }] },
        { maxNewTokens: ref.caption_greedy.length },
      );
      assert.deepEqual(c.ids, ref.caption_greedy);
      // chat: a follow-up question continues the same prompt (image tokens and </s> once, "\n" after each answer)
      const follow = [...vqaTrain, { role: 'user', content: 'Question: what color is it? Answer:' }];
      const f = await gen.generate({ image: blip2Image(), messages: follow }, { maxNewTokens: 2 });
      const want = [
        ...ref.input_ids.slice(0, m.numImageTokens),
        ...m.tokenizer.encode(`${BLIP2_QUESTION} ${BLIP2_ANSWER}\nQuestion: what color is it? Answer:`),
      ];
      assert.equal(f.promptTokens, want.length);
      assert.deepEqual(renderPromptIds(renderSetupOf(m), placeImageFirst(follow)), want);
      const [s] = await gen.score([{ image: blip2Image(), messages: vqaTrain }]);
      assert.ok(Math.abs(s.loss - ref.loss) < 1e-4, `score loss ${s.loss} vs ${ref.loss}`);
      assert.equal(s.tokens, ref.train_labels.filter((x) => x !== -100).length);
    } finally {
      await gen.dispose();
    }
  } finally {
    m.close();
  }
});

test("float64 training step: the loss and every tensor's gradient match PyTorch", async () => {
  const m = loadVlm(modelDir);
  try {
    const tv = buildTrainableVlm(m, 'full', null, { fullParts: ['vision', 'projector', 'decoder'], dtype: 'float64' });
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
        pixel_values: pixels('float64'),
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
      const dv = gradDirection(p.name, g.length);
      let dot = 0;
      for (let i = 0; i < g.length; i++) dot += g[i] * dv[i];
      const tol = 1e-5 * Math.max(1, want.norm);
      assert.ok(Math.abs(Math.sqrt(n2) - want.norm) < tol, `${p.name}: |grad| ${Math.sqrt(n2)} vs ${want.norm}`);
      assert.ok(
        Math.abs(dot - want.dot) < 1e-5 * Math.max(1, Math.abs(want.dot), want.norm),
        `${p.name}: grad . d ${dot} vs ${want.dot}`,
      );
      want.head.forEach((v, i) => assert.ok(Math.abs(g[i] - v) < tol, `${p.name}[${i}]: ${g[i]} vs ${v}`));
    }
    // the gradient reaches every part: vision tower, queries, Q-Former, projection, decoder
    for (const n of [
      'vision_model.embeddings.patch_embedding.weight',
      'query_tokens',
      'qformer.encoder.layer.2.crossattention.attention.value.weight',
      'language_projection.weight',
      'language_model.model.decoder.embed_positions.weight',
    ])
      assert.ok(ref.grads[n].norm > 0, `${n} has a gradient`);
  } finally {
    m.close();
  }
});

test('a streamed float16 folder (bench:blip2-large): F16 tensors, torch_dtype float16, the lazy source values, the same bytes on a second write', () => {
  const write = (name: string) => {
    const d = join(dir, name);
    writeTinyBlip2(d, 5, BLIP2_OPTIONS, { dtype: 'F16', stream: true });
    return d;
  };
  const a = write('streamed-a');
  const b = write('streamed-b');
  const bytes = (d: string) => readFileSync(join(d, 'model.safetensors'));
  assert.ok(bytes(a).equals(bytes(b)));
  const m = loadHfFolder(a);
  try {
    assert.equal(m.json.config.torch_dtype, 'float16');
    const specs = expectedTensors(m.config);
    const names = m.weights.names();
    assert.equal(names.length, specs.length);
    assert.ok(names.every((n) => m.weights.info(n).dtype === 'F16'));
    // the values the lazy source makes (again on every read), rounded to float16; layer norms near 1, the rest near 0
    const src = lazyRandomBlip2Weights(specs, 5, BLIP2_OPTIONS.initStd ?? 0.02);
    for (const n of [
      'language_model.model.decoder.layers.0.self_attn.q_proj.weight',
      'vision_model.post_layernorm.weight',
    ]) {
      const want = src.get(n);
      assert.deepEqual(src.get(n), want);
      const got = m.weights.get(n);
      assert.equal(got.length, want.length);
      for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-3 * Math.abs(want[i]) + 1e-7, n);
      const mean = got.reduce((x, y) => x + y, 0) / got.length;
      assert.ok(Math.abs(mean - (n.endsWith('layernorm.weight') ? 1 : 0)) < 0.1, `${n}: mean ${mean}`);
    }
  } finally {
    m.close();
  }
});

test("a LoRA (q_proj, v_proj) + Q-Former adapter has PEFT's keys for Blip2ForConditionalGeneration and scores as PyTorch under PEFT rules", async () => {
  const m = loadVlm(modelDir);
  const adir = join(dir, 'adapter');
  try {
    const values = blip2AdapterValues(m);
    saveAdapter(adir, m, 'lora+projector', BLIP2_LORA, values);
    const cfg = JSON.parse(readFileSync(join(adir, 'adapter_config.json'), 'utf8'));
    assert.deepEqual(cfg.modules_to_save, ['qformer', 'language_projection']);
    const re = new RegExp(`^(?:${cfg.target_modules})$`);
    assert.ok(re.test('language_model.model.decoder.layers.0.self_attn.q_proj'));
    assert.ok(re.test('language_model.model.decoder.layers.1.self_attn.v_proj'));
    assert.ok(!re.test('language_model.model.decoder.layers.0.self_attn.k_proj'));
    const f = SafetensorsFile.open(join(adir, 'adapter_model.safetensors'));
    const keys = f.names().sort();
    f.close();
    assert.ok(keys.includes('base_model.model.language_model.model.decoder.layers.0.self_attn.q_proj.lora_A.weight'));
    assert.ok(keys.includes('base_model.model.language_model.model.decoder.layers.1.self_attn.v_proj.lora_B.weight'));
    assert.ok(keys.includes('base_model.model.qformer.encoder.layer.0.crossattention.attention.query.weight'));
    assert.ok(keys.includes('base_model.model.language_projection.bias'));
    assert.ok(
      !keys.includes('base_model.model.query_tokens'),
      'query_tokens is a parameter, not a module PEFT can save',
    );
    const back = loadPeft(adir, m.config);
    assert.equal(back.modules.length, 4);
    const gen = await createGenerator(m, back, { cacheDir: join(dir, 'cache') });
    try {
      const [s] = await gen.score([{ image: blip2Image(), messages: vqaTrain }]);
      assert.ok(Math.abs(s.loss - ref.adapter_loss) < 1e-4, `adapter loss ${s.loss} vs ${ref.adapter_loss}`);
    } finally {
      await gen.dispose();
    }
    assert.equal(adapterFromValues(m, 'lora+projector', BLIP2_LORA, values).saved.size, back.saved.size);
  } finally {
    m.close();
  }
});

test('bad folders: a Q-Former whose cross-attention layers differ from the config, a missing tensor: errors name the tensor', () => {
  const variant = (name: string, edit: (raw: Record<string, any>) => void) => {
    const d = join(dir, name);
    cpSync(modelDir, d, { recursive: true });
    const raw = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    edit(raw);
    writeFileSync(join(d, 'config.json'), JSON.stringify(raw));
    return d;
  };
  // cross_attention_frequency 1: layer 1 should cross-attend, and the file has no crossattention tensors for it
  assert.throws(
    () => loadHfFolder(variant('freq1', (r) => (r.qformer_config.cross_attention_frequency = 1))),
    /qformer\.encoder\.layer\.1\.crossattention/,
  );
  // frequency 3: layer 2's crossattention tensors are in the file but not in the model
  assert.throws(
    () => loadHfFolder(variant('freq3', (r) => (r.qformer_config.cross_attention_frequency = 3))),
    /qformer\.encoder\.layer\.2\.crossattention/,
  );
  // more query tokens than the checkpoint's query_tokens holds
  assert.throws(() => loadHfFolder(variant('nq', (r) => (r.num_query_tokens = 5))), /query_tokens/);
});

test('memory: the estimate for BLIP-2 OPT-2.7B says whether LoRA on q_proj/v_proj fits before starting', () => {
  const c = parseHfConfig(OPT27) as Blip2ModelConfig;
  const shape = shapeOfVlm(c);
  const setup = {
    method: 'lora' as const,
    rank: 16,
    targetModules: ['q_proj', 'v_proj'] as const,
    dropout: 0.05,
    batchSize: 2,
    maxSeqLen: 32 + 40,
  };
  const small = estimateTrainingMemory(
    shape,
    { ...setup, targetModules: [...setup.targetModules] },
    { availableBytes: 8 * 2 ** 30, totalBytes: 16 * 2 ** 30 },
  );
  // float32 weights alone: 3.74B x 4 bytes, ~15 GB, as the issue says
  assert.ok(Math.abs(small.breakdown.weights - 3.745e9 * 4) < 0.1e9 * 4, `weights ${small.breakdown.weights}`);
  assert.equal(small.fits, false);
  assert.match(small.summary, /needs about/);
  const big = estimateTrainingMemory(
    shape,
    { ...setup, targetModules: [...setup.targetModules] },
    { availableBytes: 64 * 2 ** 30, totalBytes: 64 * 2 ** 30 },
  );
  assert.equal(big.fits, true);
});
