// The contrastive trainer: CLIP / SigLIP fine-tuning (training/contrastive.ts) as a Trainer the job driver runs
// (jobs/driver.ts: progress, eval/save cadence, pause/cancel, resume from the newest checkpoint).
//
//   init      load the folder, read the run's data snapshot (an item's first caption is its text; items without
//             an image or a caption are skipped), plan every batch from the seed, restore a checkpoint
//   trainStep the next planned step (in-batch negatives: see training/contrastive.ts) at the constant learning rate
//   evaluate  on the eval split's pairs: image->text and text->image recall@1/5/10 (eval/contrastive.ts) and the
//             mean contrastive loss over eval batches of the training batch size; evalAtStart gives the base
//             model's numbers at step 0, so each checkpoint's stand beside them
//   saveState adapter/ (PEFT layout, what exportFinal writes) + optimizer.safetensors (AdamW moments, parameters)
//             + state.json {step, optimizer t, options hash, data hash}
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CheckpointFiles, LoadedCheckpoint, StateTensor } from './checkpoints';
import { itemsOfSplit, readSnapshot, type DataItem } from './data';
import {
  ContrastiveStepper,
  checkContrastiveOptions,
  type ContrastivePair,
  type ContrastiveTrainOptions,
} from './contrastive';
import { evaluateContrastive } from '../eval/contrastive';
import { ContrastiveRunner, loadContrastive, type ContrastiveModel } from '../models/families/contrastive/model';
import { saveContrastiveAdapter } from '../models/families/contrastive/adapter';
import type { EvalResult, LoopPlan, StepResult, Trainer, TrainerContext, TrainerModule } from '../jobs/trainer';

export interface ContrastiveJobConfig {
  model: string;
  data: { file: string; trainSplit?: 'train' | 'val' | 'test'; evalSplit?: 'train' | 'val' | 'test' };
  options: Omit<ContrastiveTrainOptions, 'onStep'>;
  /** steps between evaluations / checkpoints (0: only at the end) */
  evalEvery?: number;
  saveEvery?: number;
  keepLastK?: number;
  evalAtStart?: boolean;
}

function parseConfig(config: unknown): ContrastiveJobConfig {
  const c = config as ContrastiveJobConfig;
  if (!c || typeof c !== 'object') throw new Error('contrastive trainer config: not an object');
  if (typeof c.model !== 'string' || !c.model)
    throw new Error('contrastive trainer config: field "model" must be a folder');
  if (!c.data || typeof c.data.file !== 'string')
    throw new Error('contrastive trainer config: field "data.file" must be a data snapshot');
  if (!c.options || typeof c.options !== 'object')
    throw new Error('contrastive trainer config: field "options" is missing');
  for (const k of ['evalEvery', 'saveEvery', 'keepLastK'] as const)
    if (c[k] !== undefined && (!Number.isInteger(c[k]) || (c[k] as number) < 0))
      throw new Error(`contrastive trainer config: field "${k}" must be a whole number >= 0`);
  return c;
}

/** An item's image-text pair: its image and its first caption (or the first answer / assistant turn). */
export function pairOf(it: DataItem): ContrastivePair | null {
  if (!it.image) return null;
  for (const a of it.annotations) {
    const d = a.data as { text?: string; answer?: string; messages?: Array<{ role: string; content: string }> };
    const t =
      a.kind === 'caption'
        ? d.text
        : a.kind === 'qa'
          ? d.answer
          : d.messages?.find((m) => m.role === 'assistant')?.content;
    if (t && t.trim()) return { image: it.image, text: t.trim() };
  }
  return null;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

interface SavedState {
  kind: 'lenslab-contrastive';
  step: number;
  t: number;
  optionsHash: string;
  dataHash: string;
}

export class ContrastiveTrainer implements Trainer {
  plan: LoopPlan = { totalSteps: 0, evalEvery: 0, saveEvery: 0, keepLastK: 3 };
  private model!: ContrastiveModel;
  private stepper!: ContrastiveStepper;
  private evalPairs: ContrastivePair[] = [];
  private dataHash = '';
  constructor(
    private cfg: ContrastiveJobConfig,
    private ctx: TrainerContext,
  ) {}

  get step(): number {
    return this.stepper?.step ?? 0;
  }

  private optionsHash(): string {
    return sha256(JSON.stringify({ ...this.cfg.options, model: this.cfg.model }));
  }

  async init(resume: LoadedCheckpoint | null): Promise<void> {
    const t0 = performance.now();
    this.model = loadContrastive(this.cfg.model);
    const text = readFileSync(this.cfg.data.file, 'utf8');
    this.dataHash = sha256(text);
    const snap = readSnapshot(this.cfg.data.file);
    const train = itemsOfSplit(snap, this.cfg.data.trainSplit ?? 'train')
      .map(pairOf)
      .filter((p): p is ContrastivePair => !!p);
    this.evalPairs = itemsOfSplit(snap, this.cfg.data.evalSplit ?? 'val')
      .map(pairOf)
      .filter((p): p is ContrastivePair => !!p);
    this.stepper = await ContrastiveStepper.create(this.model, train, this.cfg.options);
    const canEval = this.evalPairs.length >= 2;
    this.plan = {
      totalSteps: this.stepper.total,
      evalEvery: canEval ? (this.cfg.evalEvery ?? 0) : 0,
      evalAtStart: canEval && (this.cfg.evalAtStart ?? true),
      saveEvery: this.cfg.saveEvery ?? 0,
      keepLastK: this.cfg.keepLastK ?? 3,
    };
    if (resume) this.restore(resume);
    this.ctx.log(
      `contrastive ${this.cfg.options.method} on ${train.length} image-text pairs (${this.evalPairs.length} held out), ` +
        `${this.stepper.params.length} trainable tensors, ${this.stepper.total} steps; ready in ${((performance.now() - t0) / 1000).toFixed(1)} s${resume ? `, resumed at step ${this.step}` : ''}`,
    );
    if (!canEval) this.ctx.log('warning: fewer than 2 held-out pairs: no recall evaluation', 'warn');
  }

  private restore(ck: LoadedCheckpoint): void {
    const st = ck.json<SavedState>('state.json');
    if (st.kind !== 'lenslab-contrastive')
      throw new Error(`checkpoint ${ck.dir} was not written by the contrastive trainer`);
    if (st.optionsHash !== this.optionsHash())
      throw new Error(`checkpoint ${ck.dir} was made with other options; it cannot be resumed with these`);
    if (st.dataHash !== this.dataHash)
      throw new Error(`checkpoint ${ck.dir} was made with other data; it cannot be resumed with this run's data`);
    const opt = ck.tensors('optimizer.safetensors');
    const params: Record<string, Float32Array> = {};
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    for (const p of this.stepper.params) {
      const val = opt.get(`param.${p.name}`);
      const mm = opt.get(`exp_avg.${p.name}`);
      const vv = opt.get(`exp_avg_sq.${p.name}`);
      if (!val || !mm || !vv) throw new Error(`checkpoint ${ck.dir}: no saved state for ${p.name}`);
      params[p.name] = Float32Array.from(val.data);
      m[p.name] = Float32Array.from(mm.data);
      v[p.name] = Float32Array.from(vv.data);
    }
    this.stepper.loadState(st.step, { t: st.t, params, m, v });
  }

  async trainStep(): Promise<StepResult> {
    const r = await this.stepper.next();
    return {
      step: this.stepper.step,
      loss: r.loss,
      lr: this.stepper.lr,
      gradNorm: r.gradNorm,
      samples: r.pairs,
      tokens: 0,
    };
  }

  async evaluate(): Promise<EvalResult> {
    const adapter = this.stepper.step === 0 ? null : await this.stepper.adapter();
    const ev = await evaluateContrastive(this.model, this.evalPairs, { adapter });
    const metrics: Record<string, number> = {};
    for (const [k, v] of Object.entries(ev.recall?.imageToText ?? {})) metrics[`i2t_${k.replace('@', '')}`] = v;
    for (const [k, v] of Object.entries(ev.recall?.textToImage ?? {})) metrics[`t2i_${k.replace('@', '')}`] = v;
    // the held-out contrastive loss over batches as large as the training ones (the loss depends on the batch)
    const bs = Math.max(2, Math.min(this.cfg.options.batchSize ?? 8, this.evalPairs.length));
    const runner = await ContrastiveRunner.create(this.model, { adapter });
    try {
      let sum = 0;
      let n = 0;
      for (let i = 0; i + 1 < this.evalPairs.length; i += bs) {
        const b = this.evalPairs.slice(i, i + bs);
        if (b.length < 2) break;
        const r = await runner.run(
          b.map((p) => p.image),
          b.map((p) => p.text),
        );
        sum += r.loss! * b.length;
        n += b.length;
      }
      if (n) metrics.loss = sum / n;
    } finally {
      await runner.release();
    }
    return { metrics };
  }

  private async adapterFiles(): Promise<Record<string, Buffer>> {
    const dir = mkdtempSync(join(tmpdir(), 'lenslab-contrastive-adapter-'));
    try {
      saveContrastiveAdapter(dir, this.model.config, await this.stepper.adapter(), this.cfg.model);
      return Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  async saveState(): Promise<CheckpointFiles> {
    const s = await this.stepper.state();
    const opt: Record<string, StateTensor> = {};
    for (const p of this.stepper.params) {
      opt[`param.${p.name}`] = { shape: [...p.shape], data: Float32Array.from(s.params[p.name]) };
      opt[`exp_avg.${p.name}`] = { shape: [...p.shape], data: Float32Array.from(s.m[p.name]) };
      opt[`exp_avg_sq.${p.name}`] = { shape: [...p.shape], data: Float32Array.from(s.v[p.name]) };
    }
    const state: SavedState = {
      kind: 'lenslab-contrastive',
      step: this.stepper.step,
      t: s.t,
      optionsHash: this.optionsHash(),
      dataHash: this.dataHash,
    };
    const files: CheckpointFiles = {
      'optimizer.safetensors': { kind: 'safetensors', tensors: opt, metadata: { format: 'pt', t: String(s.t) } },
      'state.json': { kind: 'json', value: state },
    };
    for (const [f, data] of Object.entries(await this.adapterFiles())) files[`adapter/${f}`] = { kind: 'bytes', data };
    return files;
  }

  async exportFinal(dir: string): Promise<void> {
    saveContrastiveAdapter(dir, this.model.config, await this.stepper.adapter(), this.cfg.model);
  }

  async dispose(): Promise<void> {
    await this.stepper?.dispose();
    this.model?.close();
  }
}

export const contrastiveTrainerModule: TrainerModule = {
  validateConfig(config) {
    const cfg = parseConfig(config);
    const snap = readSnapshot(cfg.data.file);
    const pairs = itemsOfSplit(snap, cfg.data.trainSplit ?? 'train')
      .map(pairOf)
      .filter(Boolean).length;
    checkContrastiveOptions(cfg.options as ContrastiveTrainOptions, pairs);
    return { totalSteps: null };
  },
  createTrainer(config, ctx) {
    return new ContrastiveTrainer(parseConfig(config), ctx);
  },
};
