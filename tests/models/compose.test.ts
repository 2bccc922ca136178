import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyLlamaLm } from '../helpers/tiny-llama';
import { composeLlava } from '../../src-main/models/compose';
import { loadHfFolder, saveHfFolder } from '../../src-main/models/hf-folder';
import { parseHfConfig, textToHf, visionToHf, type VisionModelConfig } from '../../src-main/models/config';
import { expectedTensors } from '../../src-main/models/weights/names';
import { memorySource, writeWeightsFolder } from '../../src-main/models/weights/safetensors';
import { randomWeights, demoPreprocessorConfig } from '../../src-main/models/demo/tiny-llava';
import { LLAVA_CHAT_TEMPLATE } from '../../src-main/models/chat-template';

const { dir, cleanup } = tempDir('compose-');
after(cleanup);

function writeVision(out: string, json: Record<string, unknown>, seed: number) {
  const cfg = parseHfConfig(json) as VisionModelConfig;
  mkdirSync(out, { recursive: true });
  saveHfFolder(out, {
    config: json,
    weights: memorySource(randomWeights(expectedTensors(cfg), seed)),
    preprocessorConfig: demoPreprocessorConfig(cfg.vision.imageSize),
  });
}

const clipJson = {
  architectures: ['CLIPVisionModel'],
  ...visionToHf({
    modelType: 'clip_vision_model',
    hiddenSize: 32,
    intermediateSize: 64,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    headDim: 8,
    numChannels: 3,
    imageSize: 32,
    patchSize: 8,
    hiddenAct: 'quick_gelu',
    layerNormEps: 1e-5,
    classToken: true,
    preLayerNorm: true,
    patchBias: false,
    useHead: false,
    numPatches: 16,
    numPositions: 17,
  }),
};

test('CLIP tower + LLaMA + new projector -> a LLaVA folder; image token added, embeddings grown by the mean row', () => {
  const vdir = join(dir, 'clip');
  const tdir = join(dir, 'llama');
  writeVision(vdir, clipJson, 1);
  // an LLM whose tokenizer has no <image>; vocab_size == tokenizer size so the new id needs a new row
  writeTinyLlamaLm(tdir, { chatTemplate: LLAVA_CHAT_TEMPLATE });
  const out = join(dir, 'composed');
  const r = composeLlava({ visionDir: vdir, textDir: tdir, outDir: out, seed: 3 });
  assert.equal(r.addedImageToken, true);
  assert.equal(r.imageTokenId, 300);
  assert.equal(r.config.text.vocabSize, 301);
  assert.equal(r.config.visionFeatureSelectStrategy, 'default');
  assert.equal(r.config.numImageTokens, 16);
  const m = loadHfFolder(out);
  const v = loadHfFolder(vdir);
  const t = loadHfFolder(tdir);
  assert.equal(m.tokenizer!.imageTokenId(), 300);
  assert.deepEqual(m.tokenizer!.encode('<image>\nHi', { addSpecialTokens: false }).slice(0, 1), [300]);
  assert.ok(m.chatTemplate, 'chat template carried over');
  assert.deepEqual(m.json.preprocessorConfig, v.json.preprocessorConfig);
  // vision and decoder tensors are the sources' tensors
  assert.deepEqual(
    m.weights.get('vision_tower.vision_model.encoder.layers.1.mlp.fc2.weight'),
    v.weights.get('vision_model.encoder.layers.1.mlp.fc2.weight'),
  );
  assert.deepEqual(
    m.weights.get('language_model.model.layers.0.self_attn.k_proj.weight'),
    t.weights.get('model.layers.0.self_attn.k_proj.weight'),
  );
  // grown rows: originals kept, the new row is the column mean
  const e0 = t.weights.get('model.embed_tokens.weight');
  const e1 = m.weights.get('language_model.model.embed_tokens.weight');
  assert.deepEqual(m.weights.info('language_model.model.embed_tokens.weight').shape, [301, 48]);
  assert.deepEqual(e1.subarray(0, e0.length), e0);
  for (const c of [0, 17, 47]) {
    let s = 0;
    for (let r0 = 0; r0 < 300; r0++) s += e0[r0 * 48 + c];
    assert.ok(Math.abs(e1[300 * 48 + c] - s / 300) < 1e-7);
  }
  assert.deepEqual(m.weights.info('language_model.lm_head.weight').shape, [301, 48]);
  // projector: [48, 32] then [48, 48], biases zero, weights random
  assert.deepEqual(m.weights.info('multi_modal_projector.linear_1.weight').shape, [48, 32]);
  assert.ok(m.weights.get('multi_modal_projector.linear_1.bias').every((x) => x === 0));
  assert.ok(m.weights.get('multi_modal_projector.linear_2.weight').some((x) => x !== 0));
  for (const x of [m, v, t]) x.close();
});

test('SigLIP (dual-encoder folder) + tied Qwen2 whose tokenizer already has <image>: no growth, strategy full', () => {
  const vdir = join(dir, 'siglip');
  const sigVision = visionToHf({
    modelType: 'siglip_vision_model',
    hiddenSize: 32,
    intermediateSize: 64,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    headDim: 8,
    numChannels: 3,
    imageSize: 28,
    patchSize: 8,
    hiddenAct: 'gelu_pytorch_tanh',
    layerNormEps: 1e-6,
    classToken: false,
    preLayerNorm: false,
    patchBias: true,
    useHead: true,
    numPatches: 9,
    numPositions: 9,
  });
  const sigJson = { model_type: 'siglip', vision_config: sigVision, text_config: { model_type: 'siglip_text_model' } };
  const cfg = parseHfConfig(sigJson) as VisionModelConfig;
  // a dual-encoder checkpoint also holds text-tower tensors: they are ignored
  const w = randomWeights(
    [
      ...expectedTensors(cfg),
      { name: 'text_model.embeddings.token_embedding.weight', shape: [10, 32] },
      { name: 'logit_scale', shape: [1] },
    ],
    4,
  );
  mkdirSync(vdir, { recursive: true });
  // saveHfFolder only writes what the config explains, so write this file by hand through the lower layer
  writeWeightsFolder(
    vdir,
    [...w].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: () => t.data })),
  );
  saveJson(join(vdir, 'config.json'), sigJson);
  saveJson(join(vdir, 'preprocessor_config.json'), {
    image_processor_type: 'SiglipImageProcessor',
    size: { height: 28, width: 28 },
  });
  const tdir = join(dir, 'qwen');
  const tjson = {
    architectures: ['Qwen2ForCausalLM'],
    ...textToHf({
      modelType: 'qwen2',
      vocabSize: 320,
      hiddenSize: 32,
      intermediateSize: 64,
      numHiddenLayers: 1,
      numAttentionHeads: 4,
      numKeyValueHeads: 1,
      headDim: 8,
      hiddenAct: 'silu',
      maxPositionEmbeddings: 256,
      rmsNormEps: 1e-6,
      rope: { theta: 1e6, type: 'default', factor: 1 },
      qkvBias: true,
      oBias: false,
      mlpBias: false,
      tieWordEmbeddings: true,
      bosTokenId: null,
      eosTokenIds: [2],
      padTokenId: null,
    }),
  };
  writeTinyLlamaLm(tdir, {
    json: tjson,
    seed: 5,
    specials: ['<unk>', '<s>', '</s>', '<image>'],
    chatTemplate: LLAVA_CHAT_TEMPLATE,
  });
  const out = join(dir, 'composed-siglip');
  const r = composeLlava({
    visionDir: vdir,
    textDir: tdir,
    outDir: out,
    projectorType: 'linear',
    visionFeatureLayer: -1,
  });
  assert.equal(r.addedImageToken, false);
  assert.equal(r.imageTokenId, 3);
  assert.equal(r.config.text.vocabSize, 320);
  assert.equal(r.config.visionFeatureSelectStrategy, 'full');
  assert.equal(r.config.numImageTokens, 9);
  assert.equal(r.config.tieWordEmbeddings, true);
  const m = loadHfFolder(out);
  assert.equal(m.config.kind, 'llava');
  const names = m.weights.names();
  assert.ok(names.includes('vision_tower.vision_model.head.probe'), 'optional SigLIP head carried when present');
  assert.ok(names.includes('language_model.model.layers.0.self_attn.q_proj.bias'));
  assert.ok(!names.includes('language_model.lm_head.weight'));
  assert.ok(!names.includes('multi_modal_projector.linear_2.weight'), 'linear projector');
  assert.equal(m.json.config.mm_projector_type, 'linear');
  m.close();
  assert.throws(
    () => composeLlava({ visionDir: vdir, textDir: vdir, outDir: join(dir, 'y') }),
    /siglip\/config\.json: field "model_type": "siglip" is not a language model/,
  );
  // composing from something that is not a tower is a clear error
  assert.throws(
    () => composeLlava({ visionDir: tdir, textDir: tdir, outDir: join(dir, 'x') }),
    /qwen\/config\.json: field "model_type": "qwen2" is not a vision tower/,
  );
});

function saveJson(p: string, o: unknown) {
  writeFileSync(p, JSON.stringify(o));
}
