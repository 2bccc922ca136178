// One normalized config across the model families Lenslab runs, parsed from a Hugging Face config.json.
//
// Defaults are transformers' own when a key is absent (configuration_llava.py, configuration_clip.py,
// configuration_siglip.py, configuration_llama.py, configuration_qwen2.py), because published config.json
// files only carry the keys that differ from those defaults (e.g. llava-1.5-7b-hf's text_config has 5 keys).
// Every problem is an error naming the file and the field (dotted path, e.g. text_config.num_key_value_heads).
// Sizes are bounded (SIZE_LIMITS) so an absurd config is refused here, before anything is allocated for it.
// The vision-language families parse their own top level (families/<family>/config.ts) with the readers below.
import type { Idefics3ModelConfig } from './families/idefics3/config';
import type { Blip2ModelConfig } from './families/blip2/config';
import { parseOpt, optToHf, type OptOptions } from './decoder/opt';
import { parseVlmConfig, vlmModelTypes } from './registry';

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly field: string,
    message: string,
  ) {
    super(`${file}: ${field ? `field "${field}": ` : ''}${message}`);
  }
}

export const ACTIVATIONS = [
  'gelu',
  'gelu_new',
  'gelu_fast',
  'gelu_pytorch_tanh',
  'quick_gelu',
  'silu',
  'swish',
  'relu',
] as const;
export type Activation = (typeof ACTIVATIONS)[number];

export type VisionModelType = 'clip_vision_model' | 'siglip_vision_model' | 'blip_2_vision_model';
export type TextModelType = 'llama' | 'qwen2' | 'opt';

/** A ViT vision tower (CLIP or SigLIP), as CLIPVisionModel / SiglipVisionModel build it. */
export interface VisionConfig {
  modelType: VisionModelType;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  /** hiddenSize / numAttentionHeads */
  headDim: number;
  numChannels: number;
  imageSize: number;
  patchSize: number;
  hiddenAct: Activation;
  layerNormEps: number;
  /** CLIP: a learned class embedding is prepended to the patch tokens. SigLIP: none. */
  classToken: boolean;
  /** CLIP: `pre_layrnorm` is applied to the embeddings before the encoder. */
  preLayerNorm: boolean;
  /** SigLIP's patch conv has a bias; CLIP's has none. */
  patchBias: boolean;
  /** SigLIP's attention-pooling head (vision_use_head, default true); unused by LLaVA but present in checkpoints. */
  useHead: boolean;
  /** floor(imageSize / patchSize)^2 */
  numPatches: number;
  /** numPatches + (classToken ? 1 : 0): rows of position_embedding */
  numPositions: number;
  /** BLIP-style fused qkv (vision/blip-vit.ts): 'qv' = q_bias + v_bias (BLIP-2), 'none'; absent for CLIP / SigLIP */
  qkvBias?: 'full' | 'qv' | 'none';
}

export interface RopeConfig {
  theta: number;
  /** 'default' (plain RoPE), 'linear' (positions / factor), 'llama3' (frequency-dependent scaling). */
  type: 'default' | 'linear' | 'llama3';
  factor: number;
  /** llama3 only */
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositionEmbeddings?: number;
}

/** A LLaMA-style decoder (LLaMA, TinyLlama, SmolLM2, Qwen2). */
export interface TextConfig {
  modelType: TextModelType;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  hiddenAct: Activation;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  rope: RopeConfig;
  /** q/k/v projections have biases (Qwen2: always; LLaMA: attention_bias). */
  qkvBias: boolean;
  /** o_proj has a bias (LLaMA attention_bias only). */
  oBias: boolean;
  /** gate/up/down have biases (LLaMA mlp_bias). */
  mlpBias: boolean;
  /** lm_head shares embed_tokens' weight (no lm_head.weight stored). */
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
  /** OPT only (decoder/opt.ts): learned positions, LayerNorm blocks, fc1/fc2; the RoPE / RMSNorm fields are unused. */
  opt?: OptOptions;
}

export interface ProjectorConfig {
  /** 'mlp': linear_1 -> act -> linear_2 (transformers' LlavaMultiModalProjector); 'linear': linear_1 only
   *  (original LLaVA's mm_projector_type "linear"; stored as "mm_projector_type": "linear" in config.json). */
  type: 'mlp' | 'linear';
  inFeatures: number;
  outFeatures: number;
  hiddenAct: Activation;
  bias: boolean;
}

export interface LlavaModelConfig {
  kind: 'llava';
  modelType: 'llava';
  vision: VisionConfig;
  text: TextConfig;
  projector: ProjectorConfig;
  imageTokenIndex: number;
  /** as in config.json: an index into the vision tower's hidden_states (negative from the end), or a list */
  visionFeatureLayer: number | number[];
  /** resolved indices into hidden_states (length numHiddenLayers + 1; 0 = embeddings), concatenated on features */
  visionFeatureLayers: number[];
  visionFeatureSelectStrategy: 'default' | 'full';
  imageSeqLength: number;
  /** image tokens one <image> expands to: numPositions minus the first token when strategy is 'default' */
  numImageTokens: number;
  tieWordEmbeddings: boolean;
  raw: Record<string, unknown>;
}

export interface VisionModelConfig {
  kind: 'vision';
  /** clip / siglip (full dual-encoder folder; only the vision half is used) or the *_vision_model alone */
  modelType: 'clip' | 'siglip' | VisionModelType;
  vision: VisionConfig;
  raw: Record<string, unknown>;
}

export interface TextModelConfig {
  kind: 'text';
  modelType: TextModelType;
  text: TextConfig;
  raw: Record<string, unknown>;
}

/** A vision-language model of one of the families under families/ (registry.ts maps model_type to it). */
export type VlmModelConfig = LlavaModelConfig | Idefics3ModelConfig | Blip2ModelConfig;

export type ModelConfig = VlmModelConfig | VisionModelConfig | TextModelConfig;

/** A vision tower or a language model alone (compose them into a LLaVA). */
export const COMPONENT_MODEL_TYPES = [
  'clip',
  'clip_vision_model',
  'siglip',
  'siglip_vision_model',
  'llama',
  'qwen2',
  'opt',
] as const;

/** Every model_type config.json may have: the families' (registry.ts) and the components'. */
export function supportedModelTypes(): string[] {
  return [...vlmModelTypes(), ...COMPONENT_MODEL_TYPES];
}

/** A vision-language model (any family), as opposed to a vision tower or a language model alone. */
export function isVlm(c: ModelConfig): c is VlmModelConfig {
  return c.kind !== 'vision' && c.kind !== 'text';
}

// ---------------------------------------------------------------- field readers

/**
 * Upper bounds of size fields, far above any published model (Llama-3.1-405B: 126 layers, 16384 hidden, 53248
 * intermediate; Qwen2: 152064 vocab) and low enough that the tensor list and graphs of a config within them stay
 * buildable. A config above one is refused from the config alone, naming the field.
 */
export const SIZE_LIMITS: Readonly<Record<string, number>> = {
  num_hidden_layers: 1024,
  hidden_size: 65536,
  intermediate_size: 262144,
  num_attention_heads: 1024,
  num_key_value_heads: 1024,
  head_dim: 4096,
  vocab_size: 4_194_304,
  max_position_embeddings: 16_777_216,
  image_size: 16384,
  patch_size: 1024,
  num_channels: 16,
  scale_factor: 64,
  image_seq_length: 1_048_576,
};

type Obj = Record<string, unknown>;

export class Reader {
  constructor(
    readonly file: string,
    readonly obj: Obj,
    readonly path: string,
  ) {}
  field(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }
  err(key: string, msg: string): never {
    throw new ConfigError(this.file, this.field(key), msg);
  }
  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }
  int(key: string, def?: number, min = 1): number {
    const v = this.obj[key] ?? def;
    if (v === undefined) this.err(key, 'is required');
    if (typeof v !== 'number' || !Number.isInteger(v)) this.err(key, `must be an integer, got ${JSON.stringify(v)}`);
    if (v < min) this.err(key, `must be >= ${min}, got ${v}`);
    const max = SIZE_LIMITS[key];
    if (max !== undefined && v > max) this.err(key, `${v} is larger than any model Lenslab can run (at most ${max})`);
    return v;
  }
  intOrNull(key: string, def: number | null): number | null {
    const v = this.obj[key] === undefined ? def : this.obj[key];
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isInteger(v))
      this.err(key, `must be an integer or null, got ${JSON.stringify(v)}`);
    return v;
  }
  num(key: string, def?: number): number {
    const v = this.obj[key] ?? def;
    if (v === undefined) this.err(key, 'is required');
    if (typeof v !== 'number' || !Number.isFinite(v)) this.err(key, `must be a number, got ${JSON.stringify(v)}`);
    return v;
  }
  bool(key: string, def: boolean): boolean {
    const v = this.obj[key] ?? def;
    if (typeof v !== 'boolean') this.err(key, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }
  str(key: string, def?: string): string {
    const v = this.obj[key] ?? def;
    if (v === undefined) this.err(key, 'is required');
    if (typeof v !== 'string') this.err(key, `must be a string, got ${JSON.stringify(v)}`);
    return v;
  }
  act(key: string, def: Activation): Activation {
    const v = this.str(key, def);
    if (!(ACTIVATIONS as readonly string[]).includes(v))
      this.err(key, `unsupported activation "${v}" (supported: ${ACTIVATIONS.join(', ')})`);
    return v as Activation;
  }
  sub(key: string): Reader | null {
    const v = this.obj[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'object' || Array.isArray(v)) this.err(key, 'must be an object');
    return new Reader(this.file, v as Obj, this.field(key));
  }
}

// ---------------------------------------------------------------- families

export function parseVision(
  r: Reader,
  modelType: VisionModelType,
  defaults: Partial<Record<string, unknown>> = {},
): VisionConfig {
  const d = (k: string, v: unknown) => (defaults[k] !== undefined ? defaults[k] : v);
  const siglip = modelType === 'siglip_vision_model';
  const hiddenSize = r.int('hidden_size', d('hidden_size', 768) as number);
  const numAttentionHeads = r.int('num_attention_heads', d('num_attention_heads', 12) as number);
  if (hiddenSize % numAttentionHeads !== 0)
    r.err('num_attention_heads', `${numAttentionHeads} does not divide hidden_size ${hiddenSize}`);
  const imageSize = r.int('image_size', d('image_size', 224) as number);
  const patchSize = r.int('patch_size', d('patch_size', siglip ? 16 : 32) as number);
  if (patchSize > imageSize) r.err('patch_size', `${patchSize} is larger than image_size ${imageSize}`);
  // the patch conv has stride patch_size and no padding: a remainder is dropped (SigLIP-so400m: 384 / 14 -> 27 x 27)
  const numPatches = Math.floor(imageSize / patchSize) ** 2;
  const classToken = !siglip;
  return {
    modelType,
    hiddenSize,
    intermediateSize: r.int('intermediate_size', d('intermediate_size', 3072) as number),
    numHiddenLayers: r.int('num_hidden_layers', d('num_hidden_layers', 12) as number),
    numAttentionHeads,
    headDim: hiddenSize / numAttentionHeads,
    numChannels: r.int('num_channels', 3),
    imageSize,
    patchSize,
    hiddenAct: r.act('hidden_act', siglip ? 'gelu_pytorch_tanh' : 'quick_gelu'),
    layerNormEps: r.num('layer_norm_eps', siglip ? 1e-6 : 1e-5),
    classToken,
    preLayerNorm: !siglip,
    patchBias: siglip,
    useHead: siglip ? r.bool('vision_use_head', true) : false,
    numPatches,
    numPositions: numPatches + (classToken ? 1 : 0),
  };
}

function parseRope(r: Reader, text: { maxPositionEmbeddings: number }): RopeConfig {
  // transformers >= 5 writes rope_parameters {rope_type, rope_theta, ...}; earlier versions rope_theta + rope_scaling.
  const params = r.sub('rope_parameters');
  const scaling = params ?? r.sub('rope_scaling');
  const theta = params && params.has('rope_theta') ? params.num('rope_theta') : r.num('rope_theta', 10000);
  if (theta <= 0) r.err('rope_theta', `must be > 0, got ${theta}`);
  if (!scaling) return { theta, type: 'default', factor: 1 };
  const typeKey = scaling.has('rope_type') ? 'rope_type' : 'type';
  const type = scaling.str(typeKey, 'default');
  if (type === 'default') return { theta, type: 'default', factor: 1 };
  const factor = scaling.num('factor');
  if (factor <= 0) scaling.err('factor', `must be > 0, got ${factor}`);
  if (type === 'linear') return { theta, type: 'linear', factor };
  if (type === 'llama3') {
    return {
      theta,
      type: 'llama3',
      factor,
      lowFreqFactor: scaling.num('low_freq_factor'),
      highFreqFactor: scaling.num('high_freq_factor'),
      originalMaxPositionEmbeddings: scaling.int('original_max_position_embeddings'),
    };
  }
  return scaling.err(
    typeKey,
    `unsupported RoPE scaling "${type}" (supported: default, linear, llama3); max_position_embeddings is ${text.maxPositionEmbeddings}`,
  );
}

export function parseText(r: Reader, modelType: TextModelType): TextConfig {
  if (modelType === 'opt') return parseOpt(r);
  const qwen = modelType === 'qwen2';
  const hiddenSize = r.int('hidden_size', 4096);
  const numAttentionHeads = r.int('num_attention_heads', 32);
  const numKeyValueHeads = r.has('num_key_value_heads') ? r.int('num_key_value_heads') : numAttentionHeads;
  if (numAttentionHeads % numKeyValueHeads !== 0)
    r.err('num_key_value_heads', `${numKeyValueHeads} does not divide num_attention_heads ${numAttentionHeads}`);
  let headDim: number;
  if (r.has('head_dim')) headDim = r.int('head_dim');
  else {
    if (hiddenSize % numAttentionHeads !== 0)
      r.err('num_attention_heads', `${numAttentionHeads} does not divide hidden_size ${hiddenSize}`);
    headDim = hiddenSize / numAttentionHeads;
  }
  if (headDim % 2 !== 0) r.err('head_dim', `RoPE needs an even head_dim, got ${headDim}`);
  const maxPositionEmbeddings = r.int('max_position_embeddings', qwen ? 32768 : 2048);
  const attentionBias = qwen ? false : r.bool('attention_bias', false);
  const eos = r.obj.eos_token_id === undefined ? (qwen ? null : 2) : r.obj.eos_token_id;
  let eosTokenIds: number[];
  if (eos === null) eosTokenIds = [];
  else if (typeof eos === 'number' && Number.isInteger(eos)) eosTokenIds = [eos];
  else if (Array.isArray(eos) && eos.every((x) => Number.isInteger(x))) eosTokenIds = eos as number[];
  else r.err('eos_token_id', `must be an integer, a list of integers or null, got ${JSON.stringify(eos)}`);
  if (qwen && r.bool('use_sliding_window', false))
    r.err('use_sliding_window', 'sliding-window attention is not supported');
  return {
    modelType,
    vocabSize: r.int('vocab_size', qwen ? 151936 : 32000),
    hiddenSize,
    intermediateSize: r.int('intermediate_size', qwen ? 22016 : 11008),
    numHiddenLayers: r.int('num_hidden_layers', 32),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    hiddenAct: r.act('hidden_act', 'silu'),
    maxPositionEmbeddings,
    rmsNormEps: r.num('rms_norm_eps', 1e-6),
    rope: parseRope(r, { maxPositionEmbeddings }),
    qkvBias: qwen ? true : attentionBias,
    oBias: attentionBias,
    mlpBias: qwen ? false : r.bool('mlp_bias', false),
    tieWordEmbeddings: r.bool('tie_word_embeddings', false),
    bosTokenId: r.intOrNull('bos_token_id', qwen ? null : 1),
    eosTokenIds,
    padTokenId: r.intOrNull('pad_token_id', null),
  };
}

export function modelTypeOf(r: Reader, def?: string): string {
  const mt = r.obj.model_type ?? def;
  if (mt === undefined) r.err('model_type', 'is missing');
  if (typeof mt !== 'string') r.err('model_type', `must be a string, got ${JSON.stringify(mt)}`);
  return mt;
}

export function parseVisionSub(r: Reader): VisionConfig {
  const mt = modelTypeOf(r, 'clip_vision_model');
  if (mt !== 'clip_vision_model' && mt !== 'siglip_vision_model')
    r.err('model_type', `unknown vision model_type "${mt}" (supported: clip_vision_model, siglip_vision_model)`);
  return parseVision(r, mt);
}

export function parseTextSub(r: Reader): TextConfig {
  const mt = modelTypeOf(r, 'llama');
  if (mt !== 'llama' && mt !== 'qwen2' && mt !== 'opt')
    r.err('model_type', `unknown text model_type "${mt}" (supported: llama, qwen2, opt)`);
  return parseText(r, mt);
}

/** Parse a config.json object. `file` is used in error messages. */
export function parseHfConfig(json: unknown, file = 'config.json'): ModelConfig {
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new ConfigError(file, '', 'is not a JSON object');
  const r = new Reader(file, json as Obj, '');
  const mt = modelTypeOf(r);
  const vlm = parseVlmConfig(r, mt);
  if (vlm) return vlm;
  switch (mt) {
    case 'clip':
    case 'siglip': {
      const vr = r.sub('vision_config') ?? new Reader(file, {}, 'vision_config');
      return {
        kind: 'vision',
        modelType: mt,
        vision: parseVision(vr, mt === 'clip' ? 'clip_vision_model' : 'siglip_vision_model'),
        raw: r.obj,
      };
    }
    case 'clip_vision_model':
    case 'siglip_vision_model':
      return { kind: 'vision', modelType: mt, vision: parseVision(r, mt), raw: r.obj };
    case 'llama':
    case 'qwen2':
    case 'opt':
      return { kind: 'text', modelType: mt, text: parseText(r, mt), raw: r.obj };
    default:
      return r.err('model_type', `unknown model_type "${mt}" (supported: ${supportedModelTypes().join(', ')})`);
  }
}

/** Read and parse `path` (a config.json). */
export async function readHfConfig(path: string): Promise<ModelConfig> {
  const { readFile } = await import('node:fs/promises');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, '', `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(path, '', `is not valid JSON (${(e as Error).message})`);
  }
  return parseHfConfig(json, path);
}

// ---------------------------------------------------------------- writing

/** config.json fields of a vision tower, explicit (every field written, not only non-defaults). */
export function visionToHf(v: VisionConfig): Obj {
  const o: Obj = {
    model_type: v.modelType,
    hidden_size: v.hiddenSize,
    intermediate_size: v.intermediateSize,
    num_hidden_layers: v.numHiddenLayers,
    num_attention_heads: v.numAttentionHeads,
    num_channels: v.numChannels,
    image_size: v.imageSize,
    patch_size: v.patchSize,
    hidden_act: v.hiddenAct,
    layer_norm_eps: v.layerNormEps,
    attention_dropout: 0.0,
  };
  if (v.modelType === 'siglip_vision_model') o.vision_use_head = v.useHead;
  return o;
}

export function textToHf(t: TextConfig): Obj {
  if (t.modelType === 'opt') return optToHf(t);
  const o: Obj = {
    model_type: t.modelType,
    vocab_size: t.vocabSize,
    hidden_size: t.hiddenSize,
    intermediate_size: t.intermediateSize,
    num_hidden_layers: t.numHiddenLayers,
    num_attention_heads: t.numAttentionHeads,
    num_key_value_heads: t.numKeyValueHeads,
    head_dim: t.headDim,
    hidden_act: t.hiddenAct,
    max_position_embeddings: t.maxPositionEmbeddings,
    rms_norm_eps: t.rmsNormEps,
    rope_theta: t.rope.theta,
    rope_scaling:
      t.rope.type === 'default'
        ? null
        : t.rope.type === 'linear'
          ? { rope_type: 'linear', factor: t.rope.factor }
          : {
              rope_type: 'llama3',
              factor: t.rope.factor,
              low_freq_factor: t.rope.lowFreqFactor,
              high_freq_factor: t.rope.highFreqFactor,
              original_max_position_embeddings: t.rope.originalMaxPositionEmbeddings,
            },
    tie_word_embeddings: t.tieWordEmbeddings,
    bos_token_id: t.bosTokenId,
    eos_token_id: t.eosTokenIds.length === 1 ? t.eosTokenIds[0] : t.eosTokenIds.length === 0 ? null : t.eosTokenIds,
    pad_token_id: t.padTokenId,
    attention_dropout: 0.0,
    use_cache: true,
  };
  if (t.modelType === 'llama') {
    o.attention_bias = t.oBias;
    o.mlp_bias = t.mlpBias;
  } else {
    o.use_sliding_window = false;
  }
  return o;
}

export { llavaToHf, type LlavaConfigInput } from './families/llava/config';
