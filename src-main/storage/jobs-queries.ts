// Typed queries for what the job runner writes beside runs-queries: a run's progress and config fields,
// checkpoint rows, and metric series read back by step.
import type { Database } from './database';
import { nowIso } from './database';
import type { MetricPoint, RunStatus } from './runs-queries';

/** Set one JSON field of a run's config_json (an invalid config becomes {} first). False when no such run. */
export function setRunConfigField(db: Database, runId: number, path: string, json: string): boolean {
  const r = db
    .prepare(
      `UPDATE runs SET config_json = json_set(CASE WHEN json_valid(config_json) THEN config_json ELSE '{}' END, ?, json(?)), updated_at = ? WHERE id = ?`,
    )
    .run(path, json, nowIso(), runId);
  return r.changes > 0;
}

/** A run's config_json as stored; undefined when no such run. */
export function runConfigJson(db: Database, runId: number): string | undefined {
  return (db.prepare('SELECT config_json FROM runs WHERE id = ?').get(runId) as { config_json: string } | undefined)
    ?.config_json;
}

export function setRunProgress(db: Database, runId: number, step: number, totalSteps: number | null): void {
  db.prepare('UPDATE runs SET step = ?, total_steps = COALESCE(?, total_steps), updated_at = ? WHERE id = ?').run(
    step,
    totalSteps,
    nowIso(),
    runId,
  );
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

/**
 * Store (or replace) the 'state' checkpoint of a run at a step, attach the evaluation made at that step to it, and
 * delete the checkpoints the job pruned; one transaction.
 */
export function upsertStateCheckpoint(
  db: Database,
  runId: number,
  ck: { step: number; path: string; bytes: number; metrics: Record<string, unknown>; pruned: readonly number[] },
): void {
  const now = nowIso();
  db.transaction(() => {
    db.prepare(
      `INSERT INTO checkpoints (run_id, step, kind, path, bytes, metrics_json, created_at) VALUES (?, ?, 'state', ?, ?, ?, ?)
       ON CONFLICT (run_id, step, kind) DO UPDATE SET path = excluded.path, bytes = excluded.bytes, metrics_json = excluded.metrics_json, created_at = excluded.created_at`,
    ).run(runId, ck.step, ck.path, ck.bytes, JSON.stringify(ck.metrics), now);
    const row = db
      .prepare(`SELECT id FROM checkpoints WHERE run_id = ? AND step = ? AND kind = 'state'`)
      .get(runId, ck.step) as { id: number };
    db.prepare(
      `UPDATE evaluations SET checkpoint_id = ? WHERE run_id = ? AND json_extract(config_json, '$.step') = ?`,
    ).run(row.id, runId, ck.step);
    deleteCheckpointRows(db, runId, ck.pruned);
  })();
}

export function listCheckpointRows(db: Database, runId: number): CheckpointRow[] {
  return db.prepare('SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step').all(runId) as CheckpointRow[];
}

/** The highest step with a metric named `name` (or, ending in '%', starting with it); 0 when none. */
export function maxMetricStep(db: Database, runId: number, name: string): number {
  const op = name.endsWith('%') ? 'LIKE' : '=';
  return (
    (
      db.prepare(`SELECT MAX(step) AS s FROM metrics WHERE run_id = ? AND name ${op} ?`).get(runId, name) as {
        s: number | null;
      }
    ).s ?? 0
  );
}

export function deleteCheckpointRows(db: Database, runId: number, steps: readonly number[]): void {
  const del = db.prepare(`DELETE FROM checkpoints WHERE run_id = ? AND step = ? AND kind = 'state'`);
  for (const s of steps) del.run(runId, s);
}

export function runsWithStatus(db: Database, status: RunStatus): number[] {
  return (db.prepare('SELECT id FROM runs WHERE status = ? ORDER BY id').all(status) as { id: number }[]).map(
    (r) => r.id,
  );
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
  const points = db
    .prepare(`SELECT step, name, value FROM metrics WHERE ${where.join(' AND ')} ORDER BY name, step`)
    .all(...args) as MetricPoint[];
  const series: Record<string, { steps: number[]; values: (number | null)[] }> = {};
  for (const p of points) {
    const s = (series[p.name] ??= { steps: [], values: [] });
    s.steps.push(p.step);
    s.values.push(p.value);
  }
  return { points, series };
}
