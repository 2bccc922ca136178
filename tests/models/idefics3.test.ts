// Idefics3 / SmolVLM as a family: config (transformers' defaults, sizes refused from the config alone), the
// published folder layout, the processor's tiles and tokens, and the whole model against the float64 PyTorch
// reference (tests/fixtures/models/idefics3-reference.json): logits, greedy tokens, the training loss and every
// tensor's gradient, and a LoRA + connector adapter saved as PEFT writes it for Idefics3ForConditionalGeneration.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { parseHfConfig, ConfigError } from '../../src-main/models/config';
import { writeTinyIdefics3 } from '../../src-main/models/demo/tiny-idefics3';
import { Idefics3ImageProcessor, imagePromptString } from '../../src-main/models/families/idefics3/processor';
import {
  adapterFromValues,
  buildTrainableVlm,
  loadVlm,
  renderSetupOf,
  saveAdapter,
} from '../../src-main/models/program';
import { buildForwardGraph, IO } from '../../src-main/models/llava';
import { createGenerator, renderPromptIds } from '../../src-main/models/generate';
import { loadAdapter as loadPeft, mergeAdapter } from '../../src-main/models/peft';
import { saveHfFolder } from '../../src-main/models/hf-folder';
import { SafetensorsFile } from '../../src-main/models/weights/safetensors';
import { runnableKind } from '../../src-main/models/registry';
import { serializeModel, Session, StepExecutor, tensor } from '../../src-main/engine';
import {
  ADAPTER_LORA,
  ANSWER,
  gradDirection,
  IDEFICS3_OPTIONS,
  QUESTION,
  referenceAdapterValues,
  referenceImage,
} from '../fixtures/models/idefics3';

const { dir, cleanup } = tempDir('idefics3-');
after(cleanup);
const ref = JSON.parse(
  readFileSync(join(import.meta.dirname, '../fixtures/models/idefics3-reference.json'), 'utf8'),
) as {
  seed: number;
  model_sha256: string;
  frames: number;
  rows: number;
  cols: number;
  frames_u8_base64: string;
  expanded_prompt: string;
  input_ids: number[];
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
writeTinyIdefics3(modelDir, ref.seed, IDEFICS3_OPTIONS);
const refU8 = new Uint8Array(Buffer.from(ref.frames_u8_base64, 'base64'));
/** The reference frames as pixel_values: x / 255 (float32), then (x - 0.5) / 0.5, as numpy does it. */
function refPixels(dtype: 'float32' | 'float64' = 'float32') {
  const S = 32;
  const hw = S * S;
  const out = dtype === 'float32' ? new Float32Array(refU8.length) : new Float64Array(refU8.length);
  for (let f = 0; f < ref.frames; f++)
    for (let c = 0; c < 3; c++)
      for (let i = 0; i < hw; i++)
        out[(f * 3 + c) * hw + i] = Math.fround((Math.fround(refU8[f * hw * 3 + i * 3 + c] * (1 / 255)) - 0.5) / 0.5);
  return tensor(dtype, [ref.frames, 3, S, S], out as Float32Array);
}

test('SmolVLM-256M config.json: transformers defaults, pixel-shuffle token count, published tensor names', () => {
  const c = parseHfConfig({
    architectures: ['Idefics3ForConditionalGeneration'],
    model_type: 'idefics3',
    image_token_id: 49190,
    scale_factor: 4,
    tie_word_embeddings: false,
    text_config: {
      model_type: 'llama',
      hidden_size: 576,
      intermediate_size: 1536,
      num_attention_heads: 9,
      num_hidden_layers: 30,
      num_key_value_heads: 3,
      rms_norm_eps: 1e-5,
      rope_theta: 100000,
      vocab_size: 49280,
      max_position_embeddings: 8192,
    },
    vision_config: {
      model_type: 'idefics3_vision',
      hidden_size: 768,
      image_size: 512,
      intermediate_size: 3072,
      num_attention_heads: 12,
      num_hidden_layers: 12,
      patch_size: 16,
    },
  });
  if (c.kind !== 'idefics3') throw new Error('idefics3 expected');
  assert.equal(runnableKind(c), 'vlm');
  assert.equal(c.numImageTokens, 64); // (512 / 16)^2 / 4^2
  assert.deepEqual(c.connector, { inFeatures: 768 * 16, outFeatures: 576 });
  assert.equal(c.vision.hiddenAct, 'gelu_pytorch_tanh');
  assert.equal(c.vision.layerNormEps, 1e-6);
  assert.equal(c.text.rmsNormEps, 1e-5);
  assert.equal(c.tieWordEmbeddings, false);
  const d = parseHfConfig({
    model_type: 'smolvlm',
    vision_config: { image_size: 256 },
    text_config: { vocab_size: 128259 },
  });
  if (d.kind !== 'idefics3') throw new Error('idefics3 expected');
  // Idefics3VisionConfig defaults: 1152 hidden, patch 32 (256 px -> 8 x 8 patches -> 16 tokens at scale 2)
  assert.equal(d.vision.hiddenSize, 1152);
  assert.equal(d.numImageTokens, 16);
  assert.equal(d.imageTokenIndex, 128257);
  // the default 224 px gives 7 x 7 patches, which pixel shuffle by 2 cannot take (transformers fails there too)
  assert.throws(
    () => parseHfConfig({ model_type: 'idefics3', vision_config: { image_size: 224, patch_size: 32 } }),
    /scale_factor.*7 x 7/,
  );
});

test('bad configs: unknown model_type lists the families; absurd sizes are refused from the config alone, naming the field', () => {
  assert.throws(
    () => parseHfConfig({ model_type: 'instructblip' }, 'x/config.json'),
    (e: Error) =>
      e instanceof ConfigError &&
      /x\/config.json: field "model_type": unknown model_type "instructblip" \(supported: llava, idefics3, smolvlm, blip-2, clip/.test(
        e.message,
      ),
  );
  const t0 = performance.now();
  assert.throws(
    () => parseHfConfig({ model_type: 'llava', text_config: { num_hidden_layers: 1000000 } }),
    /field "text_config.num_hidden_layers": 1000000 is larger than any model/,
  );
  assert.throws(
    () => parseHfConfig({ model_type: 'idefics3', vision_config: { hidden_size: 10_000_000 } }),
    /field "vision_config.hidden_size"/,
  );
  assert.throws(() => parseHfConfig({ model_type: 'llama', vocab_size: 1e9 }), /field "vocab_size"/);
  assert.throws(() => parseHfConfig({ model_type: 'idefics3', scale_factor: 100000 }), /field "scale_factor"/);
  assert.ok(performance.now() - t0 < 1000);
});

test('the tiny Idefics3 folder is the published layout and loads as a vision-language model', () => {
  assert.equal(
    createHash('sha256')
      .update(readFileSync(join(modelDir, 'model.safetensors')))
      .digest('hex'),
    ref.model_sha256,
    'the fixture weights are reproduced',
  );
  const f = SafetensorsFile.open(join(modelDir, 'model.safetensors'));
  const names = f.names();
  f.close();
  assert.ok(names.includes('model.vision_model.embeddings.patch_embedding.weight'));
  assert.ok(names.includes('model.vision_model.post_layernorm.weight'));
  assert.ok(names.includes('model.connector.modality_projection.proj.weight'));
  assert.ok(names.includes('model.text_model.layers.1.mlp.down_proj.weight'));
  assert.ok(names.includes('lm_head.weight'));
  assert.ok(names.every((n) => /^(model\.(vision_model|connector|text_model)\.|lm_head\.weight$)/.test(n)));
  const m = loadVlm(modelDir);
  assert.equal(m.config.kind, 'idefics3');
  assert.deepEqual(m.images.maxGrid(), { rows: 2, cols: 2 });
  m.close();
});

test('processor: tiles + global image as the PIL reference (uint8 exact), grid and image prompt tokens', async () => {
  const m = loadVlm(modelDir);
  try {
    const p = m.images as Idefics3ImageProcessor;
    const { frames, grid } = await p.frames(referenceImage());
    assert.deepEqual(grid, { rows: ref.rows, cols: ref.cols });
    assert.equal(frames.length, ref.frames);
    let diff = 0;
    frames.forEach((f, n) =>
      f.data.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - refU8[n * f.data.length + i])))),
    );
    assert.equal(diff, 0, `max |uint8 - PIL| = ${diff}`);
    assert.deepEqual(p.grid(40, 24), grid);
    assert.deepEqual(await p.gridOf(referenceImage()), grid);
    // the prompt: <image> becomes the processor's string; ids as tokenizing the expanded text
    const ids = renderPromptIds(renderSetupOf(m, grid), [{ role: 'user', content: `<image>\n${QUESTION}` }]);
    assert.deepEqual(ids, ref.input_ids);
    assert.ok(ref.expanded_prompt.includes(imagePromptString(grid, 4)));
    assert.equal(ids.filter((x) => x === m.imageTokenId).length, ref.frames * m.numImageTokens);
    // one frame (no split) for a small image: <fake><global-img> + 4 x <image> + <fake>
    assert.equal(
      imagePromptString({ rows: 0, cols: 0 }, 2),
      '<fake_token_around_image><global-img><image><image><fake_token_around_image>',
    );
  } finally {
    m.close();
  }
});

test('logits match the PyTorch reference within 1e-4; greedy generation gives its tokens', async () => {
  const m = loadVlm(modelDir);
  try {
    const sess = await Session.create(serializeModel(buildForwardGraph(m)).model, { threads: 1 });
    const T = ref.input_ids.length;
    const r = await sess.run({
      [IO.inputIds]: tensor('int64', [1, T], BigInt64Array.from(ref.input_ids.map(BigInt))),
      [IO.attentionMask]: tensor('int64', [1, T], new BigInt64Array(T).fill(1n)),
      [IO.pixelValues]: refPixels(),
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
      const out = await gen.generate(
        { image: referenceImage(), messages: [{ role: 'user', content: QUESTION }] },
        { maxNewTokens: ref.greedy.length },
      );
      assert.deepEqual(out.ids, ref.greedy);
      assert.equal(out.promptTokens, ref.input_ids.length);
      const [s] = await gen.score([
        {
          image: referenceImage(),
          messages: [
            { role: 'user', content: QUESTION },
            { role: 'assistant', content: ` ${ANSWER}` },
          ],
        },
      ]);
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
    const names = tv.params.map((p) => p.name).sort();
    assert.deepEqual(names, Object.keys(ref.grads).sort(), 'every tensor trains');
    const T = ref.train_ids.length;
    const feeds = {
      input_ids: tensor('int64', [1, T], BigInt64Array.from(ref.train_ids.map(BigInt))),
      attention_mask: tensor('int64', [1, T], new BigInt64Array(T).fill(1n)),
      labels: tensor('int64', [1, T], BigInt64Array.from(ref.train_labels.map(BigInt))),
      pixel_values: refPixels('float64'),
    };
    const ex = await StepExecutor.create(
      { params: tv.params, forward: tv.forward, outputGrads: true, session: { optimization: 'basic', threads: 1 } },
      tv.initialValues(0),
    );
    const r = await ex.step(feeds, 0);
    await ex.dispose();
    // float64 graphs, but ONNX float attributes (attention scale, norm epsilons) are float32: agreement is ~1e-8
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
      assert.ok(Math.abs(Math.sqrt(n2) - want.norm) < tol, `${p.name}: |grad| ${Math.sqrt(n2)} vs ${want.norm}`);
      assert.ok(
        Math.abs(dot - want.dot) < 1e-5 * Math.max(1, Math.abs(want.dot), want.norm),
        `${p.name}: grad . d ${dot} vs ${want.dot}`,
      );
      assert.ok(
        want.norm > 0 || p.name.startsWith('model.text_model.embed_tokens'),
        `${p.name}: the reference has a gradient`,
      );
      want.head.forEach((v, i) => assert.ok(Math.abs(g[i] - v) < tol, `${p.name}[${i}]: ${g[i]} vs ${v}`));
    }
  } finally {
    m.close();
  }
});

test('a LoRA + connector adapter is saved with the PEFT keys of Idefics3ForConditionalGeneration and scores as PyTorch under PEFT rules', async () => {
  const m = loadVlm(modelDir);
  const adir = join(dir, 'adapter');
  try {
    const values = referenceAdapterValues(m);
    saveAdapter(adir, m, 'lora+projector', ADAPTER_LORA, values);
    const cfg = JSON.parse(readFileSync(join(adir, 'adapter_config.json'), 'utf8'));
    assert.deepEqual(cfg.modules_to_save, ['connector']);
    assert.ok(new RegExp(`^(?:${cfg.target_modules})$`).test('model.text_model.layers.0.self_attn.q_proj'));
    assert.ok(!new RegExp(`^(?:${cfg.target_modules})$`).test('model.vision_model.encoder.layers.0.self_attn.q_proj'));
    const f = SafetensorsFile.open(join(adir, 'adapter_model.safetensors'));
    const keys = f.names().sort();
    f.close();
    assert.ok(keys.includes('base_model.model.model.text_model.layers.0.self_attn.q_proj.lora_A.weight'));
    assert.ok(keys.includes('base_model.model.model.text_model.layers.1.mlp.down_proj.lora_B.weight'));
    assert.ok(keys.includes('base_model.model.model.connector.modality_projection.proj.weight'));
    assert.equal(keys.length, 2 * 3 * 2 + 1);
    const back = loadPeft(adir, m.config);
    assert.equal(back.saved.size, 1);
    const gen = await createGenerator(m, back, { cacheDir: join(dir, 'cache') });
    try {
      const [s] = await gen.score([
        {
          image: referenceImage(),
          messages: [
            { role: 'user', content: QUESTION },
            { role: 'assistant', content: ` ${ANSWER}` },
          ],
        },
      ]);
      assert.ok(Math.abs(s.loss - ref.adapter_loss) < 1e-4, `adapter loss ${s.loss} vs ${ref.adapter_loss}`);
    } finally {
      await gen.dispose();
    }
    // trained values -> Adapter without disk: the same
    assert.equal(adapterFromValues(m, 'lora+projector', ADAPTER_LORA, values).modules.length, 6);
    // merged into a new folder (as models.merge writes it): the same loss with no adapter
    const merged = join(dir, 'merged');
    saveHfFolder(merged, { ...m.json, weights: mergeAdapter(m.weights, back) });
    const mm = loadVlm(merged);
    const g2 = await createGenerator(mm, null, { cacheDir: join(dir, 'cache') });
    try {
      assert.ok(existsSync(join(merged, 'processor_config.json')));
      const [s2] = await g2.score([
        {
          image: referenceImage(),
          messages: [
            { role: 'user', content: QUESTION },
            { role: 'assistant', content: ` ${ANSWER}` },
          ],
        },
      ]);
      assert.ok(Math.abs(s2.loss - ref.adapter_loss) < 1e-4, `merged loss ${s2.loss} vs ${ref.adapter_loss}`);
    } finally {
      await g2.dispose();
      mm.close();
    }
  } finally {
    m.close();
  }
});

test('dataset lint and token preview count the tiles of each image (a wide image takes fewer tokens)', async () => {
  const { renderSetupFromFolder } = await import('../../src-main/datasets/model-setup');
  const { measureLengths } = await import('../../src-main/datasets/lint-lengths');
  const { previewItem } = await import('../../src-main/datasets/render');
  const setup = renderSetupFromFolder(modelDir);
  const annotations = [{ kind: 'qa', data: { question: QUESTION, answer: ANSWER } }] as never;
  const [square, wide, unknown] = measureLengths(
    [
      { itemId: 1, annotations, hasImage: true, imageSize: { width: 40, height: 40 } },
      { itemId: 2, annotations, hasImage: true, imageSize: { width: 64, height: 20 } },
      { itemId: 3, annotations, hasImage: true, imageSize: null },
    ],
    setup,
  ).map((l) => (l.conversations[0] as { tokens: number }).tokens);
  // 2 x 2 tiles + global vs 1 x 2 + global: two more tiles (<fake_token_around_image> <row_r_col_c> + 4 image
  // tokens each) and one more row break; unknown size: the largest grid
  assert.equal(square - wide, 2 * (2 + 4) + 1);
  assert.equal(unknown, square);
  const p = previewItem({ annotations, hasImage: true, imageSize: { width: 64, height: 20 } }, setup);
  assert.equal(p[0].totalTokens, wide);
  const img = p[0].tokens.find((t) => t.repeat);
  assert.ok(img && img.repeat! > 3 * 4, 'the placeholder stands for its tiles, markers and image tokens');
});
