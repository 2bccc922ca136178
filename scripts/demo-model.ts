#!/usr/bin/env -S npx tsx
// Write the tiny random-initialized LLaVA in exact Hugging Face layout (CLIP-style tower, MLP projector,
// LLaMA decoder with GQA, byte-level BPE tokenizer.json, chat template, CLIP preprocessor config).
// Usage: npx tsx scripts/demo-model.ts --out DIR [--seed 0] [--dtype F32|F16|BF16] [--image-size 64] [--patch-size 8]
//          [--text-hidden 96] [--text-layers 2] [--vision-hidden 64] [--vision-layers 2] [--tie]
import { parseArgs } from 'node:util';
import { writeTinyLlava } from '../src-main/models/demo/tiny-llava';

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    seed: { type: 'string', default: '0' },
    dtype: { type: 'string', default: 'F32' },
    'image-size': { type: 'string' },
    'patch-size': { type: 'string' },
    'text-hidden': { type: 'string' },
    'text-layers': { type: 'string' },
    'vision-hidden': { type: 'string' },
    'vision-layers': { type: 'string' },
    tie: { type: 'boolean', default: false },
  },
});
if (!values.out || !['F32', 'F16', 'BF16'].includes(values.dtype!)) {
  console.error(
    'usage: npx tsx scripts/demo-model.ts --out DIR [--seed N] [--dtype F32|F16|BF16] [--image-size 64] [--patch-size 8] [--text-hidden 96] [--text-layers 2] [--vision-hidden 64] [--vision-layers 2] [--tie]',
  );
  process.exit(2);
}
const opt = (v: string | undefined) => (v === undefined ? undefined : Number(v));
const cfg = writeTinyLlava(values.out, Number(values.seed), {
  dtype: values.dtype as 'F32' | 'F16' | 'BF16',
  imageSize: opt(values['image-size']),
  patchSize: opt(values['patch-size']),
  textHidden: opt(values['text-hidden']),
  textLayers: opt(values['text-layers']),
  visionHidden: opt(values['vision-hidden']),
  visionLayers: opt(values['vision-layers']),
  tieWordEmbeddings: values.tie,
});
console.log(
  `wrote ${values.out}: vision ${cfg.vision.numHiddenLayers}x${cfg.vision.hiddenSize} (${cfg.vision.imageSize}px, patch ${cfg.vision.patchSize}, ${cfg.numImageTokens} image tokens), ` +
    `decoder ${cfg.text.numHiddenLayers}x${cfg.text.hiddenSize} (${cfg.text.numAttentionHeads} heads / ${cfg.text.numKeyValueHeads} kv), vocab ${cfg.text.vocabSize}`,
);
