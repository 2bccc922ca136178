// A tiny BLIP folder in the published layout (config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
// special_tokens_map.json, preprocessor_config.json), random weights deterministic in the seed. The tokenizer is
// BertTokenizerFast's pipeline (BertNormalizer lowercase, BertPreTokenizer, WordPiece "##", [CLS] ... [SEP]) at a toy
// vocabulary, with BLIP's added [DEC] (bos, the answer decoder's first token) and [ENC] after the vocabulary.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../hf-folder';
import { blipToHf, parseBlipConfig, type BlipArchitecture, type BlipConfig } from '../families/blip/config';
import { blipTensors } from '../families/blip/graph';
import { writeSafetensors } from '../weights/safetensors';
import { randomWeights } from './tiny-llava';
import { TINY_WORDS } from './tiny-contrastive';
import { NUMBER_WORDS } from './shapes';

const QUESTION_WORDS = [
  'how',
  'many',
  'what',
  'color',
  'which',
  'does',
  'do',
  'it',
  'this',
  'that',
  'picture',
  'image',
  'yes',
  'no',
  'kind',
  'where',
  'diamond',
  'diamonds',
  'heart',
  'hearts',
  'arrow',
  'arrows',
  'moon',
  'moons',
  'cloud',
  'clouds',
  'sun',
  'cat',
  'dog',
  'black',
  'orange',
  'pink',
  'brown',
  'has',
  'have',
  'can',
  'you',
  'see',
  'same',
  'different',
  'as',
  'to',
  'or',
  'not',
  ...NUMBER_WORDS,
];

/** BertTokenizerFast tokenizer.json + tokenizer_config.json with a toy WordPiece vocabulary. */
export function tinyBertTokenizer(): {
  tokenizer: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  specialTokensMap: Record<string, unknown>;
  ids: Record<string, number>;
  size: number;
} {
  const vocab: Record<string, number> = {};
  const add = (t: string) => {
    if (vocab[t] === undefined) vocab[t] = Object.keys(vocab).length;
  };
  for (const t of ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']) add(t);
  for (const c of '0123456789') add(c);
  for (const c of "?.,!'-:") add(c);
  for (const w of [...TINY_WORDS, ...QUESTION_WORDS]) add(w.toLowerCase());
  for (const c of 'abcdefghijklmnopqrstuvwxyz') add(c);
  for (const c of 'abcdefghijklmnopqrstuvwxyz0123456789') add(`##${c}`);
  for (const s of ['##s', '##es', '##ed', '##ing']) add(s);
  const dec = Object.keys(vocab).length;
  const enc = dec + 1;
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      special(0, '[PAD]'),
      special(1, '[UNK]'),
      special(2, '[CLS]'),
      special(3, '[SEP]'),
      special(4, '[MASK]'),
      special(dec, '[DEC]'),
      special(enc, '[ENC]'),
    ],
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [2], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [3], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab,
    },
  };
  const tokenizerConfig = {
    tokenizer_class: 'BertTokenizer',
    processor_class: 'BlipProcessor',
    do_lower_case: true,
    cls_token: '[CLS]',
    sep_token: '[SEP]',
    pad_token: '[PAD]',
    unk_token: '[UNK]',
    mask_token: '[MASK]',
    bos_token: '[DEC]',
    additional_special_tokens: ['[ENC]'],
    model_max_length: 512,
  };
  const specialTokensMap = {
    bos_token: '[DEC]',
    cls_token: '[CLS]',
    mask_token: '[MASK]',
    pad_token: '[PAD]',
    sep_token: '[SEP]',
    unk_token: '[UNK]',
    additional_special_tokens: ['[ENC]'],
  };
  return {
    tokenizer,
    tokenizerConfig,
    specialTokensMap,
    ids: { pad: 0, unk: 1, cls: 2, sep: 3, mask: 4, dec, enc },
    size: enc + 1,
  };
}

export interface TinyBlipOptions {
  architecture?: BlipArchitecture;
  imageSize?: number;
  patchSize?: number;
  hidden?: number;
  layers?: number;
  heads?: number;
  textPositions?: number;
  std?: number;
  /** label_smoothing written into text_config (left out when undefined: the published configs have none) */
  labelSmoothing?: number;
  /** leave these tensors out (bad-input tests) */
  omit?: string[];
}

/** Write a tiny random BLIP folder; returns its parsed config. */
export function writeTinyBlip(dir: string, seed: number, o: TinyBlipOptions = {}): BlipConfig {
  const imageSize = o.imageSize ?? 32;
  const patchSize = o.patchSize ?? 8;
  const h = o.hidden ?? 32;
  const layers = o.layers ?? 2;
  const heads = o.heads ?? 4;
  const tok = tinyBertTokenizer();
  const json = blipToHf(
    {
      architecture: o.architecture ?? 'BlipForQuestionAnswering',
      vision: {
        hiddenSize: h,
        intermediateSize: 2 * h,
        numHiddenLayers: layers,
        numAttentionHeads: heads,
        imageSize,
        patchSize,
        numChannels: 3,
        layerNormEps: 1e-5,
        hiddenAct: 'gelu',
        qkvBias: 'full',
      },
      text: {
        vocabSize: Math.ceil(tok.size / 8) * 8,
        hiddenSize: h,
        encoderHiddenSize: h,
        intermediateSize: 2 * h,
        numHiddenLayers: layers,
        numAttentionHeads: heads,
        maxPositionEmbeddings: o.textPositions ?? 32,
        hiddenAct: 'gelu',
        layerNormEps: 1e-12,
        bosTokenId: tok.ids.dec,
        padTokenId: tok.ids.pad,
        sepTokenId: tok.ids.sep,
        eosTokenId: 2,
        labelSmoothing: o.labelSmoothing ?? 0.1,
      },
    },
    { torch_dtype: 'float32' },
  );
  if (o.labelSmoothing === undefined) delete (json.text_config as Record<string, unknown>).label_smoothing;
  const config = parseBlipConfig(json, join(dir, 'config.json'));
  const weights = randomWeights(blipTensors(config), seed, o.std ?? 0.2);
  for (const [name, t] of weights)
    if (/LayerNorm\.weight$/.test(name)) for (let i = 0; i < t.data.length; i++) (t.data as Float32Array)[i] += 1;
  mkdirSync(dir, { recursive: true });
  const omit = new Set(o.omit ?? []);
  writeSafetensors(
    join(dir, 'model.safetensors'),
    [...weights]
      .filter(([name]) => !omit.has(name))
      .map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: () => t.data as Float32Array })),
  );
  writeJsonAtomic(join(dir, 'config.json'), json);
  writeJsonAtomic(join(dir, 'tokenizer.json'), tok.tokenizer);
  writeJsonAtomic(join(dir, 'tokenizer_config.json'), tok.tokenizerConfig);
  writeJsonAtomic(join(dir, 'special_tokens_map.json'), tok.specialTokensMap);
  writeJsonAtomic(join(dir, 'preprocessor_config.json'), {
    do_convert_rgb: true,
    do_normalize: true,
    do_rescale: true,
    do_resize: true,
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_std: [0.26862954, 0.26130258, 0.27577711],
    image_processor_type: 'BlipImageProcessor',
    processor_class: 'BlipProcessor',
    resample: 3,
    rescale_factor: 1 / 255,
    size: { height: imageSize, width: imageSize },
  });
  return config;
}
