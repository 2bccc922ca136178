// Typed queries for runs and their metrics.
import type { Database } from './database';
import { nowIso } from './database';

export const RUN_STATUSES = ['queued', 'running', 'paused', 'completed', 'failed', 'cancelled', 'interrupted'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export interface RunRow {
  id: number;
  name: string;
  model_id: number | null;
  dataset_id: number | null;
  config_json: string;
  status: RunStatus;
  step: number;
  total_steps: number | null;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
  /** When the run was archived (hidden from the list by default), else null. */
  archived_at: string | null;
}

/** A run joined with the names of its model and dataset (null when unset or deleted). */
export interface RunSummaryRow extends RunRow {
  model_name: string | null;
  dataset_name: string | null;
}

const SUMMARY_SQL = `SELECT r.*, m.name AS model_name, d.name AS dataset_name
  FROM runs r LEFT JOIN models m ON m.id = r.model_id LEFT JOIN datasets d ON d.id = r.dataset_id`;

export function listRuns(db: Database, filter: { status?: RunStatus; datasetId?: number } = {}): RunSummaryRow[] {
  const where: string[] = [];
  const args: unknown[] = [];
  if (filter.status) {
    where.push('r.status = ?');
    args.push(filter.status);
  }
  if (filter.datasetId !== undefined) {
    where.push('r.dataset_id = ?');
    args.push(filter.datasetId);
  }
  const sql = `${SUMMARY_SQL}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY r.created_at DESC, r.id DESC`;
  return db.prepare(sql).all(...args) as RunSummaryRow[];
}

export function getRun(db: Database, id: number): RunSummaryRow | undefined {
  return db.prepare(`${SUMMARY_SQL} WHERE r.id = ?`).get(id) as RunSummaryRow | undefined;
}

export function insertRun(
  db: Database,
  input: {
    name: string;
    config: unknown;
    modelId?: number | null;
    datasetId?: number | null;
    totalSteps?: number | null;
  },
): RunSummaryRow {
  const now = nowIso();
  const info = db
    .prepare(
      `INSERT INTO runs (name, model_id, dataset_id, config_json, status, total_steps, created_at, updated_at)
       VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)`,
    )
    .run(
      input.name,
      input.modelId ?? null,
      input.datasetId ?? null,
      JSON.stringify(input.config ?? {}),
      input.totalSteps ?? null,
      now,
      now,
    );
  return getRun(db, Number(info.lastInsertRowid))!;
}

/** Set status (and optionally step/error); stamps started_at on first 'running' and finished_at on a terminal status. */
export function updateRunStatus(
  db: Database,
  id: number,
  status: RunStatus,
  extra: { step?: number; error?: string | null } = {},
): RunSummaryRow | undefined {
  const now = nowIso();
  const terminal = status === 'completed' || status === 'failed' || status === 'cancelled' || status === 'interrupted';
  const info = db
    .prepare(
      `UPDATE runs SET status = ?, step = COALESCE(?, step), error = ?,
         started_at = CASE WHEN ? = 'running' AND started_at IS NULL THEN ? ELSE started_at END,
         finished_at = CASE WHEN ? THEN ? ELSE NULL END,
         updated_at = ?
       WHERE id = ?`,
    )
    .run(status, extra.step ?? null, extra.error ?? null, status, now, terminal ? 1 : 0, now, now, id);
  return info.changes === 0 ? undefined : getRun(db, id);
}

export function renameRun(db: Database, id: number, name: string): boolean {
  return db.prepare('UPDATE runs SET name = ?, updated_at = ? WHERE id = ?').run(name, nowIso(), id).changes > 0;
}

export function setRunArchived(db: Database, id: number, archived: boolean): boolean {
  const now = nowIso();
  return (
    db.prepare('UPDATE runs SET archived_at = ?, updated_at = ? WHERE id = ?').run(archived ? now : null, now, id)
      .changes > 0
  );
}

export function runNameTaken(db: Database, name: string, exceptId: number): boolean {
  return !!db.prepare('SELECT 1 FROM runs WHERE name = ? AND id != ?').get(name, exceptId);
}

export function deleteRun(db: Database, id: number): boolean {
  return db.prepare('DELETE FROM runs WHERE id = ?').run(id).changes > 0;
}

export interface MetricPoint {
  step: number;
  name: string;
  /** null when the value was not finite (NaN). */
  value: number | null;
}

/** Record metric points for a run in one transaction (a repeated (name, step) replaces the earlier value). */
export function insertMetrics(db: Database, runId: number, points: MetricPoint[]): void {
  const stmt = db.prepare(
    'INSERT OR REPLACE INTO metrics (run_id, step, name, value, recorded_at) VALUES (?, ?, ?, ?, ?)',
  );
  const now = nowIso();
  db.transaction(() => {
    for (const p of points)
      stmt.run(runId, p.step, p.name, p.value === null || Number.isNaN(p.value) ? null : p.value, now);
  })();
}

export function listMetrics(db: Database, runId: number, name?: string): MetricPoint[] {
  const rows = name
    ? db.prepare('SELECT step, name, value FROM metrics WHERE run_id = ? AND name = ? ORDER BY step').all(runId, name)
    : db.prepare('SELECT step, name, value FROM metrics WHERE run_id = ? ORDER BY name, step').all(runId);
  return rows as MetricPoint[];
}

/** Mark runs left 'running' by a process that died as 'interrupted' (call at backend start-up). */
export function markInterruptedRuns(db: Database): number {
  const now = nowIso();
  return db
    .prepare(`UPDATE runs SET status = 'interrupted', finished_at = ?, updated_at = ? WHERE status = 'running'`)
    .run(now, now).changes;
}

/** The newest run whose job writes into `outDir` (`lenslab train --out`), if any. */
export function runOfOutDir(db: Database, outDir: string): { id: number; status: RunStatus } | undefined {
  return db
    .prepare(`SELECT id, status FROM runs WHERE json_extract(config_json, '$.job.outDir') = ? ORDER BY id DESC LIMIT 1`)
    .get(outDir) as { id: number; status: RunStatus } | undefined;
}

/** A run of the dataset that has not finished (queued, running or paused), if any. */
export function unfinishedRunOfDataset(db: Database, datasetId: number): { id: number } | undefined {
  return db
    .prepare(`SELECT id FROM runs WHERE dataset_id = ? AND status IN ('queued','running','paused') LIMIT 1`)
    .get(datasetId) as { id: number } | undefined;
}
