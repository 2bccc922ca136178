// A data file or folder (anything `lenslab datasets import` reads) as the flat lists the folder-based model work uses:
// image items with their first caption and first tag (CLIP / SigLIP), and (image, question, answer) triples or
// (image, caption) pairs (BLIP). Read straight from the file, no database involved.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ApiError } from '../contract/errors';
import { parseSource } from './parse';
import type { ImageInput } from '../models/image-processor';

export interface DataPair {
  ref: string;
  image: ImageInput;
  text?: string;
  label?: string;
  split?: string;
}

/** Image items of a data file or folder, with their first caption and first tag. */
export async function readPairs(
  path: string,
  o: { split?: string; limit?: number; warn?: (line: string) => void } = {},
): Promise<DataPair[]> {
  let parsed;
  try {
    parsed = await parseSource(resolve(path));
  } catch (e) {
    throw new ApiError('invalid_request', `${path}: ${(e as Error).message}`, 'data');
  }
  try {
    for (const p of parsed.problems) if (p.severity === 'error') o.warn?.(`${p.severity}: ${p.ref}: ${p.message}`);
    const out: DataPair[] = [];
    for (const it of parsed.items) {
      if (!it.image) continue;
      if (o.split && (it.split ?? 'train') !== o.split) continue;
      const cap = it.annotations.find((a) => a.kind === 'caption');
      const image: ImageInput = 'path' in it.image ? it.image.path : Buffer.from(it.image.bytes);
      out.push({
        ref: it.sourcePath,
        image,
        text: cap?.kind === 'caption' ? cap.data.text : undefined,
        label: it.tags?.[0],
        split: it.split,
      });
      if (o.limit !== undefined && out.length >= o.limit) break;
    }
    // images are read by path later: copy bytes of archives before cleanup
    for (const p of out) if (typeof p.image === 'string' && parsed.archive) p.image = readFileSync(p.image);
    return out;
  } finally {
    parsed.cleanup();
  }
}

export interface VqaItem {
  ref: string;
  image: ImageInput;
  question: string;
  answer: string;
  split?: string;
}

/** (image, question, answer) triples of a data file or folder, in item order; with `captions`, (image, caption) pairs. */
export async function readVqaItems(
  path: string,
  o: { split?: string; limit?: number; captions?: boolean; warn?: (line: string) => void } = {},
): Promise<VqaItem[]> {
  let parsed;
  try {
    parsed = await parseSource(resolve(path));
  } catch (e) {
    throw new ApiError('invalid_request', `${path}: ${(e as Error).message}`, 'data');
  }
  try {
    for (const p of parsed.problems) if (p.severity === 'error') o.warn?.(`${p.severity}: ${p.ref}: ${p.message}`);
    const out: VqaItem[] = [];
    for (const it of parsed.items) {
      if (!it.image) continue;
      if (o.split && (it.split ?? 'train') !== o.split) continue;
      const image: ImageInput = 'path' in it.image ? it.image.path : Buffer.from(it.image.bytes);
      if (o.captions) {
        const caps = it.annotations.filter((a) => a.kind === 'caption');
        caps.forEach((a, k) => {
          if (a.kind !== 'caption' || (o.limit !== undefined && out.length >= o.limit)) return;
          out.push({
            ref: caps.length > 1 ? `${it.sourcePath}#${k}` : it.sourcePath,
            image,
            question: '',
            answer: a.data.text,
            split: it.split,
          });
        });
        continue;
      }
      const qas = it.annotations.filter((a) => a.kind === 'qa');
      qas.forEach((a, k) => {
        if (a.kind !== 'qa' || (o.limit !== undefined && out.length >= o.limit)) return;
        out.push({
          ref: qas.length > 1 ? `${it.sourcePath}#${k}` : it.sourcePath,
          image,
          question: a.data.question,
          answer: a.data.answer,
          split: it.split,
        });
      });
    }
    // images are read by path later: copy bytes of archives before cleanup
    for (const p of out) if (typeof p.image === 'string' && parsed.archive) p.image = readFileSync(p.image);
    return out;
  } finally {
    parsed.cleanup();
  }
}
