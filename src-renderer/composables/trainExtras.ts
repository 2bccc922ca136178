// The Train view's helpers for a first run that teaches: the quick-start preset per model, the form values of an
// earlier run (clone settings; kept after a run), the equivalent `lenslab train …` command, and warnings about
// settings that make a run look better or worse than it is.
import { TRAIN_FIELDS, targetsValue } from './trainForm';
import type { HyperValues } from './hyperparams';
import type { TrainPreset } from '../../src-main/contract/presets';

export interface PresetModel {
  name: string;
  source?: string | null;
  params?: number | null;
}

export interface Preset {
  label: string;
  values: HyperValues;
}

/**
 * The quick-start preset: the demo's measured recipe (LoRA rank 16 on every decoder projection, lr 3e-3, 400 steps
 * of 16: 0 % → 93 % on its shapes) for the tiny demo model; for real models a conservative LoRA (rank 16 on the
 * attention projections, lr 2e-4, 3 epochs of 4).
 */
export function quickStartPreset(m: PresetModel): Preset {
  const tiny = m.source === 'demo' || (m.params ?? Infinity) < 20_000_000;
  if (tiny)
    return {
      label: 'LoRA r16 on every projection, lr 3e-3, 400 steps of 16 (the demo’s recipe)',
      values: {
        method: 'lora',
        rank: 16,
        alpha: 32,
        targets: 'all',
        lr: 3e-3,
        duration: 'steps',
        maxSteps: 400,
        batchSize: 16,
        gradAccum: 1,
        evalAtStart: true,
      },
    };
  return {
    label: 'LoRA r16 on attention, lr 2e-4, 3 epochs of 4',
    values: {
      method: 'lora',
      rank: 16,
      alpha: 32,
      targets: 'attention',
      lr: 2e-4,
      duration: 'epochs',
      epochs: 3,
      batchSize: 4,
      gradAccum: 1,
      evalAtStart: true,
    },
  };
}

/**
 * Form values of a recipe preset (contract/presets.ts) over the current ones: what the recipe states replaces the
 * field, everything else (a BLIP-2 recipe's batch size and length) stays as the person set it.
 */
export function presetValues(p: TrainPreset, current: HyperValues): HyperValues {
  const h = p.hparams;
  const v: HyperValues = {
    ...current,
    method: h.method,
    rank: h.rank,
    alpha: h.alpha,
    dropout: h.dropout,
    lr: h.lr,
    weightDecay: h.weightDecay,
    schedule: h.schedule,
    clipNorm: h.clipNorm,
    warmupRatio: 0,
  };
  v.targets = targetsValue(h.targetModules);
  if (h.batchSize !== undefined) {
    v.batchSize = h.batchSize;
    v.gradAccum = 1;
  }
  if (h.epochs !== undefined) {
    v.duration = 'epochs';
    v.epochs = h.epochs;
  }
  return v;
}

/** Form values from a run's stored hyperparameters (clone settings), over the form's defaults. */
export function valuesFromHparams(h: Record<string, unknown>, defaults: HyperValues): HyperValues {
  const v: HyperValues = { ...defaults };
  // every form field that is a hyperparameter as it is; the run's length and its targets map to the form's choices
  for (const f of TRAIN_FIELDS)
    if (!['epochs', 'maxSteps', 'duration', 'targets'].includes(f.key) && h[f.key] !== undefined && f.key in defaults)
      v[f.key] = h[f.key] as HyperValues[string];
  if (typeof h.maxSteps === 'number') {
    v.duration = 'steps';
    v.maxSteps = h.maxSteps;
  } else if (typeof h.epochs === 'number') {
    v.duration = 'epochs';
    v.epochs = h.epochs;
  }
  if (Array.isArray(h.targetModules)) v.targets = targetsValue(h.targetModules.map(String));
  return v;
}

const q = (s: string) => (/^[A-Za-z0-9_./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
const flag = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** The `lenslab train` command line that starts the same run from a terminal. */
export function trainCommand(p: {
  modelPath: string;
  dataset: string | number;
  hparams: Record<string, unknown>;
  outDir?: string;
  name?: string;
  trainSplit?: string;
  evalSplit?: string;
}): string {
  const parts = [
    'lenslab train',
    '--model',
    q(p.modelPath),
    '--data',
    q(String(p.dataset)),
    '--out',
    q(p.outDir ?? './runs/new-run'),
  ];
  if (p.name) parts.push('--name', q(p.name));
  if (p.trainSplit && p.trainSplit !== 'train') parts.push('--train-split', p.trainSplit);
  if (p.evalSplit && p.evalSplit !== 'val') parts.push('--eval-split', p.evalSplit);
  for (const [k, v] of Object.entries(p.hparams)) {
    if (v === undefined || v === null) continue;
    if (k === 'maxSteps') parts.push('--steps', String(v));
    else if (Array.isArray(v)) parts.push(flag(k), v.join(','));
    else parts.push(flag(k), q(String(v)));
  }
  return parts.join(' ');
}

/** Warnings for the Train view: a tiny validation split, many epochs over few samples. */
export function trainWarnings(counts: { train: number; val: number } | null, h: Record<string, unknown>): string[] {
  const out: string[] = [];
  if (!counts) return out;
  if (counts.val > 0 && counts.val < 20)
    out.push(
      `The validation split has ${counts.val} item${counts.val === 1 ? '' : 's'}: one answer moves the score by ${Math.round(100 / counts.val)} points. Aim for 20 or more.`,
    );
  if (counts.val === 0) out.push('No validation items: the run cannot show how well it answers new images.');
  const batch = Number(h.batchSize ?? 4) * Number(h.gradAccum ?? 1);
  const epochs =
    typeof h.maxSteps === 'number' && counts.train > 0 ? (h.maxSteps * batch) / counts.train : Number(h.epochs ?? 3);
  if (epochs > 20 && counts.train < 1000)
    out.push(
      `About ${Math.round(epochs)} passes over ${counts.train} training samples: the model may learn them by heart. Watch the eval loss, or use fewer steps.`,
    );
  return out;
}

/**
 * Train loss far below eval loss: the model is learning its training samples rather than the task. Compares the
 * latest eval loss with the mean train loss of the steps before it (up to 20).
 */
export function overfitWarning(
  train: readonly { step: number; value: number | null }[],
  evalLoss: readonly { step: number; value: number | null }[],
): string | null {
  const last = [...evalLoss].reverse().find((p) => p.value !== null);
  if (!last || last.step === 0) return null;
  const recent = train.filter((p) => p.value !== null && p.step <= last.step).slice(-20);
  if (recent.length < 5) return null;
  const t = recent.reduce((a, p) => a + p.value!, 0) / recent.length;
  if (last.value! > 2 * t && last.value! - t > 0.5)
    return `Train loss (${t.toFixed(2)}) is far below eval loss (${last.value!.toFixed(2)}) at step ${last.step}: the model is learning the training samples by heart. Fewer steps, more data or a lower learning rate help.`;
  return null;
}
