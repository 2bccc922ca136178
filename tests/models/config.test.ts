import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseHfConfig,
  type LlavaModelConfig,
  type TextModelConfig,
  type VisionModelConfig,
} from '../../src-main/models/config';
import { expectedTensors, canonicalName } from '../../src-main/models/weights/names';

// config.json files shaped as published (only the keys those checkpoints carry; the rest are transformers' defaults)
const LLAVA_15_7B = {
  architectures: ['LlavaForConditionalGeneration'],
  ignore_index: -100,
  image_token_index: 32000,
  model_type: 'llava',
  pad_token_id: 32001,
  projector_hidden_act: 'gelu',
  text_config: {
    _name_or_path: 'lmsys/vicuna-7b-v1.5',
    architectures: ['LlamaForCausalLM'],
    max_position_embeddings: 4096,
    model_type: 'llama',
    rms_norm_eps: 1e-5,
    torch_dtype: 'float16',
    vocab_size: 32064,
  },
  tie_word_embeddings: false,
  torch_dtype: 'float16',
  transformers_version: '4.36.0.dev0',
  vision_config: {
    hidden_size: 1024,
    image_size: 336,
    intermediate_size: 4096,
    model_type: 'clip_vision_model',
    num_attention_heads: 16,
    num_hidden_layers: 24,
    patch_size: 14,
    projection_dim: 768,
    vocab_size: 32000,
  },
  vision_feature_layer: -2,
  vision_feature_select_strategy: 'default',
  vocab_size: 32064,
};

const SMOLLM2_135M = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: 'silu',
  hidden_size: 576,
  initializer_range: 0.041666666666666664,
  intermediate_size: 1536,
  is_llama_config: true,
  max_position_embeddings: 8192,
  model_type: 'llama',
  num_attention_heads: 9,
  num_hidden_layers: 30,
  num_key_value_heads: 3,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_interleaved: false,
  rope_scaling: null,
  rope_theta: 100000,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  vocab_size: 49152,
};

const QWEN2_05B = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 131072,
  max_window_layers: 24,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 131072,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

const TINYLLAMA = {
  architectures: ['LlamaForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 5632,
  max_position_embeddings: 2048,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 22,
  num_key_value_heads: 4,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 10000.0,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  use_cache: true,
  vocab_size: 32000,
};

const SIGLIP_SO400M = {
  architectures: ['SiglipModel'],
  model_type: 'siglip',
  initializer_factor: 1.0,
  text_config: {
    hidden_size: 1152,
    intermediate_size: 4304,
    model_type: 'siglip_text_model',
    num_attention_heads: 16,
    num_hidden_layers: 27,
  },
  vision_config: {
    hidden_size: 1152,
    image_size: 384,
    intermediate_size: 4304,
    model_type: 'siglip_vision_model',
    num_attention_heads: 16,
    num_hidden_layers: 27,
    patch_size: 14,
  },
};

test('LLaVA-1.5 config: transformers defaults fill the keys the file leaves out', () => {
  const c = parseHfConfig(LLAVA_15_7B) as LlavaModelConfig;
  assert.equal(c.kind, 'llava');
  assert.equal(c.text.modelType, 'llama');
  assert.equal(c.text.hiddenSize, 4096);
  assert.equal(c.text.numHiddenLayers, 32);
  assert.equal(c.text.numAttentionHeads, 32);
  assert.equal(c.text.numKeyValueHeads, 32);
  assert.equal(c.text.headDim, 128);
  assert.equal(c.text.intermediateSize, 11008);
  assert.equal(c.text.vocabSize, 32064);
  assert.equal(c.text.rmsNormEps, 1e-5);
  assert.deepEqual(c.text.rope, { theta: 10000, type: 'default', factor: 1 });
  assert.equal(c.text.tieWordEmbeddings, false);
  assert.equal(c.vision.modelType, 'clip_vision_model');
  assert.equal(c.vision.hiddenAct, 'quick_gelu');
  assert.equal(c.vision.layerNormEps, 1e-5);
  assert.equal(c.vision.numPatches, 576);
  assert.equal(c.vision.numPositions, 577);
  assert.equal(c.numImageTokens, 576);
  assert.deepEqual(c.visionFeatureLayers, [23]);
  assert.deepEqual(c.projector, { type: 'mlp', inFeatures: 1024, outFeatures: 4096, hiddenAct: 'gelu', bias: true });
  assert.equal(c.imageTokenIndex, 32000);
  const specs = new Map(expectedTensors(c).map((s) => [s.name, s.shape]));
  assert.deepEqual(specs.get('vision_tower.vision_model.embeddings.patch_embedding.weight'), [1024, 3, 14, 14]);
  assert.deepEqual(specs.get('vision_tower.vision_model.embeddings.position_embedding.weight'), [577, 1024]);
  assert.deepEqual(specs.get('vision_tower.vision_model.pre_layrnorm.weight'), [1024]);
  assert.deepEqual(specs.get('vision_tower.vision_model.encoder.layers.23.mlp.fc1.weight'), [4096, 1024]);
  assert.deepEqual(specs.get('multi_modal_projector.linear_1.weight'), [4096, 1024]);
  assert.deepEqual(specs.get('multi_modal_projector.linear_2.weight'), [4096, 4096]);
  assert.deepEqual(specs.get('language_model.model.layers.31.self_attn.k_proj.weight'), [4096, 4096]);
  assert.deepEqual(specs.get('language_model.lm_head.weight'), [32064, 4096]);
  assert.ok(!specs.has('vision_tower.vision_model.embeddings.patch_embedding.bias'));
  // 24 layers x 16 + 6 embeddings/norms (vision), 4 projector, 32 x 9 + 3 (decoder)
  assert.equal(specs.size, 24 * 16 + 7 + 4 + 32 * 9 + 3);
  // the transformers >= 4.52 layout maps onto the classic names
  assert.equal(
    canonicalName(c, 'model.language_model.layers.0.mlp.up_proj.weight'),
    'language_model.model.layers.0.mlp.up_proj.weight',
  );
  assert.equal(
    canonicalName(c, 'model.vision_tower.vision_model.post_layernorm.bias'),
    'vision_tower.vision_model.post_layernorm.bias',
  );
  assert.equal(canonicalName(c, 'model.multi_modal_projector.linear_2.bias'), 'multi_modal_projector.linear_2.bias');
  assert.equal(canonicalName(c, 'lm_head.weight'), 'language_model.lm_head.weight');
  assert.equal(canonicalName(c, 'vision_tower.vision_model.embeddings.position_ids'), null);
});

test('a LLaVA config with no vision_config / text_config gets LlavaConfig defaults (CLIP-L/336 + LLaMA-7B)', () => {
  const c = parseHfConfig({ model_type: 'llava' }) as LlavaModelConfig;
  assert.equal(c.vision.imageSize, 336);
  assert.equal(c.vision.patchSize, 14);
  assert.equal(c.vision.numHiddenLayers, 24);
  assert.equal(c.text.vocabSize, 32000);
  assert.equal(c.imageSeqLength, 576);
  assert.equal(c.visionFeatureSelectStrategy, 'default');
  assert.equal(c.imageTokenIndex, 32000, 'may equal vocab_size: image positions are never embedded');
});

test('SmolLM2 (tied, GQA 9/3, head_dim 64) and TinyLlama (untied, GQA 32/4)', () => {
  const s = parseHfConfig(SMOLLM2_135M) as TextModelConfig;
  assert.equal(s.text.numKeyValueHeads, 3);
  assert.equal(s.text.headDim, 64);
  assert.equal(s.text.tieWordEmbeddings, true);
  assert.equal(s.text.rope.theta, 100000);
  assert.deepEqual(s.text.eosTokenIds, [0]);
  assert.equal(s.text.bosTokenId, 0);
  const specs = new Map(expectedTensors(s).map((x) => [x.name, x.shape]));
  assert.deepEqual(specs.get('model.layers.0.self_attn.q_proj.weight'), [576, 576]);
  assert.deepEqual(specs.get('model.layers.0.self_attn.k_proj.weight'), [192, 576]);
  assert.deepEqual(specs.get('model.layers.29.mlp.down_proj.weight'), [576, 1536]);
  assert.ok(!specs.has('lm_head.weight'), 'tied: no lm_head');
  assert.equal(canonicalName(s, 'lm_head.weight'), null, 'a tied lm_head saved anyway is ignored');
  assert.equal(specs.size, 30 * 9 + 2);
  const t = parseHfConfig(TINYLLAMA) as TextModelConfig;
  assert.equal(t.text.headDim, 64);
  assert.deepEqual(
    expectedTensors(t).find((x) => x.name === 'model.layers.0.self_attn.v_proj.weight')!.shape,
    [256, 2048],
  );
  assert.deepEqual(expectedTensors(t).at(-1), { name: 'lm_head.weight', shape: [32000, 2048] });
});

test('Qwen2: q/k/v have biases, o_proj none', () => {
  const q = parseHfConfig(QWEN2_05B) as TextModelConfig;
  assert.equal(q.text.qkvBias, true);
  assert.equal(q.text.oBias, false);
  assert.equal(q.text.headDim, 64);
  assert.equal(q.text.rope.theta, 1e6);
  const names = new Set(expectedTensors(q).map((x) => x.name));
  assert.ok(names.has('model.layers.3.self_attn.q_proj.bias'));
  assert.ok(names.has('model.layers.3.self_attn.v_proj.bias'));
  assert.ok(!names.has('model.layers.3.self_attn.o_proj.bias'));
  assert.ok(!names.has('model.layers.3.mlp.up_proj.bias'));
  assert.deepEqual(expectedTensors(q).find((x) => x.name === 'model.layers.3.self_attn.k_proj.bias')!.shape, [128]);
});

test('SigLIP: no class token, patch bias, gelu-tanh defaults, head tensors optional, text half ignored', () => {
  const v = parseHfConfig(SIGLIP_SO400M) as VisionModelConfig;
  assert.equal(v.kind, 'vision');
  assert.equal(v.vision.modelType, 'siglip_vision_model');
  assert.equal(v.vision.classToken, false);
  assert.equal(v.vision.hiddenAct, 'gelu_pytorch_tanh');
  assert.equal(v.vision.layerNormEps, 1e-6);
  assert.equal(v.vision.numPositions, 729);
  const specs = expectedTensors(v);
  const byName = new Map(specs.map((s) => [s.name, s]));
  assert.deepEqual(byName.get('vision_model.embeddings.patch_embedding.bias')!.shape, [1152]);
  assert.deepEqual(byName.get('vision_model.embeddings.position_embedding.weight')!.shape, [729, 1152]);
  assert.ok(!byName.has('vision_model.embeddings.class_embedding'));
  assert.ok(!byName.has('vision_model.pre_layrnorm.weight'));
  assert.equal(byName.get('vision_model.head.probe')!.optional, true);
  assert.equal(canonicalName(v, 'text_model.encoder.layers.0.mlp.fc1.weight'), null);
  assert.equal(canonicalName(v, 'logit_bias'), null);
  // a LLaVA with a SigLIP tower and 'full' strategy keeps every patch
  const l = parseHfConfig({
    model_type: 'llava',
    vision_config: SIGLIP_SO400M.vision_config,
    text_config: QWEN2_05B,
    vision_feature_select_strategy: 'full',
    vision_feature_layer: -1,
    image_token_index: 151646,
  }) as LlavaModelConfig;
  assert.equal(l.numImageTokens, 729);
  assert.equal(l.tieWordEmbeddings, true, 'forwarded from text_config');
  assert.deepEqual(l.visionFeatureLayers, [27]);
  assert.ok(!expectedTensors(l).some((s) => s.name === 'language_model.lm_head.weight'));
});

test('vision_feature_layer as a list concatenates features: projector input grows', () => {
  const c = parseHfConfig({ ...LLAVA_15_7B, vision_feature_layer: [-2, -5, 0] }) as LlavaModelConfig;
  assert.deepEqual(c.visionFeatureLayers, [23, 20, 0]);
  assert.equal(c.projector.inFeatures, 3 * 1024);
});

test('rope scaling: linear and llama3, old rope_scaling and new rope_parameters', () => {
  const lin = parseHfConfig({ ...TINYLLAMA, rope_scaling: { type: 'linear', factor: 2 } }) as TextModelConfig;
  assert.deepEqual(lin.text.rope, { theta: 10000, type: 'linear', factor: 2 });
  const l3 = parseHfConfig({
    ...TINYLLAMA,
    rope_theta: undefined,
    rope_parameters: {
      rope_type: 'llama3',
      rope_theta: 500000,
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    },
  }) as TextModelConfig;
  assert.equal(l3.text.rope.type, 'llama3');
  assert.equal(l3.text.rope.theta, 500000);
  assert.equal(l3.text.rope.originalMaxPositionEmbeddings, 8192);
  assert.throws(
    () => parseHfConfig({ ...TINYLLAMA, rope_scaling: { rope_type: 'yarn', factor: 4 } }),
    /config\.json: field "rope_scaling\.rope_type": unsupported RoPE scaling "yarn"/,
  );
});

test('errors name config.json and the field', () => {
  assert.throws(
    () => parseHfConfig({ model_type: 'gpt2' }),
    /^Error: config\.json: field "model_type": unknown model_type "gpt2"/,
  );
  assert.throws(
    () => parseHfConfig({ hidden_size: 3 }, '/x/config.json'),
    /\/x\/config\.json: field "model_type": is missing/,
  );
  assert.throws(
    () => parseHfConfig({ model_type: 'llava', text_config: { model_type: 'mistral' } }),
    /field "text_config\.model_type": unknown text model_type "mistral"/,
  );
  assert.throws(
    () => parseHfConfig({ model_type: 'llava', vision_config: { model_type: 'dinov2' } }),
    /field "vision_config\.model_type": unknown vision model_type "dinov2"/,
  );
  assert.throws(
    () => parseHfConfig({ ...TINYLLAMA, num_key_value_heads: 5 }),
    /field "num_key_value_heads": 5 does not divide num_attention_heads 32/,
  );
  assert.throws(
    () => parseHfConfig({ ...TINYLLAMA, hidden_size: '2048' }),
    /field "hidden_size": must be an integer, got "2048"/,
  );
  assert.throws(
    () => parseHfConfig({ ...LLAVA_15_7B, vision_feature_select_strategy: 'cls' }),
    /field "vision_feature_select_strategy": must be "default" or "full"/,
  );
  assert.throws(
    () => parseHfConfig({ ...LLAVA_15_7B, vision_feature_layer: -30 }),
    /field "vision_feature_layer": -30 is out of range/,
  );
  assert.throws(
    () => parseHfConfig({ ...LLAVA_15_7B, image_token_index: -1 }),
    /field "image_token_index": must be >= 0, got -1/,
  );
  assert.throws(
    () => parseHfConfig({ ...LLAVA_15_7B, vision_config: { ...LLAVA_15_7B.vision_config, patch_size: 400 } }),
    /field "vision_config\.patch_size": 400 is larger than image_size 336/,
  );
  assert.throws(
    () => parseHfConfig({ ...TINYLLAMA, hidden_act: 'mish' }),
    /field "hidden_act": unsupported activation "mish"/,
  );
  assert.throws(() => parseHfConfig([1, 2]), /config\.json: is not a JSON object/);
});
