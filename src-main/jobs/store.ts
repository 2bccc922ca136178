// What the job runner writes to SQLite: run status/step, metric points, checkpoint rows, the job spec.
// Run status and metrics go through Foundation's runs-queries; the few updates it lacks are here.
import type { Database } from '../storage/database';
import { nowIso } from '../storage/database';
import { getRun, insertMetrics, updateRunStatus, type MetricPoint, type RunStatus } from '../storage/runs-queries';
import type { EvalEvent, JobEvent, JobSpec } from './protocol';
import { createEvaluation, storeEvaluationResult } from '../storage/evaluations-queries';

export { getRun, updateRunStatus };

/** Keep the job spec inside the run's config (config_json.job), so resume and recovery can find the run dir. */
export function saveJobSpec(db: Database, runId: number, spec: JobSpec): void {
  const r = db
    .prepare(`UPDATE runs SET config_json = json_set(CASE WHEN json_valid(config_json) THEN config_json ELSE '{}' END, '$.job', json(?)), updated_at = ? WHERE id = ?`)
    .run(JSON.stringify(spec), nowIso(), runId);
  if (r.changes === 0) throw new Error(`run ${runId} does not exist`);
}

export function loadJobSpec(db: Database, runId: number): JobSpec | null {
  const row = db.prepare('SELECT config_json FROM runs WHERE id = ?').get(runId) as { config_json: string } | undefined;
  if (!row) throw new Error(`run ${runId} does not exist`);
  try {
    const job = (JSON.parse(row.config_json) as { job?: JobSpec }).job;
    return job && typeof job.outDir === 'string' && typeof job.trainer === 'string' ? job : null;
  } catch {
    return null;
  }
}

export function setRunProgress(db: Database, runId: number, step: number, totalSteps: number | null): void {
  db.prepare('UPDATE runs SET step = ?, total_steps = COALESCE(?, total_steps), updated_at = ? WHERE id = ?').run(step, totalSteps, nowIso(), runId);
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
    return Object.entries(e.metrics).map(([k, v]) => ({ step: e.step, name: k.startsWith('eval_') ? k : `eval_${k}`, value: Number.isFinite(v) ? v : null }));
  return [];
}

export function storeMetrics(db: Database, runId: number, e: JobEvent): void {
  const points = metricPoints(e).map((p) => ({ ...p, value: p.value !== null && Number.isFinite(p.value) ? p.value : null }));
  if (points.length) insertMetrics(db, runId, points);
}

export function recordCheckpoint(db: Database, runId: number, e: Extract<JobEvent, { type: 'checkpoint' }>): void {
  const now = nowIso();
  db.transaction(() => {
    db.prepare(
      `INSERT INTO checkpoints (run_id, step, kind, path, bytes, metrics_json, created_at) VALUES (?, ?, 'state', ?, ?, ?, ?)
       ON CONFLICT (run_id, step, kind) DO UPDATE SET path = excluded.path, bytes = excluded.bytes, metrics_json = excluded.metrics_json, created_at = excluded.created_at`,
    ).run(runId, e.step, e.path, e.bytes, JSON.stringify(e.metrics ?? {}), now);
    // the evaluation made at this step (just before the checkpoint) belongs to it
    const ck = db.prepare(`SELECT id FROM checkpoints WHERE run_id = ? AND step = ? AND kind = 'state'`).get(runId, e.step) as { id: number };
    db.prepare(`UPDATE evaluations SET checkpoint_id = ? WHERE run_id = ? AND json_extract(config_json, '$.step') = ?`).run(ck.id, runId, e.step);
    const del = db.prepare(`DELETE FROM checkpoints WHERE run_id = ? AND step = ? AND kind = 'state'`);
    for (const s of e.pruned) del.run(runId, s);
  })();
}

export interface CheckpointRow {
  id: number;
  run_id: number;
  step: number;
  kind: string;
  path: string;
  bytes: number | null;
  metrics_json: string;
  created_at: string;
}

export function listCheckpointRows(db: Database, runId: number): CheckpointRow[] {
  return db.prepare('SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step').all(runId) as CheckpointRow[];
}

/** The highest step with a metric named `name` (or, ending in '%', starting with it); 0 when none. */
export function maxMetricStep(db: Database, runId: number, name: string): number {
  const op = name.endsWith('%') ? 'LIKE' : '=';
  return (db.prepare(`SELECT MAX(step) AS s FROM metrics WHERE run_id = ? AND name ${op} ?`).get(runId, name) as { s: number | null }).s ?? 0;
}

export function deleteCheckpointRows(db: Database, runId: number, steps: readonly number[]): void {
  const del = db.prepare(`DELETE FROM checkpoints WHERE run_id = ? AND step = ? AND kind = 'state'`);
  for (const s of steps) del.run(runId, s);
}

export function runsWithStatus(db: Database, status: RunStatus): number[] {
  return (db.prepare('SELECT id FROM runs WHERE status = ? ORDER BY id').all(status) as { id: number }[]).map((r) => r.id);
}

/** A run's metric points (by name, then step), filtered by names and/or `step > sinceStep`, also as columns per name. */
export function metricSeries(
  db: Database,
  runId: number,
  filter: { names?: string[]; sinceStep?: number } = {},
): { points: MetricPoint[]; series: Record<string, { steps: number[]; values: (number | null)[] }> } {
  const where = ['run_id = ?'];
  const args: unknown[] = [runId];
  if (filter.names) {
    if (filter.names.length === 0) return { points: [], series: {} };
    where.push(`name IN (${filter.names.map(() => '?').join(', ')})`);
    args.push(...filter.names);
  }
  if (filter.sinceStep !== undefined) {
    where.push('step > ?');
    args.push(filter.sinceStep);
  }
  const points = db.prepare(`SELECT step, name, value FROM metrics WHERE ${where.join(' AND ')} ORDER BY name, step`).all(...args) as MetricPoint[];
  const series: Record<string, { steps: number[]; values: (number | null)[] }> = {};
  for (const p of points) {
    const s = (series[p.name] ??= { steps: [], values: [] });
    s.steps.push(p.step);
    s.values.push(p.value);
  }
  return { points, series };
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
