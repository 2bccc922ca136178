// What the job runner writes to SQLite: run status/step, metric points, checkpoint rows, the job spec. The SQL
// lives in storage/ (runs-queries, jobs-queries, evaluations-queries); this maps job events onto it.
import type { Database } from '../storage/database';
import { getRun, insertMetrics, updateRunStatus, type MetricPoint } from '../storage/runs-queries';
import { runConfigJson, setRunConfigField, upsertStateCheckpoint } from '../storage/jobs-queries';
import type { EvalEvent, JobEvent, JobSpec } from './protocol';
import { createEvaluation, storeEvaluationResult } from '../storage/evaluations-queries';

export { getRun, updateRunStatus };
export {
  setRunProgress,
  listCheckpointRows,
  maxMetricStep,
  deleteCheckpointRows,
  runsWithStatus,
  metricSeries,
  type CheckpointRow,
} from '../storage/jobs-queries';

/** Keep the job spec inside the run's config (config_json.job), so resume and recovery can find the run dir. */
export function saveJobSpec(db: Database, runId: number, spec: JobSpec): void {
  if (!setRunConfigField(db, runId, '$.job', JSON.stringify(spec))) throw new Error(`run ${runId} does not exist`);
}

export function loadJobSpec(db: Database, runId: number): JobSpec | null {
  const config = runConfigJson(db, runId);
  if (config === undefined) throw new Error(`run ${runId} does not exist`);
  try {
    const job = (JSON.parse(config) as { job?: JobSpec }).job;
    return job && typeof job.outDir === 'string' && typeof job.trainer === 'string' ? job : null;
  } catch {
    return null;
  }
}

/** Metric names as stored: loss, lr, grad_norm, samples_per_sec, tokens_per_sec; eval metrics as eval_<name>. */
export function metricPoints(e: JobEvent): MetricPoint[] {
  if (e.type === 'progress')
    return [
      { step: e.step, name: 'loss', value: e.loss },
      { step: e.step, name: 'lr', value: e.lr },
      { step: e.step, name: 'grad_norm', value: e.gradNorm },
      { step: e.step, name: 'samples_per_sec', value: e.samplesPerSec },
      { step: e.step, name: 'tokens_per_sec', value: e.tokensPerSec },
    ];
  if (e.type === 'eval')
    return Object.entries(e.metrics).map(([k, v]) => ({
      step: e.step,
      name: k.startsWith('eval_') ? k : `eval_${k}`,
      value: Number.isFinite(v) ? v : null,
    }));
  return [];
}

export function storeMetrics(db: Database, runId: number, e: JobEvent): void {
  const points = metricPoints(e).map((p) => ({
    ...p,
    value: p.value !== null && Number.isFinite(p.value) ? p.value : null,
  }));
  if (points.length) insertMetrics(db, runId, points);
}

export function recordCheckpoint(db: Database, runId: number, e: Extract<JobEvent, { type: 'checkpoint' }>): void {
  // the evaluation made at this step (just before the checkpoint) belongs to it
  upsertStateCheckpoint(db, runId, {
    step: e.step,
    path: e.path,
    bytes: e.bytes,
    metrics: e.metrics ?? {},
    pruned: e.pruned,
  });
}

/** Store the predictions of an evaluation made during training as an evaluation of the run at that step. */
export function storeTrainingEvaluation(db: Database, runId: number, e: EvalEvent): number {
  const run = getRun(db, runId);
  return db.transaction(() => {
    const id = createEvaluation(db, {
      runId,
      modelId: run?.model_id ?? null,
      datasetId: run?.dataset_id ?? null,
      split: e.split ?? null,
      config: { step: e.step, source: 'training' },
    });
    storeEvaluationResult(db, id, {
      task: e.task ?? 'vqa',
      metrics: e.metrics,
      predictions: (e.predictions ?? []).map((p) => ({
        item: { key: p.key, itemId: p.itemId ?? null, prompt: p.prompt, references: p.references },
        output: p.output,
        scores: p.scores,
      })),
    });
    return id;
  })();
}
