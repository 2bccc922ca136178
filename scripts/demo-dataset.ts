#!/usr/bin/env -S npx tsx
// Write the procedural icon dataset (shapes in colours on a 3x3 grid, with questions/answers and captions).
// Usage: npx tsx scripts/demo-dataset.ts --out DIR [--seed 1] [--count 500] [--start 0] [--size 64]
//          [--families counting,colors,shapes,positions] [--max-objects 5] [--captions]
// Writes DIR/images/*.png, DIR/llava.json, DIR/vqa.jsonl, DIR/captions.jsonl, DIR/scenes.jsonl. Deterministic in --seed.
import { parseArgs } from 'node:util';
import { writeDemoDataset } from '../src-main/models/demo/dataset';
import { FAMILIES, type Family } from '../src-main/models/demo/shapes';

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    seed: { type: 'string', default: '1' },
    count: { type: 'string', default: '500' },
    start: { type: 'string', default: '0' },
    size: { type: 'string', default: '64' },
    families: { type: 'string', default: FAMILIES.join(',') },
    'max-objects': { type: 'string', default: '5' },
    captions: { type: 'boolean', default: false },
  },
});
if (!values.out) {
  console.error(
    'usage: npx tsx scripts/demo-dataset.ts --out DIR [--seed N] [--count N] [--start N] [--size 64] [--families a,b] [--max-objects 5] [--captions]',
  );
  process.exit(2);
}
const families = values
  .families!.split(',')
  .map((s) => s.trim())
  .filter(Boolean);
for (const f of families) {
  if (!(FAMILIES as readonly string[]).includes(f)) {
    console.error(`--families: unknown family "${f}" (known: ${FAMILIES.join(', ')})`);
    process.exit(2);
  }
}
const int = (name: string, v: string | undefined) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name}: expected a non-negative integer, got ${v}`);
    process.exit(2);
  }
  return n;
};
const samples = await writeDemoDataset(values.out, {
  seed: int('seed', values.seed),
  count: int('count', values.count),
  start: int('start', values.start),
  size: int('size', values.size),
  maxObjects: int('max-objects', values['max-objects']),
  families: families as Family[],
  captionsInLlava: values.captions,
});
console.log(
  `wrote ${samples.length} images, ${samples.reduce((s, x) => s + x.qa.length, 0)} questions to ${values.out}`,
);
