// A small deterministic trainer for the job infrastructure: logistic regression with AdamW on seeded synthetic
// data, using the real hyperparameters (parseHparams), batch schedule, RNG (feature dropout), LR schedule, gradient
// clipping and checkpoints. Resuming from any checkpoint reproduces the uninterrupted run bit for bit, because every
// piece of state (parameters, AdamW moments, RNG state, data position, step) is saved as float32/JSON and all math
// is done in float64 from those float32 values.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeSafetensors } from '../models/weights/safetensors';
import { BatchSchedule, type DataPosition } from '../training/batching';
import type { CheckpointFiles, LoadedCheckpoint } from '../training/checkpoints';
import { hparamsHash, lrAt, parseHparams, planRun, type Hparams } from '../training/hparams';
import { deriveSeed, Rng, type RngState } from '../training/rng';
import type { EvalResult, LoopPlan, StepResult, Trainer, TrainerContext, TrainerModule } from './trainer';

const toyConfigSchema = z
  .object({
    /** Hyperparameters as for a real run (lr, batchSize, maxSteps/epochs, seed, warmup, clipNorm, dropout, ...). */
    hparams: z.record(z.string(), z.unknown()).prefault({}),
    data: z
      .object({
        numSamples: z.int().min(2).max(1_000_000).default(256),
        evalSamples: z.int().min(1).max(1_000_000).default(64),
        dim: z.int().min(1).max(4096).default(8),
        dataSeed: z.int().min(0).default(1234),
      })
      .strict()
      .prefault({}),
    /** Test hooks: a delay per step (to catch a run mid-way) and a step whose loss becomes NaN. */
    debug: z
      .object({ stepDelayMs: z.number().min(0).default(0), nanAtStep: z.int().min(1).optional() })
      .strict()
      .prefault({}),
  })
  .strict();

export type ToyConfigInput = z.input<typeof toyConfigSchema>;
type ToyConfig = z.output<typeof toyConfigSchema>;

function parseConfig(config: unknown): { cfg: ToyConfig; hp: Hparams } {
  const r = toyConfigSchema.safeParse(config ?? {});
  if (!r.success) {
    const i = r.error.issues[0];
    throw new Error(`toy trainer config: ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  return { cfg: r.data, hp: parseHparams(r.data.hparams) };
}

interface Data {
  x: Float64Array; // [n × dim]
  y: Float64Array; // [n]
}

function makeData(n: number, dim: number, rng: Rng, wTrue: Float64Array): Data {
  const x = new Float64Array(n * dim);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let z = 0.3;
    for (let j = 0; j < dim; j++) {
      const v = rng.normal();
      x[i * dim + j] = v;
      z += v * wTrue[j];
    }
    y[i] = rng.float() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
  }
  return { x, y };
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
/** Binary cross-entropy from the logit, stable for large |z|. */
const bce = (z: number, y: number) => Math.max(z, 0) - z * y + Math.log1p(Math.exp(-Math.abs(z)));

interface SavedState {
  kind: 'toy-logreg';
  step: number;
  hparamsHash: string;
  data: ToyConfig['data'];
  rng: RngState;
  position: DataPosition;
}

class ToyTrainer implements Trainer {
  readonly plan: LoopPlan;
  private readonly hp: Hparams;
  private readonly cfg: ToyConfig;
  private readonly warmup: number;
  private readonly train: Data;
  private readonly evalSet: Data;
  private schedule: BatchSchedule;
  private rng: Rng;
  private w: Float32Array;
  private b = new Float32Array(1);
  private mW: Float32Array;
  private vW: Float32Array;
  private mB = new Float32Array(1);
  private vB = new Float32Array(1);
  private _step = 0;

  constructor(cfg: ToyConfig, hp: Hparams, private readonly ctx: TrainerContext) {
    this.cfg = cfg;
    this.hp = hp;
    const { numSamples, evalSamples, dim, dataSeed } = cfg.data;
    const runPlan = planRun(hp, { trainSamples: numSamples, evalSamples });
    this.warmup = runPlan.warmupSteps;
    this.plan = { totalSteps: runPlan.totalSteps, evalEvery: hp.evalEvery, saveEvery: hp.saveEvery, keepLastK: hp.keepLastK };
    const dataRng = new Rng(deriveSeed(dataSeed, 1));
    const wTrue = new Float64Array(dim);
    for (let j = 0; j < dim; j++) wTrue[j] = 2 * dataRng.normal();
    this.train = makeData(numSamples, dim, dataRng, wTrue);
    this.evalSet = makeData(evalSamples, dim, dataRng, wTrue);
    this.schedule = this.newSchedule();
    this.rng = new Rng(deriveSeed(hp.seed, 2));
    this.w = new Float32Array(dim);
    this.mW = new Float32Array(dim);
    this.vW = new Float32Array(dim);
  }

  get step(): number {
    return this._step;
  }

  private newSchedule(position?: DataPosition): BatchSchedule {
    const h = this.hp;
    return new BatchSchedule(
      { numSamples: this.cfg.data.numSamples, batchSize: h.batchSize, gradAccum: h.gradAccum, seed: h.seed, epochs: h.maxSteps === undefined ? h.epochs : undefined, maxSteps: h.maxSteps },
      position,
    );
  }

  async init(resume: LoadedCheckpoint | null): Promise<void> {
    const dim = this.cfg.data.dim;
    if (!resume) {
      // small seeded initialisation so the parameters depend on the seed
      const init = new Rng(deriveSeed(this.hp.seed, 3));
      for (let j = 0; j < dim; j++) this.w[j] = 0.01 * init.normal();
      return;
    }
    const st = resume.json<SavedState>('state.json');
    if (st.kind !== 'toy-logreg') throw new Error(`checkpoint ${resume.dir} was not written by the toy trainer`);
    if (st.hparamsHash !== hparamsHash(this.hp)) throw new Error(`checkpoint ${resume.dir} was made with other hyperparameters; it cannot be resumed with these`);
    if (JSON.stringify(st.data) !== JSON.stringify(this.cfg.data)) throw new Error(`checkpoint ${resume.dir} was made with other data settings`);
    const model = resume.tensors('model.safetensors');
    const opt = resume.tensors('optimizer.safetensors');
    const get = (m: typeof model, name: string, n: number) => {
      const t = m.get(name);
      if (!t || t.data.length !== n) throw new Error(`checkpoint ${resume.dir}: tensor ${name} missing or not of size ${n}`);
      return Float32Array.from(t.data);
    };
    this.w = get(model, 'w', dim);
    this.b = get(model, 'b', 1);
    this.mW = get(opt, 'w.exp_avg', dim);
    this.vW = get(opt, 'w.exp_avg_sq', dim);
    this.mB = get(opt, 'b.exp_avg', 1);
    this.vB = get(opt, 'b.exp_avg_sq', 1);
    this.rng = Rng.fromState(st.rng);
    this.schedule = this.newSchedule(st.position);
    this._step = st.step;
  }

  async trainStep(): Promise<StepResult> {
    const { dim } = this.cfg.data;
    const h = this.hp;
    const planned = this.schedule.nextStep();
    const gW = new Float64Array(dim);
    let gB = 0;
    let lossSum = 0;
    let count = 0;
    const p = h.dropout;
    const xd = new Float64Array(dim);
    for (const mb of planned.microBatches) {
      for (const i of mb) {
        let z = this.b[0];
        for (let j = 0; j < dim; j++) {
          const keep = p > 0 ? (this.rng.float() >= p ? 1 / (1 - p) : 0) : 1;
          xd[j] = this.train.x[i * dim + j] * keep;
          z += xd[j] * this.w[j];
        }
        const y = this.train.y[i];
        lossSum += bce(z, y);
        const d = sigmoid(z) - y;
        for (let j = 0; j < dim; j++) gW[j] += d * xd[j];
        gB += d;
        count++;
      }
    }
    for (let j = 0; j < dim; j++) gW[j] /= count;
    gB /= count;
    let loss = lossSum / count;
    const step = planned.step;
    if (this.cfg.debug.nanAtStep === step) loss = Number.NaN;
    let sq = gB * gB;
    for (let j = 0; j < dim; j++) sq += gW[j] * gW[j];
    const gradNorm = Math.sqrt(sq);
    const scale = h.clipNorm > 0 && gradNorm > h.clipNorm ? h.clipNorm / gradNorm : 1;
    const lr = lrAt(step, h, this.plan.totalSteps, this.warmup);
    const [b1, b2] = h.betas;
    const c1 = 1 - Math.pow(b1, step);
    const c2 = 1 - Math.pow(b2, step);
    const adamw = (param: Float32Array, m: Float32Array, v: Float32Array, k: number, g: number) => {
      g *= scale;
      let w = param[k] * (1 - lr * h.weightDecay);
      const mk = b1 * m[k] + (1 - b1) * g;
      const vk = b2 * v[k] + (1 - b2) * g * g;
      m[k] = mk;
      v[k] = vk;
      w -= (lr * (m[k] / c1)) / (Math.sqrt(v[k] / c2) + h.eps);
      param[k] = w;
    };
    for (let j = 0; j < dim; j++) adamw(this.w, this.mW, this.vW, j, gW[j]);
    adamw(this.b, this.mB, this.vB, 0, gB);
    this._step = step;
    if (this.cfg.debug.stepDelayMs > 0) await new Promise((r) => setTimeout(r, this.cfg.debug.stepDelayMs));
    return { step, epoch: planned.epoch, loss, lr, gradNorm, samples: count, tokens: count * dim };
  }

  async evaluate(): Promise<EvalResult> {
    const { dim } = this.cfg.data;
    const { x, y } = this.evalSet;
    let loss = 0;
    let correct = 0;
    for (let i = 0; i < y.length; i++) {
      let z = this.b[0];
      for (let j = 0; j < dim; j++) z += x[i * dim + j] * this.w[j];
      loss += bce(z, y[i]);
      if ((z > 0 ? 1 : 0) === y[i]) correct++;
    }
    return { metrics: { loss: loss / y.length, accuracy: correct / y.length } };
  }

  saveState(): CheckpointFiles {
    const state: SavedState = {
      kind: 'toy-logreg',
      step: this._step,
      hparamsHash: hparamsHash(this.hp),
      data: this.cfg.data,
      rng: this.rng.state(),
      position: this.schedule.position(),
    };
    const dim = this.cfg.data.dim;
    return {
      'model.safetensors': { kind: 'safetensors', tensors: { w: { shape: [dim], data: this.w.slice() }, b: { shape: [1], data: this.b.slice() } } },
      'optimizer.safetensors': {
        kind: 'safetensors',
        tensors: {
          'w.exp_avg': { shape: [dim], data: this.mW.slice() },
          'w.exp_avg_sq': { shape: [dim], data: this.vW.slice() },
          'b.exp_avg': { shape: [1], data: this.mB.slice() },
          'b.exp_avg_sq': { shape: [1], data: this.vB.slice() },
        },
      },
      'state.json': { kind: 'json', value: state },
    };
  }

  async exportFinal(dir: string): Promise<void> {
    mkdirSync(dir, { recursive: true });
    const dim = this.cfg.data.dim;
    writeSafetensors(join(dir, 'model.safetensors'), [
      { name: 'b', dtype: 'F32', shape: [1], data: () => this.b },
      { name: 'w', dtype: 'F32', shape: [dim], data: () => this.w },
    ]);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ kind: 'toy-logreg', dim, step: this._step }, null, 1));
  }
}

export const toyTrainerModule: TrainerModule = {
  validateConfig(config) {
    const { cfg, hp } = parseConfig(config);
    const plan = planRun(hp, { trainSamples: cfg.data.numSamples, evalSamples: cfg.data.evalSamples });
    return { totalSteps: plan.totalSteps };
  },
  createTrainer(config, ctx) {
    const { cfg, hp } = parseConfig(config);
    return new ToyTrainer(cfg, hp, ctx);
  },
};
