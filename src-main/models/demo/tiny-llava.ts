// The tiny demo LLaVA, random-initialized and written in exact Hugging Face layout: a CLIP-style vision tower,
// a 2-layer MLP projector and a small LLaMA decoder with grouped KV heads, plus a byte-level BPE tokenizer.json
// trained on the demo dataset's text, tokenizer_config.json with a LLaVA-1.5 style chat template, and a
// CLIPImageProcessor preprocessor_config.json. Deterministic in the seed (the tokenizer does not depend on it).
import { mkdirSync } from 'node:fs';
import {
  llavaToHf,
  parseHfConfig,
  type Activation,
  type LlavaModelConfig,
  type TextConfig,
  type VisionConfig,
} from '../config';
import { expectedTensors } from '../weights/names';
import { memorySource, type Tensor } from '../weights/safetensors';
import { saveHfFolder } from '../hf-folder';
import { LLAVA_CHAT_TEMPLATE } from '../chat-template';
import { trainByteLevelBpe } from './bpe';
import { demoCorpus } from './dataset';
import { demoRng } from './rng';

export const DEMO_SPECIAL_TOKENS = ['<unk>', '<s>', '</s>', '<pad>', '<image>'];
export const DEMO_CORPUS_SEED = 1234;

export interface TinyLlavaOptions {
  imageSize?: number;
  patchSize?: number;
  visionHidden?: number;
  visionLayers?: number;
  visionHeads?: number;
  visionIntermediate?: number;
  textHidden?: number;
  textLayers?: number;
  textHeads?: number;
  textKvHeads?: number;
  textIntermediate?: number;
  vocabSize?: number;
  /**
   * config vocab_size when larger than the tokenizer's (Qwen2-0.5B: 151,936 rows for 151,646 tokens): the token table
   * and head get rows no text produces; benchmarks use it for a real LM head's size with the small demo tokenizer
   */
  configVocabSize?: number;
  tieWordEmbeddings?: boolean;
  visionFeatureLayer?: number;
  visionFeatureSelectStrategy?: 'default' | 'full';
  projectorType?: 'mlp' | 'linear';
  projectorHiddenAct?: Activation;
  maxPositionEmbeddings?: number;
  /** std of the normal init of weight matrices (default 0.02, transformers' initializer_range) */
  initStd?: number;
}

const tokenizerCache = new Map<number, string>();

/** tokenizer.json + tokenizer_config.json of the demo model (BPE trained on demo text). */
export function demoTokenizerFiles(vocabSize = 512): {
  tokenizer: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
} {
  // training takes a second or two; the result only depends on vocabSize
  let cached = tokenizerCache.get(vocabSize);
  if (cached === undefined) {
    cached = JSON.stringify(
      trainByteLevelBpe(demoCorpus(DEMO_CORPUS_SEED, 3000), {
        vocabSize,
        specialTokens: DEMO_SPECIAL_TOKENS,
        bosToken: '<s>',
      }),
    );
    tokenizerCache.set(vocabSize, cached);
  }
  const tokenizer = JSON.parse(cached) as Record<string, unknown>;
  const addedTokensDecoder: Record<string, unknown> = {};
  DEMO_SPECIAL_TOKENS.forEach((content, id) => {
    addedTokensDecoder[String(id)] = {
      content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    };
  });
  const tokenizerConfig = {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: ['<image>'],
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: '<pad>',
    image_token: '<image>',
    chat_template: LLAVA_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_max_length: 512,
    padding_side: 'right',
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  return { tokenizer, tokenizerConfig };
}

export function tinyLlavaConfig(
  vocabSize: number,
  imageTokenIndex: number,
  o: TinyLlavaOptions = {},
): LlavaModelConfig {
  const imageSize = o.imageSize ?? 64;
  const patchSize = o.patchSize ?? 8;
  const vh = o.visionHidden ?? 64;
  const vheads = o.visionHeads ?? 4;
  const numPatches = (imageSize / patchSize) ** 2;
  const vision: VisionConfig = {
    modelType: 'clip_vision_model',
    hiddenSize: vh,
    intermediateSize: o.visionIntermediate ?? 4 * vh,
    numHiddenLayers: o.visionLayers ?? 2,
    numAttentionHeads: vheads,
    headDim: vh / vheads,
    numChannels: 3,
    imageSize,
    patchSize,
    hiddenAct: 'quick_gelu',
    layerNormEps: 1e-5,
    classToken: true,
    preLayerNorm: true,
    patchBias: false,
    useHead: false,
    numPatches,
    numPositions: numPatches + 1,
  };
  const th = o.textHidden ?? 96;
  const heads = o.textHeads ?? 4;
  const text: TextConfig = {
    modelType: 'llama',
    vocabSize,
    hiddenSize: th,
    intermediateSize: o.textIntermediate ?? 256,
    numHiddenLayers: o.textLayers ?? 2,
    numAttentionHeads: heads,
    numKeyValueHeads: o.textKvHeads ?? 2,
    headDim: th / heads,
    hiddenAct: 'silu',
    maxPositionEmbeddings: o.maxPositionEmbeddings ?? 512,
    rmsNormEps: 1e-6,
    rope: { theta: 10000, type: 'default', factor: 1 },
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    tieWordEmbeddings: o.tieWordEmbeddings ?? false,
    bosTokenId: 1,
    eosTokenIds: [2],
    padTokenId: 3,
  };
  const json = llavaToHf({
    vision,
    text,
    imageTokenIndex,
    projectorType: o.projectorType,
    projectorHiddenAct: o.projectorHiddenAct ?? 'gelu',
    visionFeatureLayer: o.visionFeatureLayer ?? -1,
    visionFeatureSelectStrategy: o.visionFeatureSelectStrategy ?? 'default',
  });
  return parseHfConfig(json, 'tiny-llava config.json') as LlavaModelConfig;
}

/** Random weights for every tensor a config expects: matrices ~ N(0, std), biases ~ N(0, std), norm weights ~ 1 + N(0, std). */
export function randomWeights(
  specs: Array<{ name: string; shape: number[] }>,
  seed: number,
  std = 0.02,
): Map<string, Tensor> {
  const rng = demoRng(seed);
  const out = new Map<string, Tensor>();
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = /(norm|layrnorm|layer_norm\d?)\.weight$/.test(s.name);
    for (let i = 0; i < n; i++) data[i] = (isNorm ? 1 : 0) + std * rng.normal();
    out.set(s.name, { dtype: 'F32', shape: s.shape, data });
  }
  return out;
}

export function demoPreprocessorConfig(imageSize: number): Record<string, unknown> {
  return {
    crop_size: { height: imageSize, width: imageSize },
    do_center_crop: true,
    do_convert_rgb: true,
    do_normalize: true,
    do_rescale: true,
    do_resize: true,
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_processor_type: 'CLIPImageProcessor',
    image_std: [0.26862954, 0.26130258, 0.27577711],
    processor_class: 'LlavaProcessor',
    resample: 3,
    rescale_factor: 1 / 255,
    size: { shortest_edge: imageSize },
  };
}

/** Write a random-initialized tiny LLaVA folder; returns its normalized config. */
export function writeTinyLlava(
  dir: string,
  seed: number,
  opts: TinyLlavaOptions & { maxShardBytes?: number; dtype?: 'F32' | 'F16' | 'BF16' } = {},
): LlavaModelConfig {
  const { tokenizer, tokenizerConfig } = demoTokenizerFiles(opts.vocabSize ?? 512);
  const vocab = (tokenizer.model as { vocab: Record<string, number> }).vocab;
  const vocabSize = Math.max(Object.keys(vocab).length, opts.configVocabSize ?? 0);
  const config = tinyLlavaConfig(vocabSize, vocab['<image>'], opts);
  const weights = randomWeights(expectedTensors(config), seed, opts.initStd ?? 0.02);
  mkdirSync(dir, { recursive: true });
  saveHfFolder(dir, {
    config: config.raw,
    weights: memorySource(weights),
    dtype: opts.dtype,
    tokenizer,
    tokenizerConfig,
    preprocessorConfig: demoPreprocessorConfig(config.vision.imageSize),
    generationConfig: { bos_token_id: 1, eos_token_id: 2, pad_token_id: 3, max_new_tokens: 32 },
    maxShardBytes: opts.maxShardBytes,
  });
  return config;
}
