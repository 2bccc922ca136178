// Hyperparameters of a fine-tuning run: one zod schema with defaults, cross-field checks whose messages name the
// field (and its CLI flag), checks against the dataset size, the learning-rate schedule, and a hash that tells
// whether a checkpoint was made with the same training settings.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { lrAt as engineLrAt, type Schedule } from '../engine/optim/schedules';
import { BatchSchedule } from './batching';

export { TRAIN_METHODS, SCHEDULES, LORA_TARGETS, BASE_QUANTS, hparamsSchema } from '../contract/hparams';
export type { TrainMethod as Method, LrScheduleKind, LoraTarget, HparamsInput, Hparams } from '../contract/hparams';
import { DEFAULT_EPOCHS, hparamsSchema, type Hparams, type HparamsInput } from '../contract/hparams';

/** camelCase field → CLI flag (`batchSize` → `--batch-size`). */
export function cliFlag(field: string): string {
  return '--' + field.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

export interface HparamIssue {
  /** Field name (camelCase, as in the schema); '' for the object itself. */
  field: string;
  message: string;
}

/** Invalid hyperparameters; the message names every offending field and its CLI flag. */
export class HparamsError extends Error {
  constructor(readonly issues: HparamIssue[]) {
    super(
      `invalid hyperparameters: ${issues.map((i) => (i.field ? `${i.field} (${cliFlag(i.field.split('.')[0])}): ${i.message}` : i.message)).join('; ')}`,
    );
    this.name = 'HparamsError';
  }
}

function describe(issue: z.core.$ZodIssue): HparamIssue {
  // the schema words its issues (contract/hparams.ts hparamMessage); unknown fields are about the object itself
  if (issue.code === 'unrecognized_keys') return { field: '', message: issue.message };
  return { field: issue.path.map(String).join('.'), message: issue.message };
}

/** Validate and fill defaults; throws HparamsError naming each bad field. With neither epochs nor maxSteps, epochs = DEFAULT_EPOCHS (3). */
export function parseHparams(input: unknown): Hparams {
  const r = hparamsSchema.safeParse(input ?? {});
  if (!r.success) throw new HparamsError(r.error.issues.map(describe));
  const h = r.data;
  if (h.epochs === undefined && h.maxSteps === undefined) h.epochs = DEFAULT_EPOCHS;
  return h;
}

// ---------------------------------------------------------------------------------------------- against the data

export interface RunPlan {
  totalSteps: number;
  stepsPerEpoch: number;
  warmupSteps: number;
  /** Samples per optimizer step. */
  effectiveBatch: number;
}

/**
 * Check the hyperparameters against the dataset and work out the step counts. Throws HparamsError naming the field
 * when the combination cannot train (no training items, warmup as long as the run, eval asked with no eval items).
 */
export function planRun(h: Hparams, data: { trainSamples: number; evalSamples?: number }): RunPlan {
  const issues: HparamIssue[] = [];
  if (data.trainSamples < 1)
    throw new HparamsError([{ field: '', message: 'the training split is empty: assign items to "train" first' }]);
  const schedule = new BatchSchedule({
    numSamples: data.trainSamples,
    batchSize: h.batchSize,
    gradAccum: h.gradAccum,
    seed: h.seed,
    epochs: h.maxSteps === undefined ? (h.epochs ?? DEFAULT_EPOCHS) : undefined,
    maxSteps: h.maxSteps,
  });
  const totalSteps = schedule.totalSteps;
  const warmupSteps = h.warmupSteps ?? Math.floor((h.warmupRatio ?? 0) * totalSteps);
  if (warmupSteps >= totalSteps)
    issues.push({
      field: h.warmupSteps !== undefined ? 'warmupSteps' : 'warmupRatio',
      message: `warmup (${warmupSteps} steps) must be shorter than the run (${totalSteps} steps)`,
    });
  if (h.evalEvery > 0 && (data.evalSamples ?? 0) === 0)
    issues.push({
      field: 'evalEvery',
      message: 'evaluation is requested but the dataset has no validation items; set 0 or assign items to "val"',
    });
  if (issues.length) throw new HparamsError(issues);
  return { totalSteps, stepsPerEpoch: schedule.stepsPerEpoch, warmupSteps, effectiveBatch: h.batchSize * h.gradAccum };
}

// ---------------------------------------------------------------------------------------------- LR schedule

/** The engine's schedule (src-main/engine/optim/schedules.ts) for these hyperparameters and plan. */
export function lrSchedule(
  h: Pick<Hparams, 'lr' | 'schedule' | 'minLrRatio'>,
  totalSteps: number,
  warmupSteps: number,
): Schedule {
  return { kind: h.schedule, baseLr: h.lr, warmupSteps, totalSteps, minRatio: h.minLrRatio };
}

/**
 * Learning rate of optimizer step `step` (1-based) of `totalSteps`, by the engine's schedule, which follows Hugging
 * Face's get_{constant,linear,cosine}_schedule_with_warmup on the 0-based index step − 1: warmup lr·(step−1)/W, then
 * cosine lr_min + (lr − lr_min)·(1 + cos πp)/2 or linear, with p = (step − 1 − W)/(totalSteps − W); lr_min = lr·minLrRatio.
 */
export function lrAt(
  step: number,
  h: Pick<Hparams, 'lr' | 'schedule' | 'minLrRatio'>,
  totalSteps: number,
  warmupSteps: number,
): number {
  if (!Number.isInteger(step) || step < 1 || step > totalSteps)
    throw new Error(`lrAt: step ${step} outside 1..${totalSteps}`);
  return engineLrAt(lrSchedule(h, totalSteps, warmupSteps), step - 1);
}

// ---------------------------------------------------------------------------------------------- hashing, CLI

/** Fields that do not change the trained result (how often to evaluate/save); left out of the hash. */
const NON_TRAINING_FIELDS = new Set(['evalEvery', 'evalAtStart', 'saveEvery', 'keepLastK']);
/** Fields that change how a step is computed but not its loss and gradients; a checkpoint resumes across them. */
const LAYOUT_FIELDS = new Set(['packing', 'gradientCheckpointing']);

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/** sha256 (hex) of the training-relevant settings; a checkpoint resumes only into a run with the same hash. */
export function hparamsHash(h: Hparams): string {
  const rel: Record<string, unknown> = {};
  // a float base leaves the hash as it was before quantizeBase existed: older checkpoints still resume
  for (const [k, v] of Object.entries(h))
    if (!NON_TRAINING_FIELDS.has(k) && !LAYOUT_FIELDS.has(k) && !(k === 'quantizeBase' && v === 'none')) rel[k] = v;
  return createHash('sha256').update(canonical(rel)).digest('hex');
}

const NUMBER_FIELDS = new Set([
  'rank',
  'alpha',
  'dropout',
  'lr',
  'weightDecay',
  'eps',
  'warmupSteps',
  'warmupRatio',
  'minLrRatio',
  'epochs',
  'maxSteps',
  'batchSize',
  'gradAccum',
  'maxSeqLen',
  'seed',
  'evalEvery',
  'saveEvery',
  'keepLastK',
  'clipNorm',
]);
const CLI_ALIASES: Record<string, string> = {
  steps: 'maxSteps',
  'max-steps': 'maxSteps',
  'target-modules': 'targetModules',
};

/**
 * Hyperparameters from CLI flags (`{ 'batch-size': '8', lr: '1e-4', steps: '200', betas: '0.9,0.99' }`), validated by
 * parseHparams. Non-numeric numbers and unknown flags are HparamsErrors naming the flag.
 */
export function hparamsFromCli(flags: Record<string, string>): Hparams {
  const out: Record<string, unknown> = {};
  const issues: HparamIssue[] = [];
  for (const [rawKey, value] of Object.entries(flags)) {
    const key = rawKey.replace(/^--/, '');
    const field = CLI_ALIASES[key] ?? key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!(field in hparamsSchema.shape)) {
      issues.push({ field: '', message: `unknown option --${key}` });
      continue;
    }
    if (NUMBER_FIELDS.has(field)) {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n))
        issues.push({ field, message: `must be a number (got ${JSON.stringify(value)})` });
      else out[field] = n;
    } else if (field === 'betas') {
      const parts = value.split(',').map((s) => Number(s.trim()));
      if (parts.length !== 2 || parts.some((p) => !Number.isFinite(p)))
        issues.push({ field, message: `must be two numbers "b1,b2" (got ${JSON.stringify(value)})` });
      else out[field] = parts;
    } else if (field === 'targetModules')
      out[field] = value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    else if (field === 'evalAtStart' || field === 'packing' || field === 'gradientCheckpointing') {
      const v = value.trim().toLowerCase();
      if (['true', 'yes', '1', ''].includes(v)) out[field] = true;
      else if (['false', 'no', '0'].includes(v)) out[field] = false;
      else issues.push({ field, message: `must be true or false (got ${JSON.stringify(value)})` });
    } else out[field] = value;
  }
  if (issues.length) throw new HparamsError(issues);
  return parseHparams(out);
}
