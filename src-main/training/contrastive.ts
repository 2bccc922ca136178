// Contrastive fine-tuning of a CLIP / SigLIP model on image-text pairs (the image-text contrastive loss, ITC):
// CLIP's symmetric InfoNCE or SigLIP's sigmoid loss over each batch (families/contrastive/graph.ts), through the
// engine's training step (our autodiff + AdamW). Methods: LoRA on the attention projections (q/k/v/out, any subset) of
// the text tower, the vision tower or both; or 'projections' (CLIP's visual/text projections, SigLIP's two heads,
// trained in full and saved as PEFT modules_to_save). The result is a PEFT adapter folder.
//
// In-batch negatives: each pair's negatives are the other pairs of its batch, so the batch size changes the loss
// and a batch of one has none (refused). Gradient accumulation sums the gradients of micro-batches that are each a
// contrastive batch of their own: it lowers memory, it does not add negatives (batch 8 x accumulation 4 sees 7
// negatives per pair, not 31). A trailing batch of a single pair is dropped for the same reason.

import { mkdirSync } from 'node:fs';
import { StepExecutor, tensor } from '../engine';
import type { ExecutorState, Feeds } from '../engine/runtime/step-executor';
import type { Value } from '../engine/graph/builder';
import type { ImageInput } from '../models/image-processor';
import type { LoraBinding } from '../models/layers';
import { GraphWeights } from '../models/layers';
import { saveContrastiveAdapter, type ContrastiveAdapter } from '../models/families/contrastive/adapter';
import {
  contrastiveLogits,
  contrastiveLoraModules,
  contrastiveLoss,
  contrastiveProjectionModules,
  contrastiveProjectionTensors,
  imageEmbeds,
  textEmbeds,
} from '../models/families/contrastive/graph';
import { imageBatch, textBatch, type ContrastiveModel } from '../models/families/contrastive/model';
import { Rng } from './rng';

export interface ContrastivePair {
  image: ImageInput;
  text: string;
}

export interface ContrastiveTrainOptions {
  method: 'lora' | 'projections';
  /** LoRA: which towers (default both) */
  towers?: 'text' | 'vision' | 'both';
  /** LoRA: attention projections (default q_proj, k_proj, v_proj, out_proj) */
  targets?: string[];
  rank?: number;
  alpha?: number;
  lr?: number;
  epochs?: number;
  /** pairs per contrastive batch (>= 2) */
  batchSize?: number;
  /** micro-batches per optimizer step (no extra negatives, see above) */
  gradAccum?: number;
  weightDecay?: number;
  seed?: number;
  onStep?: (s: { step: number; total: number; loss: number }) => void;
}

export class ContrastiveTrainError extends Error {}

const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'out_proj'];

export interface ContrastiveTrainResult {
  adapter: ContrastiveAdapter;
  losses: number[];
  steps: number;
}

/** Check the options before anything is computed; the reason names the option. */
export function checkContrastiveOptions(o: ContrastiveTrainOptions, pairs: number): void {
  const bs = o.batchSize ?? 8;
  if (!Number.isInteger(bs) || bs < 2)
    throw new ContrastiveTrainError(
      `batch size ${bs}: contrastive training needs at least 2 pairs per batch (the other pairs of a batch are each pair's negatives; a batch of 1 has none)`,
    );
  if (pairs < 2)
    throw new ContrastiveTrainError(`the data has ${pairs} image-text pair(s): contrastive training needs at least 2`);
  const acc = o.gradAccum ?? 1;
  if (!Number.isInteger(acc) || acc < 1)
    throw new ContrastiveTrainError(`grad accumulation must be a positive integer (got ${acc})`);
  for (const t of o.targets ?? [])
    if (!TARGETS.includes(t))
      throw new ContrastiveTrainError(
        `target module "${t}" is not an attention projection (supported: ${TARGETS.join(', ')})`,
      );
  if (o.method !== 'lora' && o.method !== 'projections')
    throw new ContrastiveTrainError(`method "${o.method}" (supported: lora, projections)`);
}

/**
 * A contrastive training run taken one optimizer step at a time (the job trainer and trainContrastive share it).
 * The whole batch plan is drawn from the seed up front (LoRA A init first, then one shuffle per epoch), so step s
 * of a resumed run sees exactly the batches of an uninterrupted one.
 */
export class ContrastiveStepper {
  private constructor(
    readonly model: ContrastiveModel,
    private ex: StepExecutor,
    private batches: number[][],
    private feedsOf: (idx: number[]) => Feeds,
    readonly total: number,
    private acc: number,
    readonly lr: number,
    private modules: string[],
    private full: Array<{ name: string; shape: number[] }>,
    private shape: { r: number; alpha: number; scaling: number; modulesToSave: string[] },
    /** trainable tensors: name and shape */
    readonly params: Array<{ name: string; shape: number[] }>,
  ) {}
  /** optimizer steps taken */
  step = 0;

  static async create(
    m: ContrastiveModel,
    pairs: readonly ContrastivePair[],
    o: ContrastiveTrainOptions,
  ): Promise<ContrastiveStepper> {
    checkContrastiveOptions(o, pairs.length);
    const c = m.config;
    const bs = Math.min(o.batchSize ?? 8, pairs.length);
    const acc = o.gradAccum ?? 1;
    const r = o.rank ?? 8;
    const alpha = o.alpha ?? 16;
    const scaling = alpha / r;
    const rng = new Rng(o.seed ?? 42);
    const specs = new Map<string, number[]>();
    for (const name of [
      ...contrastiveLoraModules(c, 'both').map((x) => `${x}.weight`),
      ...contrastiveProjectionTensors(c).map((s) => s.name),
    ])
      specs.set(name, m.weights.info(name).shape);
    const modules = o.method === 'lora' ? contrastiveLoraModules(c, o.towers ?? 'both', o.targets ?? TARGETS) : [];
    const full = o.method === 'projections' ? contrastiveProjectionTensors(c) : [];
    const params: Array<{ name: string; shape: number[] }> = [];
    const init: Record<string, Float32Array> = {};
    for (const mod of modules) {
      const [out, inn] = specs.get(`${mod}.weight`)!;
      // PEFT's default init: A kaiming-uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B zero
      const a = new Float32Array(r * inn);
      const bound = 1 / Math.sqrt(inn);
      for (let i = 0; i < a.length; i++) a[i] = (2 * rng.float() - 1) * bound;
      params.push({ name: `${mod}.lora_A.weight`, shape: [r, inn] }, { name: `${mod}.lora_B.weight`, shape: [out, r] });
      init[`${mod}.lora_A.weight`] = a;
      init[`${mod}.lora_B.weight`] = new Float32Array(out * r);
    }
    for (const s of full) {
      params.push({ name: s.name, shape: s.shape });
      init[s.name] = Float32Array.from(m.weights.get(s.name));
    }
    const S = c.vision.imageSize;
    const ex = await StepExecutor.create(
      {
        params,
        forward: (g, p) => {
          const lora = new Map<string, LoraBinding>();
          for (const mod of modules)
            lora.set(mod, { a: p[`${mod}.lora_A.weight`], b: p[`${mod}.lora_B.weight`], scaling });
          const trainable: Record<string, Value> = {};
          for (const s of full) trainable[s.name] = p[s.name];
          const w = new GraphWeights(g, m.weights, { lora, params: trainable });
          const pv = g.input('pixel_values', 'float32', ['N', 3, S, S]);
          const ids = g.input('input_ids', 'int64', ['B', 'T']);
          const pool = g.input('text_pool_index', 'int64', ['B']);
          const out = contrastiveLogits(w, c, imageEmbeds(w, c, pv), textEmbeds(w, c, ids, pool));
          return { loss: contrastiveLoss(w, c, out) };
        },
        adamw: { weightDecay: o.weightDecay ?? 0 },
        clipNorm: 1.0,
        accumulation: acc,
        session: { threads: 2 },
      },
      init,
    );
    // pixel values once per image
    const pixels = await imageBatch(
      m,
      pairs.map((p) => p.image),
    );
    const per = 3 * S * S;
    const feedsOf = (idx: number[]): Feeds => {
      const pv = new Float32Array(idx.length * per);
      idx.forEach((k, j) => pv.set(pixels.data.subarray(k * per, (k + 1) * per), j * per));
      const tb = textBatch(
        m,
        idx.map((k) => pairs[k].text),
      );
      return {
        pixel_values: tensor('float32', [idx.length, 3, S, S], pv),
        input_ids: tensor('int64', [tb.batch, tb.length], tb.ids),
        text_pool_index: tensor('int64', [tb.batch], tb.poolIndex),
      };
    };
    const epochs = o.epochs ?? 3;
    const order = pairs.map((_, i) => i);
    const all: number[][] = [];
    for (let e = 0; e < epochs; e++) {
      const sh = rng.shuffle([...order]);
      for (let i = 0; i < sh.length; i += bs) {
        const b = sh.slice(i, i + bs);
        if (b.length >= 2) all.push(b);
      }
    }
    const total = Math.floor(all.length / acc);
    const shape = {
      r,
      alpha,
      scaling,
      modulesToSave: o.method === 'projections' ? contrastiveProjectionModules(c) : [],
    };
    return new ContrastiveStepper(m, ex, all, feedsOf, total, acc, o.lr ?? 1e-3, modules, full, shape, params);
  }

  /** Take the next planned optimizer step; its loss (the mean over its micro-batches) and gradient norm. */
  async next(lr = this.lr): Promise<{ loss: number; gradNorm: number; pairs: number }> {
    if (this.step >= this.total) throw new ContrastiveTrainError(`all ${this.total} planned steps are taken`);
    const parts = this.batches.slice(this.step * this.acc, (this.step + 1) * this.acc);
    const micro = parts.map(this.feedsOf);
    const res = await this.ex.step(this.acc === 1 ? micro[0] : micro, lr);
    this.step++;
    return { loss: res.loss, gradNorm: res.gradNorm, pairs: parts.reduce((n, b) => n + b.length, 0) };
  }

  /** The adapter as it stands (parameters read back from the executor). */
  async adapter(): Promise<ContrastiveAdapter> {
    await this.ex.sync();
    const values = this.ex.paramTensors();
    const get = (n: string) => Float32Array.from(values[n].data as Float32Array);
    const lora = new Map<string, { a: Float32Array; b: Float32Array }>();
    for (const mod of this.modules) lora.set(mod, { a: get(`${mod}.lora_A.weight`), b: get(`${mod}.lora_B.weight`) });
    const saved = new Map<string, Float32Array>();
    for (const s of this.full) saved.set(s.name, get(s.name));
    return { ...this.shape, lora, saved };
  }

  /** AdamW state and parameters by trainable tensor name, for a checkpoint. */
  async state(): Promise<ExecutorState> {
    await this.ex.sync();
    return this.ex.state();
  }

  /** Continue from a state() taken after `step` steps. */
  loadState(step: number, st: ExecutorState): void {
    if (step < 0 || step > this.total)
      throw new ContrastiveTrainError(`cannot resume at step ${step} of ${this.total}`);
    this.ex.loadState(st);
    this.step = step;
  }

  async dispose(): Promise<void> {
    await this.ex.dispose();
  }
}

/** Train and return the adapter (save it with saveContrastiveAdapter, or use trainContrastiveToFolder). */
export async function trainContrastive(
  m: ContrastiveModel,
  pairs: readonly ContrastivePair[],
  o: ContrastiveTrainOptions,
): Promise<ContrastiveTrainResult> {
  const st = await ContrastiveStepper.create(m, pairs, o);
  try {
    const losses: number[] = [];
    while (st.step < st.total) {
      const r = await st.next();
      losses.push(r.loss);
      o.onStep?.({ step: st.step, total: st.total, loss: r.loss });
    }
    return { adapter: await st.adapter(), losses, steps: st.total };
  } finally {
    await st.dispose();
  }
}

/** Train and write the PEFT adapter to outDir. */
export async function trainContrastiveToFolder(
  m: ContrastiveModel,
  pairs: readonly ContrastivePair[],
  o: ContrastiveTrainOptions,
  outDir: string,
): Promise<ContrastiveTrainResult> {
  const res = await trainContrastive(m, pairs, o);
  mkdirSync(outDir, { recursive: true });
  saveContrastiveAdapter(outDir, m.config, res.adapter, m.dir);
  return res;
}
