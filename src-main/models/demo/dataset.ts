// Writes the procedural icon dataset to a folder:
//   images/00000.png …      the scenes (PNG, size x size RGB)
//   llava.json              LLaVA instruction format: [{id, image, conversations: [{from: human, value: "<image>\n…"}, {from: gpt, value}]}]
//   vqa.jsonl               one {"image", "question", "answer", "family"} per line
//   captions.jsonl          one {"image", "caption"} per line
//   scenes.jsonl            ground truth: {"image", "objects": [{shape, color, row, col, cx, cy, r}]}
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { FAMILIES, makeSample, type Family, type Sample, type SampleOptions } from './shapes';
import { writeTextAtomic } from '../hf-folder';

export interface DemoDatasetOptions extends SampleOptions {
  seed: number;
  count: number;
  /** first sample index (so train / test splits can be disjoint ranges of one seed) */
  start?: number;
  /** include captions as LLaVA conversations too ("Describe the image." -> caption) */
  captionsInLlava?: boolean;
}

export const CAPTION_PROMPT = 'Describe the image.';

export async function encodePng(rgb: Uint8Array, size: number): Promise<Buffer> {
  return sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.length), { raw: { width: size, height: size, channels: 3 } })
    .png({ compressionLevel: 9, adaptiveFiltering: false })
    .toBuffer();
}

export function imageName(index: number): string {
  return `images/${String(index).padStart(5, '0')}.png`;
}

/** Write the dataset; returns the samples (with their answers) for callers that want them. */
export async function writeDemoDataset(dir: string, opts: DemoDatasetOptions): Promise<Sample[]> {
  mkdirSync(join(dir, 'images'), { recursive: true });
  const families: readonly Family[] = opts.families ?? FAMILIES;
  const samples: Sample[] = [];
  const llava: unknown[] = [];
  const vqa: string[] = [];
  const caps: string[] = [];
  const scenes: string[] = [];
  const start = opts.start ?? 0;
  for (let i = start; i < start + opts.count; i++) {
    const s = makeSample(opts.seed, i, { ...opts, families });
    samples.push(s);
    const image = imageName(i);
    const png = await encodePng(s.rgb, s.scene.size);
    writeFileBuffer(join(dir, image), png);
    s.qa.forEach((qa, k) => {
      llava.push({
        id: `${String(i).padStart(5, '0')}-${k}`,
        image,
        conversations: [
          { from: 'human', value: `<image>\n${qa.question}` },
          { from: 'gpt', value: qa.answer },
        ],
      });
      vqa.push(JSON.stringify({ image, question: qa.question, answer: qa.answer, family: qa.family }));
    });
    if (opts.captionsInLlava) {
      llava.push({
        id: `${String(i).padStart(5, '0')}-caption`,
        image,
        conversations: [
          { from: 'human', value: `<image>\n${CAPTION_PROMPT}` },
          { from: 'gpt', value: s.caption },
        ],
      });
    }
    caps.push(JSON.stringify({ image, caption: s.caption }));
    scenes.push(JSON.stringify({ image, background: s.scene.background, objects: s.scene.objects }));
  }
  writeTextAtomic(join(dir, 'llava.json'), JSON.stringify(llava, null, 1) + '\n');
  writeTextAtomic(join(dir, 'vqa.jsonl'), vqa.join('\n') + '\n');
  writeTextAtomic(join(dir, 'captions.jsonl'), caps.join('\n') + '\n');
  writeTextAtomic(join(dir, 'scenes.jsonl'), scenes.join('\n') + '\n');
  return samples;
}

function writeFileBuffer(path: string, buf: Buffer): void {
  // images are written directly: a partial PNG is re-created on the next run with the same seed
  // (the JSON indexes that point at them are written atomically, last)
  writeFileSync(path, buf);
}

/** Text the demo tokenizer is trained on: questions, answers, captions and the chat-template strings. */
export function demoCorpus(seed: number, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const s = makeSample(seed, i, { families: FAMILIES, render: false });
    for (const qa of s.qa) out.push(`USER: <image>\n${qa.question}\nASSISTANT: ${qa.answer}`);
    out.push(`USER: <image>\n${CAPTION_PROMPT}\nASSISTANT: ${s.caption}`);
  }
  return out;
}
