// A random-initialized Idefics3 / SmolVLM folder in the published layout (config.json as Idefics3Config writes it,
// model.safetensors with model.vision_model.* / model.connector.* / model.text_model.* / lm_head.weight,
// tokenizer.json with SmolVLM's special tokens, tokenizer_config.json with a SmolVLM-style chat template,
// preprocessor_config.json for Idefics3ImageProcessor, processor_config.json with image_seq_len), for tests and
// benchmarks. The tokenizer is a byte-level BPE trained on the demo text (or a byte-only one padded to vocabSize
// for benchmark shapes); weights are deterministic in the seed.
import { mkdirSync } from 'node:fs';
import { parseHfConfig, type TextConfig, type VisionConfig } from '../config';
import { idefics3ToHf, type Idefics3ModelConfig } from '../families/idefics3/config';
import { expectedTensors } from '../weights/names';
import { memorySource } from '../weights/safetensors';
import { saveHfFolder } from '../hf-folder';
import { trainByteLevelBpe } from './bpe';
import { demoCorpus } from './dataset';
import { DEMO_CORPUS_SEED, randomWeights } from './tiny-llava';

/**
 * SmolVLM-Instruct's chat template, extended to take plain-string content as well as lists of parts (the published
 * one iterates over content parts only).
 */
export const SMOLVLM_CHAT_TEMPLATE =
  "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}{% if message['content'] is string %}{{ ': ' + message['content'] }}" +
  "{% else %}{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}{% for line in message['content'] %}" +
  "{% if line['type'] == 'text' %}{{ line['text'] }}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}" +
  "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

/** SmolVLM's special tokens (ids 0..), tile markers up to `grid` x `grid`. */
export function idefics3SpecialTokens(grid: number): string[] {
  const rows: string[] = [];
  for (let r = 1; r <= grid; r++) for (let c = 1; c <= grid; c++) rows.push(`<row_${r}_col_${c}>`);
  return [
    '<|endoftext|>',
    '<|im_start|>',
    '<|im_end|>',
    '<end_of_utterance>',
    '<image>',
    '<fake_token_around_image>',
    '<global-img>',
    ...rows,
  ];
}

export interface TinyIdefics3Options {
  modelType?: 'idefics3' | 'smolvlm';
  imageSize?: number;
  patchSize?: number;
  scaleFactor?: number;
  visionHidden?: number;
  visionLayers?: number;
  visionHeads?: number;
  visionIntermediate?: number;
  textHidden?: number;
  textLayers?: number;
  textHeads?: number;
  textKvHeads?: number;
  textIntermediate?: number;
  /** vocabulary size; the BPE is trained up to it (default 512) */
  vocabSize?: number;
  /** 'bytes': only special + byte tokens, the embedding table padded to vocabSize (benchmarks at real vocab sizes) */
  tokenizer?: 'bpe' | 'bytes';
  tieWordEmbeddings?: boolean;
  /** preprocessor size.longest_edge (default 2 tiles per side) */
  longestEdge?: number;
  maxPositionEmbeddings?: number;
  initStd?: number;
}

function tokenizerFiles(
  o: TinyIdefics3Options,
  grid: number,
): { tokenizer: Record<string, unknown>; tokenizerConfig: Record<string, unknown>; vocab: Record<string, number> } {
  const specials = idefics3SpecialTokens(grid);
  const bpe = o.tokenizer === 'bytes';
  const tokenizer = trainByteLevelBpe(bpe ? [] : demoCorpus(DEMO_CORPUS_SEED, 3000), {
    vocabSize: bpe ? specials.length + 256 : (o.vocabSize ?? 512),
    specialTokens: specials,
    bosToken: null,
  });
  const vocab = (tokenizer.model as { vocab: Record<string, number> }).vocab;
  const addedTokensDecoder: Record<string, unknown> = {};
  specials.forEach((content, id) => {
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
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: ['<fake_token_around_image>', '<image>', '<end_of_utterance>'],
    bos_token: '<|im_start|>',
    eos_token: '<end_of_utterance>',
    pad_token: '<|im_end|>',
    unk_token: '<|endoftext|>',
    chat_template: SMOLVLM_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_max_length: 8192,
    processor_class: 'Idefics3Processor',
    tokenizer_class: 'GPT2Tokenizer',
    vocab_size: Object.keys(vocab).length,
  };
  return { tokenizer, tokenizerConfig, vocab };
}

/** Write a random tiny Idefics3 folder; returns its normalized config. */
export function writeTinyIdefics3(dir: string, seed: number, o: TinyIdefics3Options = {}): Idefics3ModelConfig {
  const imageSize = o.imageSize ?? 32;
  const patchSize = o.patchSize ?? 8;
  const longestEdge = o.longestEdge ?? 2 * imageSize;
  const grid = Math.ceil(longestEdge / imageSize);
  const { tokenizer, tokenizerConfig, vocab } = tokenizerFiles(o, grid);
  const vocabSize = o.tokenizer === 'bytes' ? (o.vocabSize ?? 49152) : Object.keys(vocab).length;
  const vh = o.visionHidden ?? 32;
  const vheads = o.visionHeads ?? 4;
  const th = o.textHidden ?? 48;
  const theads = o.textHeads ?? 4;
  const vision: VisionConfig = {
    modelType: 'siglip_vision_model',
    hiddenSize: vh,
    intermediateSize: o.visionIntermediate ?? 64,
    numHiddenLayers: o.visionLayers ?? 2,
    numAttentionHeads: vheads,
    headDim: vh / vheads,
    numChannels: 3,
    imageSize,
    patchSize,
    hiddenAct: 'gelu_pytorch_tanh',
    layerNormEps: 1e-6,
    classToken: false,
    preLayerNorm: false,
    patchBias: true,
    useHead: false,
    numPatches: (imageSize / patchSize) ** 2,
    numPositions: (imageSize / patchSize) ** 2,
  };
  const eos = vocab['<end_of_utterance>'];
  const text: TextConfig = {
    modelType: 'llama',
    vocabSize,
    hiddenSize: th,
    intermediateSize: o.textIntermediate ?? 96,
    numHiddenLayers: o.textLayers ?? 2,
    numAttentionHeads: theads,
    numKeyValueHeads: o.textKvHeads ?? 2,
    headDim: th / theads,
    hiddenAct: 'silu',
    maxPositionEmbeddings: o.maxPositionEmbeddings ?? 2048,
    rmsNormEps: 1e-5,
    rope: { theta: 100000, type: 'default', factor: 1 },
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    tieWordEmbeddings: o.tieWordEmbeddings ?? false,
    bosTokenId: vocab['<|im_start|>'],
    eosTokenIds: [eos],
    padTokenId: vocab['<|im_end|>'],
  };
  const json = idefics3ToHf({
    modelType: o.modelType,
    vision,
    text,
    scaleFactor: o.scaleFactor ?? 2,
    imageTokenId: vocab['<image>'],
  });
  const config = parseHfConfig(json, 'tiny-idefics3 config.json') as Idefics3ModelConfig;
  mkdirSync(dir, { recursive: true });
  saveHfFolder(dir, {
    config: config.raw,
    weights: memorySource(randomWeights(expectedTensors(config), seed, o.initStd ?? 0.02)),
    tokenizer,
    tokenizerConfig,
    preprocessorConfig: {
      do_convert_rgb: true,
      do_image_splitting: true,
      do_normalize: true,
      do_pad: true,
      do_rescale: true,
      do_resize: true,
      image_mean: [0.5, 0.5, 0.5],
      image_processor_type: 'Idefics3ImageProcessor',
      image_std: [0.5, 0.5, 0.5],
      max_image_size: { longest_edge: imageSize },
      processor_class: 'Idefics3Processor',
      resample: 1,
      rescale_factor: 1 / 255,
      size: { longest_edge: longestEdge },
    },
    processorConfig: { image_seq_len: config.numImageTokens, processor_class: 'Idefics3Processor' },
    generationConfig: {
      bos_token_id: vocab['<|im_start|>'],
      eos_token_id: eos,
      pad_token_id: vocab['<|im_end|>'],
      max_new_tokens: 32,
    },
  });
  return config;
}

/**
 * HuggingFaceTB/SmolVLM-256M-Instruct's shapes (SigLIP 12x768 at 512 px / patch 16, pixel shuffle x4 -> 64 tokens per
 * frame, SmolLM2-135M-like 30x576 decoder with 9/3 heads and a 1536 MLP, untied head) with a 49,152-row vocabulary,
 * for benchmarks. `longestEdge` 512 keeps one frame per image (the model's own processor uses 2048: 4 x 4 tiles + global).
 */
export const SMOLVLM_256M: TinyIdefics3Options = {
  modelType: 'idefics3',
  imageSize: 512,
  patchSize: 16,
  scaleFactor: 4,
  visionHidden: 768,
  visionLayers: 12,
  visionHeads: 12,
  visionIntermediate: 3072,
  textHidden: 576,
  textLayers: 30,
  textHeads: 9,
  textKvHeads: 3,
  textIntermediate: 1536,
  vocabSize: 49152,
  tokenizer: 'bytes',
  tieWordEmbeddings: false,
  longestEdge: 512,
  maxPositionEmbeddings: 8192,
};
