// Random-initialized tiny OPT (OPTForCausalLM) and BLIP-2 OPT (Blip2ForConditionalGeneration) folders in the
// published layouts, for tests and benchmarks: config.json as OPTConfig / Blip2Config write it, model.safetensors
// (model.decoder.*; vision_model.*, query_tokens, qformer.*, language_projection.*, language_model.*), a GPT-2
// byte-level BPE tokenizer.json with OPT's special tokens (<s> 0, <pad> 1, </s> 2, <unk> 3; </s> prepended as OPT's
// tokenizer does; BLIP-2 adds "<image>"), and for BLIP-2 preprocessor_config.json (BlipImageProcessor) and
// processor_config.json (num_query_tokens), as the updated Salesforce/blip2-opt-* repositories publish them.
// Weights are deterministic in the seed.
import { mkdirSync } from 'node:fs';
import { parseHfConfig, type TextConfig, type TextModelConfig, type VisionConfig } from '../config';
import { blip2ToHf, type Blip2ModelConfig, type QFormerConfig } from '../families/blip2/config';
import { optToHf } from '../decoder/opt';
import { expectedTensors } from '../weights/names';
import { memorySource, type Tensor, type TensorSource } from '../weights/safetensors';
import { numel, type FloatDtype } from '../weights/dtype';
import { saveHfFolder } from '../hf-folder';
import { trainByteLevelBpe } from './bpe';
import { demoCorpus } from './dataset';
import { demoRng, subSeed, type Rng } from './rng';
import { DEMO_CORPUS_SEED } from './tiny-llava';

export const OPT_SPECIAL_TOKENS = ['<s>', '<pad>', '</s>', '<unk>'];

/** OPT's tokenizer files at a toy vocabulary; `extraTokens` are added special tokens after the BPE vocabulary. */
export function optTokenizerFiles(
  bpeSize = 320,
  extraTokens: string[] = [],
): {
  tokenizer: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  vocab: Record<string, number>;
  size: number;
} {
  const tokenizer = trainByteLevelBpe(demoCorpus(DEMO_CORPUS_SEED, 3000), {
    vocabSize: bpeSize,
    specialTokens: OPT_SPECIAL_TOKENS,
    bosToken: '</s>',
  });
  const vocab = (tokenizer.model as { vocab: Record<string, number> }).vocab;
  let size = Object.keys(vocab).length;
  const added = tokenizer.added_tokens as Array<Record<string, unknown>>;
  const ids: Record<string, number> = { ...vocab };
  for (const t of extraTokens) {
    added.push({
      id: size,
      content: t,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    });
    ids[t] = size++;
  }
  const decoder: Record<string, unknown> = {};
  for (const t of added)
    decoder[String(t.id)] = {
      content: t.content,
      lstrip: false,
      normalized: (t.id as number) < 4,
      rstrip: false,
      single_word: false,
      special: true,
    };
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: true,
    add_prefix_space: false,
    added_tokens_decoder: decoder,
    bos_token: '</s>',
    clean_up_tokenization_spaces: false,
    eos_token: '</s>',
    errors: 'replace',
    model_max_length: 1000000000000000019884624838656,
    pad_token: '<pad>',
    tokenizer_class: 'GPT2Tokenizer',
    unk_token: '</s>',
  };
  if (extraTokens.length) tokenizerConfig.additional_special_tokens = extraTokens;
  return { tokenizer, tokenizerConfig, vocab: ids, size };
}

export interface TinyOptOptions {
  hidden?: number;
  layers?: number;
  heads?: number;
  ffn?: number;
  vocabSize?: number;
  maxPositionEmbeddings?: number;
  tieWordEmbeddings?: boolean;
  layerNormBefore?: boolean;
  eosTokenId?: number;
  initStd?: number;
}

/** The normalized OPT text config of a tiny model. */
export function tinyOptText(vocabSize: number, o: TinyOptOptions = {}): TextConfig {
  const h = o.hidden ?? 32;
  const heads = o.heads ?? 4;
  const ln = o.layerNormBefore ?? true;
  return {
    modelType: 'opt',
    vocabSize,
    hiddenSize: h,
    intermediateSize: o.ffn ?? 64,
    numHiddenLayers: o.layers ?? 2,
    numAttentionHeads: heads,
    numKeyValueHeads: heads,
    headDim: h / heads,
    hiddenAct: 'relu',
    maxPositionEmbeddings: o.maxPositionEmbeddings ?? 128,
    rmsNormEps: 1e-5,
    rope: { theta: 10000, type: 'default', factor: 1 },
    qkvBias: true,
    oBias: true,
    mlpBias: true,
    tieWordEmbeddings: o.tieWordEmbeddings ?? true,
    bosTokenId: 2,
    eosTokenIds: [o.eosTokenId ?? 2],
    padTokenId: 1,
    opt: { layerNormBefore: ln, finalLayerNorm: ln, enableBias: true, layerNormEps: 1e-5, positionOffset: 2 },
  };
}

/** One tensor's random values from `rng`: ~ N(0, std), LayerNorm weights ~ 1 + N(0, std) (any spelling of layer norm). */
function randomTensor(name: string, shape: number[], rng: Rng, std: number): Float32Array {
  const data = new Float32Array(numel(shape));
  const base = /(norm|Norm|layer_norm\d?)\.weight$/.test(name) ? 1 : 0;
  for (let i = 0; i < data.length; i++) data[i] = base + std * rng.normal();
  return data;
}

/** Random weights: matrices and biases ~ N(0, std), LayerNorm weights ~ 1 + N(0, std), all from one stream. */
export function randomBlip2Weights(
  specs: Array<{ name: string; shape: number[] }>,
  seed: number,
  std: number,
): Map<string, Tensor> {
  const rng = demoRng(seed);
  const out = new Map<string, Tensor>();
  for (const s of specs)
    out.set(s.name, { dtype: 'F32', shape: s.shape, data: randomTensor(s.name, s.shape, rng, std) });
  return out;
}

/**
 * The same kind of random weights as randomBlip2Weights, made one tensor at a time when read (each from its own
 * stream, subSeed(seed, its index in `specs`)): a folder of billions of parameters is written while only the tensor
 * being written is in memory. get() makes the tensor again on every call.
 */
export function lazyRandomBlip2Weights(
  specs: Array<{ name: string; shape: number[] }>,
  seed: number,
  std: number,
): TensorSource {
  const byName = new Map(specs.map((s, i) => [s.name, { shape: s.shape, index: i }]));
  const spec = (n: string) => {
    const s = byName.get(n);
    if (!s) throw new Error(`no tensor named "${n}"`);
    return s;
  };
  return {
    names: () => [...byName.keys()],
    has: (n) => byName.has(n),
    info: (n) => ({ dtype: 'F32', shape: spec(n).shape }),
    get: (n) => {
      const s = spec(n);
      return randomTensor(n, s.shape, demoRng(subSeed(seed, s.index)), std);
    },
  };
}

/** Write a random tiny OPTForCausalLM folder; returns its parsed config. */
export function writeTinyOpt(dir: string, seed: number, o: TinyOptOptions = {}): TextModelConfig {
  const tok = optTokenizerFiles();
  const text = tinyOptText(o.vocabSize ?? tok.size + 8, o);
  const json = { architectures: ['OPTForCausalLM'], ...optToHf(text), torch_dtype: 'float32' };
  const config = parseHfConfig(json, 'tiny-opt config.json') as TextModelConfig;
  mkdirSync(dir, { recursive: true });
  saveHfFolder(dir, {
    config: config.raw,
    weights: memorySource(randomBlip2Weights(expectedTensors(config), seed, o.initStd ?? 0.02)),
    tokenizer: tok.tokenizer,
    tokenizerConfig: tok.tokenizerConfig,
    generationConfig: { bos_token_id: 2, eos_token_id: text.eosTokenIds[0], pad_token_id: 1, max_new_tokens: 32 },
  });
  return config;
}

/**
 * A reduced-width BLIP-2 OPT for benchmarks (about 0.28B parameters): a ViT-B/16-like 12x768 vision model at 224 px
 * (197 tokens), the published Q-Former shape (12x768, cross-attention every 2nd layer, 32 queries), an OPT-125m-like
 * 12x768 decoder (ffn 3072); the toy tokenizer's vocabulary.
 */
export const BLIP2_BENCH: TinyBlip2Options = {
  imageSize: 224,
  patchSize: 16,
  visionHidden: 768,
  visionLayers: 12,
  visionHeads: 12,
  visionIntermediate: 3072,
  qformerHidden: 768,
  qformerLayers: 12,
  qformerHeads: 12,
  qformerIntermediate: 3072,
  numQueryTokens: 32,
  hidden: 768,
  layers: 12,
  heads: 12,
  ffn: 3072,
  maxPositionEmbeddings: 512,
};

/**
 * Salesforce/blip2-opt-2.7b's shapes: EVA ViT-g (39 x 1408, 16 heads, MLP 6144) at 224 px in 14 px patches (257
 * tokens), the Q-Former (12 x 768, 32 queries), OPT-2.7B (32 x 2560, 32 heads, ffn 10240, 50,272-row tied table,
 * 2048 positions). The toy tokenizer's vocabulary sits in the first rows of the table.
 */
export const BLIP2_OPT_2_7B: TinyBlip2Options = {
  imageSize: 224,
  patchSize: 14,
  visionHidden: 1408,
  visionLayers: 39,
  visionHeads: 16,
  visionIntermediate: 6144,
  qformerHidden: 768,
  qformerLayers: 12,
  qformerHeads: 12,
  qformerIntermediate: 3072,
  numQueryTokens: 32,
  hidden: 2560,
  layers: 32,
  heads: 32,
  ffn: 10240,
  vocabSize: 50272,
  maxPositionEmbeddings: 2048,
  tieWordEmbeddings: true,
};

export interface TinyBlip2Options extends TinyOptOptions {
  imageSize?: number;
  patchSize?: number;
  visionHidden?: number;
  visionLayers?: number;
  visionHeads?: number;
  visionIntermediate?: number;
  qformerHidden?: number;
  qformerLayers?: number;
  qformerHeads?: number;
  qformerIntermediate?: number;
  crossAttentionFrequency?: number;
  numQueryTokens?: number;
}

/** The normalized config of a tiny BLIP-2 (before parsing). */
export function tinyBlip2Parts(
  o: TinyBlip2Options,
  vocabSize: number,
  imageTokenIndex: number,
  eos: number,
): { vision: VisionConfig; qformer: QFormerConfig; text: TextConfig; numQueryTokens: number; imageTokenIndex: number } {
  const imageSize = o.imageSize ?? 32;
  const patchSize = o.patchSize ?? 8;
  const vh = o.visionHidden ?? 32;
  const vheads = o.visionHeads ?? 4;
  const n = Math.floor(imageSize / patchSize) ** 2;
  const vision: VisionConfig = {
    modelType: 'blip_2_vision_model',
    hiddenSize: vh,
    intermediateSize: o.visionIntermediate ?? 64,
    numHiddenLayers: o.visionLayers ?? 2,
    numAttentionHeads: vheads,
    headDim: vh / vheads,
    numChannels: 3,
    imageSize,
    patchSize,
    hiddenAct: 'gelu',
    layerNormEps: 1e-6,
    classToken: true,
    preLayerNorm: false,
    patchBias: true,
    useHead: false,
    numPatches: n,
    numPositions: n + 1,
    qkvBias: 'qv',
  };
  const qformer: QFormerConfig = {
    hiddenSize: o.qformerHidden ?? 32,
    numHiddenLayers: o.qformerLayers ?? 3,
    numAttentionHeads: o.qformerHeads ?? 4,
    intermediateSize: o.qformerIntermediate ?? 48,
    hiddenAct: 'gelu',
    layerNormEps: 1e-12,
    crossAttentionFrequency: o.crossAttentionFrequency ?? 2,
    encoderHiddenSize: vh,
    vocabSize: 30522,
    maxPositionEmbeddings: 512,
  };
  return {
    vision,
    qformer,
    text: tinyOptText(vocabSize, { ...o, eosTokenId: eos }),
    numQueryTokens: o.numQueryTokens ?? 4,
    imageTokenIndex,
  };
}

export interface WriteBlip2Options {
  /** Storage dtype of every tensor (config.json's torch_dtype follows); default F32. */
  dtype?: FloatDtype;
  /**
   * Make each tensor only when it is written (lazyRandomBlip2Weights) instead of all of them first: for folders too
   * large to hold in memory. The values differ from the default's (one stream per tensor).
   */
  stream?: boolean;
}

/** Write a random tiny Blip2ForConditionalGeneration folder (OPT decoder, image_token_index layout); returns its config. */
export function writeTinyBlip2(
  dir: string,
  seed: number,
  o: TinyBlip2Options = {},
  w: WriteBlip2Options = {},
): Blip2ModelConfig {
  const tok = optTokenizerFiles(320, ['<image>']);
  // LAVIS trained BLIP-2 to end captions with "\n"; the published text_config.eos_token_id is its token (50118)
  const newline = tok.vocab['\u010a'];
  const parts = tinyBlip2Parts(o, o.vocabSize ?? tok.size + 7, tok.vocab['<image>'], newline);
  const config = parseHfConfig(blip2ToHf(parts), 'tiny-blip2 config.json') as Blip2ModelConfig;
  mkdirSync(dir, { recursive: true });
  const specs = expectedTensors(config);
  const std = o.initStd ?? 0.02;
  saveHfFolder(dir, {
    config: config.raw,
    weights: w.stream ? lazyRandomBlip2Weights(specs, seed, std) : memorySource(randomBlip2Weights(specs, seed, std)),
    ...(w.dtype ? { dtype: w.dtype } : {}),
    tokenizer: tok.tokenizer,
    tokenizerConfig: { ...tok.tokenizerConfig, processor_class: 'Blip2Processor' },
    preprocessorConfig: {
      do_convert_rgb: true,
      do_normalize: true,
      do_rescale: true,
      do_resize: true,
      image_mean: [0.48145466, 0.4578275, 0.40821073],
      image_processor_type: 'BlipImageProcessor',
      image_std: [0.26862954, 0.26130258, 0.27577711],
      processor_class: 'Blip2Processor',
      resample: 3,
      rescale_factor: 1 / 255,
      size: { height: parts.vision.imageSize, width: parts.vision.imageSize },
    },
    processorConfig: { num_query_tokens: parts.numQueryTokens, processor_class: 'Blip2Processor' },
    generationConfig: { bos_token_id: 2, eos_token_id: newline, pad_token_id: 1, max_new_tokens: 32 },
  });
  return config;
}
