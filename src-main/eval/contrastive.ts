// Evaluation of a CLIP / SigLIP model (base or with an adapter) on image-text pairs: zero-shot classification with
// prompt templates (each class's text embedding is the renormalized mean of its templates' normalized embeddings,
// as CLIP's zero-shot evaluation builds its classifier) and image->text / text->image recall@1/5/10 over held-out
// pairs (pair i's text belongs to image i; a hit when fewer than k candidates score strictly higher than the match).

import type { ImageInput } from '../models/image-processor';
import { ContrastiveRunner, type ContrastiveModel } from '../models/families/contrastive/model';
import type { ContrastiveAdapter } from '../models/families/contrastive/adapter';

export const DEFAULT_TEMPLATES = ['a photo of a {}.', 'a picture of a {}.', '{}'];
export const RECALL_KS = [1, 5, 10] as const;

export interface EvalPair {
  image: ImageInput;
  text?: string;
  /** class name for zero-shot (e.g. the item's tag) */
  label?: string;
}

export interface ContrastiveEval {
  pairs: number;
  zeroShot: {
    items: number;
    classes: string[];
    accuracy: number | null;
    predictions: Array<{ label: string; predicted: string }>;
  };
  recall: { imageToText: Record<string, number>; textToImage: Record<string, number> } | null;
  warnings: string[];
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function normalize(v: Float32Array): Float32Array {
  const n = Math.sqrt(dot(v, v)) || 1;
  return v.map((x) => x / n);
}

/** Recall@k of queries against candidates where query i's match is candidate i. */
export function recallAtK(
  sim: (q: number, c: number) => number,
  n: number,
  ks: readonly number[] = RECALL_KS,
): Record<string, number> {
  const hits = ks.map(() => 0);
  for (let q = 0; q < n; q++) {
    const s = sim(q, q);
    let better = 0;
    for (let c = 0; c < n; c++) if (c !== q && sim(q, c) > s) better++;
    ks.forEach((k, j) => {
      if (better < k) hits[j]++;
    });
  }
  return Object.fromEntries(ks.map((k, j) => [`R@${k}`, n ? hits[j] / n : 0]));
}

/** Embeddings of images and of texts (normalized), in chunks of `chunk`. */
export async function embedAll(
  runner: ContrastiveRunner,
  images: readonly ImageInput[],
  texts: readonly string[],
  chunk = 16,
): Promise<{ images: Float32Array[]; texts: Float32Array[]; warnings: string[] }> {
  const imgOut: Float32Array[] = [];
  const txtOut: Float32Array[] = [];
  const warnings: string[] = [];
  const n = Math.max(images.length, texts.length);
  for (let i = 0; i < n; i += chunk) {
    const im = images.slice(i, i + chunk);
    const tx = texts.slice(i, i + chunk);
    // the graph takes both towers' inputs: a side with nothing left gets one placeholder whose output is dropped
    const r = await runner.run(
      im.length ? im : [images[0] ?? { data: new Uint8Array(3), width: 1, height: 1 }],
      tx.length ? tx : [''],
    );
    if (im.length) imgOut.push(...r.imageEmbeds);
    if (tx.length) txtOut.push(...r.textEmbeds);
    warnings.push(...r.warnings.map((w) => w.replace(/^text (\d+)/, (_, k) => `text ${i + Number(k)}`)));
  }
  return { images: imgOut, texts: txtOut, warnings };
}

export async function evaluateContrastive(
  m: ContrastiveModel,
  pairs: readonly EvalPair[],
  o: { adapter?: ContrastiveAdapter | null; templates?: string[] } = {},
): Promise<ContrastiveEval> {
  const runner = await ContrastiveRunner.create(m, { adapter: o.adapter });
  try {
    const templates = o.templates?.length ? o.templates : DEFAULT_TEMPLATES;
    const captioned = pairs.filter((p) => p.text !== undefined && p.text !== '');
    const labelled = pairs.filter((p) => p.label);
    const classes = [...new Set(labelled.map((p) => p.label!))].sort();
    const prompts = classes.flatMap((c) => templates.map((t) => t.replace('{}', c)));
    const imgs = [...new Set([...captioned, ...labelled])];
    const e = await embedAll(
      runner,
      imgs.map((p) => p.image),
      [...captioned.map((p) => p.text!), ...prompts],
    );
    const imgEmb = new Map(imgs.map((p, i) => [p, e.images[i]]));
    let recall: ContrastiveEval['recall'] = null;
    if (captioned.length >= 2) {
      const I = captioned.map((p) => imgEmb.get(p)!);
      const T = e.texts.slice(0, captioned.length);
      recall = {
        imageToText: recallAtK((q, c) => dot(I[q], T[c]), captioned.length),
        textToImage: recallAtK((q, c) => dot(T[q], I[c]), captioned.length),
      };
    }
    const P = e.texts.slice(captioned.length);
    const classEmb = classes.map((_, ci) => {
      const acc = new Float32Array(P[0]?.length ?? 0);
      for (let t = 0; t < templates.length; t++) P[ci * templates.length + t].forEach((x, j) => (acc[j] += x));
      return normalize(acc);
    });
    const predictions = labelled.map((p) => {
      const v = imgEmb.get(p)!;
      let best = 0;
      for (let c = 1; c < classes.length; c++) if (dot(v, classEmb[c]) > dot(v, classEmb[best])) best = c;
      return { label: p.label!, predicted: classes[best] };
    });
    const correct = predictions.filter((x) => x.label === x.predicted).length;
    return {
      pairs: captioned.length,
      zeroShot: {
        items: labelled.length,
        classes,
        accuracy: classes.length >= 2 ? correct / labelled.length : null,
        predictions,
      },
      recall,
      warnings: e.warnings,
    };
  } finally {
    await runner.release();
  }
}
