// Evaluation of a model (or model + adapter) on a list of items: generate an answer per item with whatever
// generator the caller supplies (the engine's greedy decoding in the app; a fake in tests), score it with the task's
// metrics, and compare two evaluations (base vs fine-tuned) on the same items.
import { scorePredictions, type EvalTask } from './metrics';

export interface EvalItem {
  /** Stable key of the item (the dataset item id when there is one). */
  key: string | number;
  /** Dataset item id, stored with the prediction (null for items outside the database). */
  itemId?: number | null;
  /** The user turn (may contain "<image>"). */
  prompt: string;
  /** Reference answers / captions (one or more). */
  references: string[];
  /** Path or content hash of the image, for the generator. */
  image?: string | null;
}

export interface Prediction {
  item: EvalItem;
  output: string;
  scores: Record<string, number>;
}

export interface EvalRunResult {
  task: EvalTask;
  metrics: Record<string, number>;
  predictions: Prediction[];
}

export interface EvalRunOptions {
  task: EvalTask;
  items: readonly EvalItem[];
  generate: (item: EvalItem) => Promise<string>;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

/** The task whose metrics fit an annotation kind: qa → vqa (exact match), caption/chat → caption (BLEU-4, CIDEr). */
export function taskForAnnotation(kind: 'caption' | 'qa' | 'chat'): EvalTask {
  return kind === 'qa' ? 'vqa' : 'caption';
}

/** Generate and score every item, in order. Throws (naming the item) when an item has no reference. */
export async function runEvaluation(o: EvalRunOptions): Promise<EvalRunResult> {
  o.items.forEach((it) => {
    if (!it.references.length) throw new Error(`evaluation: item ${JSON.stringify(it.key)} has no reference answer`);
  });
  const outputs: string[] = [];
  for (const item of o.items) {
    if (o.signal?.aborted) throw new Error('evaluation cancelled');
    outputs.push(await o.generate(item));
    o.onProgress?.(outputs.length, o.items.length);
  }
  const scored = scorePredictions(
    o.task,
    o.items.map((it, i) => ({ prediction: outputs[i], references: it.references })),
  );
  return {
    task: o.task,
    metrics: scored.metrics,
    predictions: o.items.map((item, i) => ({ item, output: outputs[i], scores: scored.perItem[i] })),
  };
}

export interface MetricComparison {
  base: number;
  tuned: number;
  delta: number;
}

export interface ItemComparison {
  key: string | number;
  prompt: string;
  references: string[];
  base: string;
  tuned: string;
  baseScores: Record<string, number>;
  tunedScores: Record<string, number>;
  /** By the task's main per-item score (exact_match for vqa, cider for captions). */
  change: 'better' | 'worse' | 'same';
}

export interface Comparison {
  task: EvalTask;
  metrics: Record<string, MetricComparison>;
  items: ItemComparison[];
}

export function mainMetric(task: EvalTask): string {
  return task === 'vqa' ? 'exact_match' : 'cider';
}

/** Base vs fine-tuned on the same items (matched by key). Throws naming items present in only one of them. */
export function compareResults(base: EvalRunResult, tuned: EvalRunResult): Comparison {
  if (base.task !== tuned.task) throw new Error(`cannot compare a ${base.task} evaluation with a ${tuned.task} one`);
  const byKey = new Map(tuned.predictions.map((p) => [String(p.item.key), p]));
  const missing = base.predictions.filter((p) => !byKey.has(String(p.item.key))).map((p) => p.item.key);
  const extra = tuned.predictions
    .filter((p) => !base.predictions.some((b) => String(b.item.key) === String(p.item.key)))
    .map((p) => p.item.key);
  if (missing.length || extra.length)
    throw new Error(
      `the two evaluations are not on the same items (only in base: ${JSON.stringify(missing.slice(0, 5))}; only in fine-tuned: ${JSON.stringify(extra.slice(0, 5))})`,
    );
  const main = mainMetric(base.task);
  const metrics: Record<string, MetricComparison> = {};
  for (const k of Object.keys(base.metrics)) {
    if (k in tuned.metrics)
      metrics[k] = { base: base.metrics[k], tuned: tuned.metrics[k], delta: tuned.metrics[k] - base.metrics[k] };
  }
  const items = base.predictions.map((b) => {
    const t = byKey.get(String(b.item.key))!;
    const d = (t.scores[main] ?? 0) - (b.scores[main] ?? 0);
    return {
      key: b.item.key,
      prompt: b.item.prompt,
      references: b.item.references,
      base: b.output,
      tuned: t.output,
      baseScores: b.scores,
      tunedScores: t.scores,
      change: d > 1e-12 ? 'better' : d < -1e-12 ? 'worse' : 'same',
    } satisfies ItemComparison;
  });
  return { task: base.task, metrics, items };
}
