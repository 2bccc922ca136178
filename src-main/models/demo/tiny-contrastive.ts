// Tiny CLIP and SigLIP folders in the published layouts (config.json, model.safetensors, tokenizer.json,
// tokenizer_config.json, preprocessor_config.json), random weights deterministic in the seed. The tokenizers have
// the published pipelines at a toy vocabulary: CLIP's byte-level BPE (NFC + whitespace + lowercase normalizer, CLIP's
// split regex, "</w>" word ends, <|startoftext|> ... <|endoftext|>) and SigLIP's SentencePiece Unigram (Metaspace,
// "</s>" appended, pad = eos).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { VisionConfig } from '../config';
import { writeJsonAtomic } from '../hf-folder';
import {
  contrastiveToHf,
  parseContrastiveConfig,
  type ContrastiveConfig,
  type ContrastiveKind,
} from '../families/contrastive/config';
import { contrastiveTensors } from '../families/contrastive/graph';
import { writeSafetensors } from '../weights/safetensors';
import { bytesToUnicode } from './bpe';
import { randomWeights } from './tiny-llava';
import { COLOR_NAMES, SHAPES } from './shapes';

/** Words the toy vocabularies hold whole (the colour/shape captions and prompt templates). */
export const TINY_WORDS = [
  'a',
  'an',
  'the',
  'photo',
  'of',
  'picture',
  'on',
  'white',
  'grey',
  'and',
  'with',
  'in',
  'one',
  'two',
  'three',
  'four',
  'circle',
  'circles',
  'square',
  'squares',
  'triangle',
  'triangles',
  'star',
  'stars',
  'shape',
  'shapes',
  'icon',
  'red',
  'green',
  'blue',
  'yellow',
  'purple',
  'top',
  'bottom',
  'left',
  'right',
  'middle',
  'center',
  'there',
  'is',
  'are',
  ...COLOR_NAMES,
  ...SHAPES,
];

function uniqueWords(): string[] {
  return [...new Set(TINY_WORDS)];
}

/** CLIP's tokenizer.json with a toy merge table (every TINY_WORDS word one token). */
export function tinyClipTokenizer(): {
  tokenizer: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  bos: number;
  eos: number;
  size: number;
} {
  const bytes = bytesToUnicode();
  const vocab: Record<string, number> = {};
  const add = (t: string) => {
    if (vocab[t] === undefined) vocab[t] = Object.keys(vocab).length;
  };
  for (const b of bytes) add(b);
  for (const b of bytes) add(b + '</w>');
  const merges: string[] = [];
  const seen = new Set<string>();
  for (const w of uniqueWords()) {
    const chars = [...w];
    if (chars.length < 2) continue;
    let cur = chars[0];
    for (let i = 1; i < chars.length; i++) {
      const next = i === chars.length - 1 ? chars[i] + '</w>' : chars[i];
      const m = `${cur} ${next}`;
      cur = cur + next;
      if (!seen.has(m)) {
        seen.add(m);
        merges.push(m);
        add(cur);
      }
    }
  }
  const bos = Object.keys(vocab).length;
  const eos = bos + 1;
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: true,
    special: true,
  });
  vocab['<|startoftext|>'] = bos;
  vocab['<|endoftext|>'] = eos;
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(bos, '<|startoftext|>'), special(eos, '<|endoftext|>')],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'NFC' },
        { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' },
        { type: 'Lowercase' },
      ],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: {
            Regex:
              "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+",
          },
          behavior: 'Removed',
          invert: true,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'RobertaProcessing',
      sep: ['<|endoftext|>', eos],
      cls: ['<|startoftext|>', bos],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<|endoftext|>',
      continuing_subword_prefix: '',
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
  const tokenizerConfig = {
    tokenizer_class: 'CLIPTokenizer',
    bos_token: '<|startoftext|>',
    eos_token: '<|endoftext|>',
    unk_token: '<|endoftext|>',
    pad_token: '<|endoftext|>',
    model_max_length: 77,
    do_lower_case: true,
  };
  return { tokenizer, tokenizerConfig, bos, eos, size: eos + 1 };
}

/** SigLIP's tokenizer.json (SentencePiece Unigram) with a toy vocabulary. */
export function tinySiglipTokenizer(): {
  tokenizer: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  eos: number;
  pad: number;
  size: number;
} {
  const pieces: Array<[string, number]> = [
    ['<pad>', 0],
    ['</s>', 0],
    ['<unk>', 0],
    ['▁', -2],
  ];
  for (const w of uniqueWords()) pieces.push([`▁${w}`, -3 - w.length / 10]);
  const have = new Set(pieces.map((p) => p[0]));
  for (const c of "abcdefghijklmnopqrstuvwxyz0123456789.,!?-'")
    for (const [piece, score] of [
      [c, -8],
      [`▁${c}`, -8.5],
    ] as const)
      if (!have.has(piece)) pieces.push([piece, score]);
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
    added_tokens: [special(0, '<pad>'), special(1, '</s>'), special(2, '<unk>')],
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'Lowercase' }, { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }],
    },
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
      ],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 2, vocab: pieces, byte_fallback: false },
  };
  const tokenizerConfig = {
    tokenizer_class: 'SiglipTokenizer',
    eos_token: '</s>',
    pad_token: '</s>',
    unk_token: '<unk>',
    model_max_length: 64,
    do_lower_case: true,
  };
  return { tokenizer, tokenizerConfig, eos: 1, pad: 1, size: pieces.length };
}

export interface TinyContrastiveOptions {
  imageSize?: number;
  patchSize?: number;
  hidden?: number;
  layers?: number;
  heads?: number;
  textPositions?: number;
  projectionDim?: number;
  std?: number;
  /** logit_scale value (log of the temperature's inverse); CLIP's init is log(1/0.07) */
  logitScale?: number;
  /** SigLIP's logit_bias value */
  logitBias?: number;
  /** leave this tensor out (bad-input tests) */
  omit?: string;
}

function preprocessor(kind: ContrastiveKind, size: number): Record<string, unknown> {
  if (kind === 'clip')
    return {
      crop_size: { height: size, width: size },
      do_center_crop: true,
      do_convert_rgb: true,
      do_normalize: true,
      do_rescale: true,
      do_resize: true,
      image_mean: [0.48145466, 0.4578275, 0.40821073],
      image_processor_type: 'CLIPImageProcessor',
      image_std: [0.26862954, 0.26130258, 0.27577711],
      resample: 3,
      rescale_factor: 1 / 255,
      size: { shortest_edge: size },
    };
  return {
    do_normalize: true,
    do_rescale: true,
    do_resize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_processor_type: 'SiglipImageProcessor',
    image_std: [0.5, 0.5, 0.5],
    resample: 2,
    rescale_factor: 1 / 255,
    size: { height: size, width: size },
  };
}

/** Write a tiny random CLIP or SigLIP folder; returns its parsed config. */
export function writeTinyContrastive(
  dir: string,
  kind: ContrastiveKind,
  seed: number,
  o: TinyContrastiveOptions = {},
): ContrastiveConfig {
  const imageSize = o.imageSize ?? 32;
  const patchSize = o.patchSize ?? 8;
  const h = o.hidden ?? 32;
  const layers = o.layers ?? 2;
  const heads = o.heads ?? 4;
  const clip = kind === 'clip';
  const tok = clip ? tinyClipTokenizer() : tinySiglipTokenizer();
  const n = Math.floor(imageSize / patchSize) ** 2;
  const vision: VisionConfig = {
    modelType: clip ? 'clip_vision_model' : 'siglip_vision_model',
    hiddenSize: h,
    intermediateSize: 2 * h,
    numHiddenLayers: layers,
    numAttentionHeads: heads,
    headDim: h / heads,
    numChannels: 3,
    imageSize,
    patchSize,
    hiddenAct: clip ? 'quick_gelu' : 'gelu_pytorch_tanh',
    layerNormEps: clip ? 1e-5 : 1e-6,
    classToken: clip,
    preLayerNorm: clip,
    patchBias: !clip,
    useHead: !clip,
    numPatches: n,
    numPositions: n + (clip ? 1 : 0),
  };
  const vocabSize = Math.ceil(tok.size / 8) * 8;
  const json = contrastiveToHf(
    {
      kind,
      vision,
      text: {
        vocabSize,
        hiddenSize: h,
        intermediateSize: 2 * h,
        numHiddenLayers: layers,
        numAttentionHeads: heads,
        headDim: h / heads,
        maxPositionEmbeddings: o.textPositions ?? (clip ? 16 : 12),
        hiddenAct: clip ? 'quick_gelu' : 'gelu_pytorch_tanh',
        layerNormEps: clip ? 1e-5 : 1e-6,
        padTokenId: clip ? 1 : (tok as { pad: number }).pad,
        bosTokenId: clip ? (tok as { bos: number }).bos : 1,
        eosTokenId: tok.eos,
        projectionSize: h,
      },
      projectionDim: clip ? (o.projectionDim ?? 24) : h,
    },
    { torch_dtype: 'float32' },
  );
  const config = parseContrastiveConfig(json, join(dir, 'config.json'));
  const weights = randomWeights(contrastiveTensors(config), seed, o.std ?? 0.2);
  const scale = o.logitScale ?? Math.log(1 / 0.07);
  weights.get('logit_scale')!.data = new Float32Array([scale]);
  if (!clip) weights.get('logit_bias')!.data = new Float32Array([o.logitBias ?? -2]);
  mkdirSync(dir, { recursive: true });
  writeSafetensors(
    join(dir, 'model.safetensors'),
    [...weights]
      .filter(([name]) => name !== o.omit)
      .map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: () => t.data as Float32Array })),
  );
  writeJsonAtomic(join(dir, 'config.json'), json);
  writeJsonAtomic(join(dir, 'tokenizer.json'), tok.tokenizer);
  writeJsonAtomic(join(dir, 'tokenizer_config.json'), tok.tokenizerConfig);
  writeJsonAtomic(join(dir, 'preprocessor_config.json'), preprocessor(kind, imageSize));
  return config;
}
