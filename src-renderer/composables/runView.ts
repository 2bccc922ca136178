// Pure helpers for the Runs views: a one-line summary of a run's settings, its best metrics, and predictions
// (with a base model's answers to the same items) in the shape PredictionGallery shows.
import type { ChartPoint } from './chartData';
import type { Prediction } from '../components/types';

/** Metrics where lower is better (losses); everything else (accuracy, BLEU, CIDEr) is higher-better. */
export const LOWER_IS_BETTER = (name: string) => /loss|perplexity/.test(name);

/** "lora r8 · lr 2e-4 · 3 epochs · batch 4×1" from a run's config ({hparams: ...}). */
export function runSummary(config: Record<string, unknown>): string {
  const h = (config.hparams ?? {}) as Record<string, unknown>;
  if (!h || typeof h !== 'object' || Object.keys(h).length === 0)
    return typeof config.trainer === 'string' ? String(config.trainer) : '—';
  const parts: string[] = [];
  const method = typeof h.method === 'string' ? h.method : null;
  if (method) parts.push(method !== 'projector' && typeof h.rank === 'number' ? `${method} r${h.rank}` : method);
  if (typeof h.lr === 'number') parts.push(`lr ${h.lr < 1e-2 ? h.lr.toExponential().replace('e+', 'e') : h.lr}`);
  if (typeof h.maxSteps === 'number') parts.push(`${h.maxSteps} steps`);
  else if (typeof h.epochs === 'number') parts.push(`${h.epochs} epoch${h.epochs === 1 ? '' : 's'}`);
  if (typeof h.batchSize === 'number')
    parts.push(`batch ${h.batchSize}${typeof h.gradAccum === 'number' && h.gradAccum > 1 ? `×${h.gradAccum}` : ''}`);
  return parts.join(' · ');
}

export interface BestMetric {
  name: string;
  value: number;
  step: number;
}

/** The best value of the train loss and of each evaluation metric. */
export function bestMetrics(series: ReadonlyMap<string, readonly ChartPoint[]> | undefined): BestMetric[] {
  if (!series) return [];
  const out: BestMetric[] = [];
  for (const [name, points] of series) {
    if (name !== 'loss' && !name.startsWith('eval_')) continue;
    let best: ChartPoint | null = null;
    for (const p of points) {
      if (p.value === null || !Number.isFinite(p.value)) continue;
      if (!best || (LOWER_IS_BETTER(name) ? p.value < best.value! : p.value > best.value!)) best = p;
    }
    if (best) out.push({ name, value: best.value!, step: best.step });
  }
  return out.sort((a, b) => (a.name === 'loss' ? -1 : b.name === 'loss' ? 1 : a.name.localeCompare(b.name)));
}

export interface StoredPrediction {
  id: number;
  itemId: number | null;
  key: string | number | null;
  prompt: string;
  output: string;
  references: string[];
  scores: Record<string, number | null>;
}

function correctOf(scores: Record<string, number | null>): boolean | null {
  const em = scores.exact_match ?? scores.accuracy;
  return em === undefined || em === null ? null : em >= 0.5;
}
/** A caption's graded score (BLEU-4, else CIDEr), shown next to its exact-match mark; none for VQA-style answers. */
function scoreOf(scores: Record<string, number | null>): number | null {
  return scores.bleu4 ?? scores.cider ?? null;
}
const joinKey = (p: StoredPrediction) => (p.itemId !== null ? `i${p.itemId}` : `k${String(p.key)}|${p.prompt}`);

/** Predictions for the gallery; with `base`, each item also shows the base model's answer to the same prompt. */
export function toGallery(
  preds: readonly StoredPrediction[],
  imageOf: (itemId: number) => string | null,
  base?: readonly StoredPrediction[],
): Prediction[] {
  const byKey = new Map((base ?? []).map((b) => [`${joinKey(b)}|${b.prompt}`, b]));
  return preds.map((p) => {
    const b = byKey.get(`${joinKey(p)}|${p.prompt}`);
    return {
      id: p.id,
      imageUrl: p.itemId !== null ? imageOf(p.itemId) : null,
      question: p.prompt.replace(/<image>\s*/g, '').trim(),
      reference: p.references.length ? p.references.join(' | ') : null,
      prediction: p.output,
      correct: correctOf(p.scores),
      score: scoreOf(p.scores),
      compare: b ? { prediction: b.output, correct: correctOf(b.scores), score: scoreOf(b.scores) } : null,
    };
  });
}

/** The words over a run's progress bar for its status (a cancelled or failed run is not "Training"). */
export function progressLabel(status: string): string {
  switch (status) {
    case 'queued':
      return 'Waiting to start';
    case 'running':
      return 'Training';
    case 'paused':
      return 'Paused';
    case 'interrupted':
      return 'Interrupted: resume to continue';
    case 'cancelled':
      return 'Cancelled';
    case 'failed':
      return 'Failed';
    case 'completed':
      return 'Finished';
    default:
      return status;
  }
}

export interface EvalScoreRow {
  metric: string;
  label: string;
  tuned: number | null;
  /** The base model on the same items (null: not evaluated yet). */
  base: number | null;
  /** A trivial predictor: always the most common answer (VQA) or caption. */
  baseline: number | null;
}

const SCORE_ROWS: { metric: string; label: string; baseline: string }[] = [
  { metric: 'exact_match', label: 'Exact match', baseline: 'majority_baseline' },
  { metric: 'bleu4', label: 'BLEU-4', baseline: 'baseline_bleu4' },
  { metric: 'cider', label: 'CIDEr', baseline: 'baseline_cider' },
];

/**
 * The evaluation's main scores beside the base model's on the same items and a trivial baseline's: exact match with
 * "always the most common answer" for VQA; BLEU-4 and CIDEr with "always the most common caption" for captions.
 */
export function evalScoreRows(
  tuned: Record<string, number | null>,
  base: Record<string, number | null> | null,
): EvalScoreRow[] {
  const caption = tuned.bleu4 !== undefined || tuned.cider !== undefined;
  return SCORE_ROWS.filter((r) => tuned[r.metric] !== undefined && (caption ? r.metric !== 'exact_match' : true)).map(
    (r) => ({
      metric: r.metric,
      label: r.label,
      tuned: tuned[r.metric] ?? null,
      base: base?.[r.metric] ?? null,
      baseline: tuned[r.baseline] ?? null,
    }),
  );
}
