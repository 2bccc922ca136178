// Fine-tuning BLIP VQA (BlipForQuestionAnswering) on (image, question, answer) triples, or BLIP captioning
// (BlipForConditionalGeneration) on captioned images, with LoRA, through the
// engine's training step (our autodiff + AdamW): the published recipe's defaults are LoRA r = 16, alpha = 32,
// dropout = 0.05 on PEFT's target_modules ["query", "key"] (every BERT attention's query/key in the question encoder
// and the answer decoder, self- and cross-attention), AdamW lr 4e-5 (PyTorch's weight decay 0.01), batch 8, 1 epoch,
// constant learning rate, no gradient clipping. The loss is BlipForQuestionAnswering's (label-smoothed, mean over the
// batch's answer tokens). LoRA dropout is the engine's counter-based mask seeded per step (dropoutStepSeed), so a
// run is a function of its seed. The result is a PEFT adapter folder (families/blip/adapter.ts).

import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Value } from '../engine/graph/builder';
import { blipTensors } from '../models/families/blip/graph';
import { writeSafetensors } from '../models/weights/safetensors';
import { StepExecutor, tensor } from '../engine';
import type { ImageInput } from '../models/image-processor';
import { DROPOUT_SEED_INPUT, dropoutStepSeed, GraphWeights, type LoraBinding } from '../models/layers';
import { blipLinearModules, blipLoraModules, saveBlipAdapter, type BlipAdapter } from '../models/families/blip/adapter';
import {
  answerBatch,
  blipPixelValues,
  captionForward,
  questionBatch,
  vqaForward,
  type BlipModel,
} from '../models/families/blip/model';
import { Rng } from './rng';
import { presetById } from '../contract/presets';

/** A VQA triple, or (captioning models) an image and its caption in `answer` with no question. */
export interface VqaTriple {
  image: ImageInput;
  question: string;
  answer: string;
}

export interface BlipTrainOptions {
  /** 'lora' (default): an adapter; 'full': every tensor trained (a new model folder, e.g. to pretrain a tiny base) */
  method?: 'lora' | 'full';
  /** PEFT target_modules (default ["query", "key"]) */
  targets?: string[];
  rank?: number;
  alpha?: number;
  dropout?: number;
  lr?: number;
  epochs?: number;
  batchSize?: number;
  gradAccum?: number;
  weightDecay?: number;
  /** clip gradients to this global L2 norm (0 / undefined: none, as the recipe) */
  clipNorm?: number;
  seed?: number;
  onStep?: (s: { step: number; total: number; loss: number }) => void;
}

const PRESET = presetById('blip-vqa-lora')!.hparams;
/** The blip-vqa-lora preset's numbers (contract/presets.ts), the trainer's defaults. */
export const BLIP_VQA_RECIPE = {
  targets: PRESET.targetModules,
  rank: PRESET.rank,
  alpha: PRESET.alpha,
  dropout: PRESET.dropout,
  lr: PRESET.lr,
  batchSize: PRESET.batchSize ?? 8,
  epochs: PRESET.epochs ?? 1,
  weightDecay: PRESET.weightDecay,
} as const;

export class BlipTrainError extends Error {}

export interface BlipTrainResult {
  adapter: BlipAdapter;
  /** method 'full': every tensor after training, by published name */
  tensors?: Map<string, Float32Array>;
  losses: number[];
  steps: number;
}

function checkOptions(m: BlipModel, o: BlipTrainOptions, n: number): void {
  if (n < 1)
    throw new BlipTrainError(
      m.config.architecture === 'BlipForQuestionAnswering'
        ? 'no (image, question, answer) items to train on'
        : 'no captioned images to train on',
    );
  const ints: Array<[string, number | undefined]> = [
    ['rank', o.rank],
    ['epochs', o.epochs],
    ['batch size', o.batchSize],
    ['grad accumulation', o.gradAccum],
  ];
  for (const [name, v] of ints)
    if (v !== undefined && (!Number.isInteger(v) || v < 1))
      throw new BlipTrainError(`${name} must be a positive integer (got ${v})`);
  if (o.dropout !== undefined && !(o.dropout >= 0 && o.dropout < 1))
    throw new BlipTrainError(`LoRA dropout must be in [0, 1) (got ${o.dropout})`);
  if (o.lr !== undefined && !(o.lr > 0 && Number.isFinite(o.lr)))
    throw new BlipTrainError(`learning rate must be a positive number (got ${o.lr})`);
}

/** Train and return the adapter (save it with saveBlipAdapter, or use trainBlipToFolder). */
export async function trainBlipVqa(
  m: BlipModel,
  items: readonly VqaTriple[],
  o: BlipTrainOptions = {},
): Promise<BlipTrainResult> {
  checkOptions(m, o, items.length);
  const c = m.config;
  const R = BLIP_VQA_RECIPE;
  const targets = o.targets ?? [...R.targets];
  const full = o.method === 'full';
  if (o.method !== undefined && o.method !== 'lora' && !full)
    throw new BlipTrainError(`method "${o.method}" (supported: lora, full)`);
  let modules: string[] = [];
  try {
    if (!full) modules = blipLoraModules(c, targets);
  } catch (e) {
    throw new BlipTrainError((e as Error).message);
  }
  const r = o.rank ?? R.rank;
  const alpha = o.alpha ?? R.alpha;
  const dropout = o.dropout ?? R.dropout;
  const scaling = alpha / r;
  const seed = o.seed ?? 42;
  const rng = new Rng(seed);
  const shapes = blipLinearModules(c);
  const params: Array<{ name: string; shape: number[] }> = [];
  const init: Record<string, Float32Array> = {};
  for (const mod of modules) {
    const [out, inn] = shapes.get(mod)!;
    // PEFT's default init: A kaiming-uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B zero
    const a = new Float32Array(r * inn);
    const bound = 1 / Math.sqrt(inn);
    for (let i = 0; i < a.length; i++) a[i] = (2 * rng.float() - 1) * bound;
    params.push({ name: `${mod}.lora_A.weight`, shape: [r, inn] }, { name: `${mod}.lora_B.weight`, shape: [out, r] });
    init[`${mod}.lora_A.weight`] = a;
    init[`${mod}.lora_B.weight`] = new Float32Array(out * r);
  }
  const fullNames = full
    ? blipTensors(c)
        .map((t) => t.name)
        .filter((n) => m.weights.has(n))
    : [];
  for (const n of fullNames) {
    params.push({ name: n, shape: m.weights.info(n).shape });
    init[n] = Float32Array.from(m.weights.get(n));
  }
  const acc = o.gradAccum ?? 1;
  const S = c.vision.imageSize;
  const captioning = c.architecture === 'BlipForConditionalGeneration';
  const ex = await StepExecutor.create(
    {
      params,
      forward: (g, p) => {
        const lora = new Map<string, LoraBinding>();
        for (const mod of modules)
          lora.set(mod, { a: p[`${mod}.lora_A.weight`], b: p[`${mod}.lora_B.weight`], scaling, dropout });
        const trainable: Record<string, Value> = {};
        for (const n of fullNames) trainable[n] = p[n];
        const w = new GraphWeights(g, m.weights, { lora, params: trainable });
        if (captioning)
          return {
            loss: captionForward(w, c, {
              pv: g.input('pixel_values', 'float32', ['B', 3, S, S]),
              ids: g.input('input_ids', 'int64', ['B', 'T']),
              mask: g.input('attention_mask', 'int64', ['B', 'T']),
              labels: g.input('labels', 'int64', ['B', 'T']),
            }).loss.mean,
          };
        const x = {
          pv: g.input('pixel_values', 'float32', ['B', 3, S, S]),
          ids: g.input('input_ids', 'int64', ['B', 'S']),
          mask: g.input('attention_mask', 'int64', ['B', 'S']),
          dids: g.input('decoder_input_ids', 'int64', ['B', 'T']),
          dmask: g.input('decoder_attention_mask', 'int64', ['B', 'T']),
          labels: g.input('labels', 'int64', ['B', 'T']),
        };
        return { loss: vqaForward(w, c, x).loss.mean };
      },
      adamw: { weightDecay: o.weightDecay ?? R.weightDecay },
      clipNorm: o.clipNorm ? o.clipNorm : null,
      accumulation: acc,
      session: { threads: 2 },
    },
    init,
  );
  try {
    const pixels = await blipPixelValues(
      m,
      items.map((t) => t.image),
    );
    const per = 3 * S * S;
    const feedsOf = (idx: number[], step: number, micro: number) => {
      const pv = new Float32Array(idx.length * per);
      idx.forEach((k, j) => pv.set(pixels.data.subarray(k * per, (k + 1) * per), j * per));
      const ab = answerBatch(
        m,
        idx.map((k) => items[k].answer),
      );
      const feeds: Record<string, ReturnType<typeof tensor>> = {
        pixel_values: tensor('float32', [idx.length, 3, S, S], pv),
      };
      if (captioning) {
        feeds.input_ids = tensor('int64', [ab.batch, ab.length], ab.ids);
        feeds.attention_mask = tensor('int64', [ab.batch, ab.length], ab.mask);
      } else {
        const qb = questionBatch(
          m,
          idx.map((k) => items[k].question),
        );
        feeds.input_ids = tensor('int64', [qb.batch, qb.length], qb.ids);
        feeds.attention_mask = tensor('int64', [qb.batch, qb.length], qb.mask);
        feeds.decoder_input_ids = tensor('int64', [ab.batch, ab.length], ab.ids);
        feeds.decoder_attention_mask = tensor('int64', [ab.batch, ab.length], ab.mask);
      }
      feeds.labels = tensor('int64', [ab.batch, ab.length], ab.labels);
      if (ex.dataInputs.includes(DROPOUT_SEED_INPUT))
        feeds[DROPOUT_SEED_INPUT] = tensor('int64', [], [BigInt(dropoutStepSeed(seed, step, micro))]);
      return feeds;
    };
    const bs = Math.min(o.batchSize ?? R.batchSize, items.length);
    const batches: number[][] = [];
    for (let e = 0; e < (o.epochs ?? R.epochs); e++) {
      const sh = rng.shuffle(items.map((_, i) => i));
      for (let i = 0; i < sh.length; i += bs) batches.push(sh.slice(i, i + bs));
    }
    const total = Math.ceil(batches.length / acc);
    const losses: number[] = [];
    const lr = o.lr ?? R.lr;
    for (let s = 0; s < total; s++) {
      const micro = batches.slice(s * acc, (s + 1) * acc).map((b, i) => feedsOf(b, s, i));
      const res = await ex.step(micro.length === 1 ? micro[0] : micro, lr);
      losses.push(res.loss);
      o.onStep?.({ step: s + 1, total, loss: res.loss });
    }
    await ex.sync();
    const values = ex.paramTensors();
    const get = (n: string) => Float32Array.from(values[n].data as Float32Array);
    const lora = new Map<string, { a: Float32Array; b: Float32Array }>();
    for (const mod of modules) lora.set(mod, { a: get(`${mod}.lora_A.weight`), b: get(`${mod}.lora_B.weight`) });
    const tensors = full ? new Map(fullNames.map((n) => [n, get(n)])) : undefined;
    return { adapter: { r, alpha, scaling, dropout, targetModules: targets, lora }, tensors, losses, steps: total };
  } finally {
    await ex.dispose();
  }
}

/** A trained model as a folder in the published layout: the tensors plus the base folder's other files. */
export function saveBlipModel(m: BlipModel, tensors: Map<string, Float32Array>, outDir: string): void {
  mkdirSync(outDir, { recursive: true });
  writeSafetensors(
    join(outDir, 'model.safetensors'),
    [...tensors].map(([name, data]) => ({
      name,
      dtype: 'F32' as const,
      shape: m.weights.info(name).shape,
      data: () => data,
    })),
  );
  for (const f of [
    'config.json',
    'tokenizer.json',
    'tokenizer_config.json',
    'special_tokens_map.json',
    'preprocessor_config.json',
    'vocab.txt',
  ])
    if (existsSync(join(m.dir, f))) copyFileSync(join(m.dir, f), join(outDir, f));
}

/** Train and write the PEFT adapter to outDir. */
export async function trainBlipToFolder(
  m: BlipModel,
  items: readonly VqaTriple[],
  o: BlipTrainOptions,
  outDir: string,
): Promise<BlipTrainResult> {
  const res = await trainBlipVqa(m, items, o);
  mkdirSync(outDir, { recursive: true });
  saveBlipAdapter(outDir, m.config, res.adapter, m.dir);
  return res;
}
