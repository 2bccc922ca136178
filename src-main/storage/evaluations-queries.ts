// Typed queries for evaluations and their per-item predictions (tables from migration 0001: evaluations,
// predictions). The result shapes are eval/evaluate.ts's EvalRunResult, spelled out here so storage imports nothing
// above it.
import type { Database } from './database';
import { nowIso } from './database';

type EvalTask = 'vqa' | 'caption';
interface EvalItem {
  key: string | number;
  itemId?: number | null;
  prompt: string;
  references: string[];
}
interface Prediction {
  item: EvalItem;
  output: string;
  scores: Record<string, number>;
}
/** eval/evaluate.ts EvalRunResult. */
export interface StoredEvalResult {
  task: EvalTask;
  metrics: Record<string, number>;
  predictions: Prediction[];
}

export interface NewEvaluation {
  runId?: number | null;
  checkpointId?: number | null;
  modelId?: number | null;
  datasetId?: number | null;
  split?: 'train' | 'val' | 'test' | 'all' | null;
  /** What was evaluated and how (task, adapter path, generation settings...). */
  config?: Record<string, unknown>;
}

export interface EvaluationRow {
  id: number;
  run_id: number | null;
  checkpoint_id: number | null;
  model_id: number | null;
  dataset_id: number | null;
  split: string | null;
  config_json: string;
  status: 'queued' | 'running' | 'completed' | 'failed' | 'cancelled' | 'interrupted';
  metrics_json: string;
  error: string | null;
  created_at: string;
  finished_at: string | null;
}

/** Several references are stored as a JSON array; a single one as plain text (unless it looks like a JSON array). */
export function encodeReferences(refs: readonly string[]): string | null {
  if (refs.length === 0) return null;
  if (refs.length === 1 && !refs[0].startsWith('[')) return refs[0];
  return JSON.stringify(refs);
}

export function decodeReferences(text: string | null): string[] {
  if (text === null) return [];
  if (text.startsWith('[')) {
    try {
      const v = JSON.parse(text) as unknown;
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
    } catch {
      /* plain text that starts with '[' */
    }
  }
  return [text];
}

export function createEvaluation(db: Database, e: NewEvaluation): number {
  const info = db
    .prepare(
      `INSERT INTO evaluations (run_id, checkpoint_id, model_id, dataset_id, split, config_json, status, created_at)
       VALUES (?, ?, ?, ?, ?, ?, 'running', ?)`,
    )
    .run(
      e.runId ?? null,
      e.checkpointId ?? null,
      e.modelId ?? null,
      e.datasetId ?? null,
      e.split ?? null,
      JSON.stringify(e.config ?? {}),
      nowIso(),
    );
  return Number(info.lastInsertRowid);
}

/** Store every prediction and mark the evaluation completed with its metrics, in one transaction. */
export function storeEvaluationResult(db: Database, evaluationId: number, r: StoredEvalResult): void {
  const ins = db.prepare(
    'INSERT INTO predictions (evaluation_id, item_id, prompt, output, reference, scores_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const now = nowIso();
  db.transaction(() => {
    for (const p of r.predictions) {
      ins.run(
        evaluationId,
        p.item.itemId ?? null,
        p.item.prompt,
        p.output,
        encodeReferences(p.item.references),
        JSON.stringify({ key: p.item.key, ...p.scores }),
        now,
      );
    }
    const changes = db
      .prepare(
        `UPDATE evaluations SET status = 'completed', metrics_json = ?, config_json = json_set(config_json, '$.task', ?), finished_at = ? WHERE id = ?`,
      )
      .run(JSON.stringify(r.metrics), r.task, now, evaluationId).changes;
    if (changes === 0) throw new Error(`evaluation ${evaluationId} does not exist`);
  })();
}

export function failEvaluation(
  db: Database,
  evaluationId: number,
  message: string,
  status: 'failed' | 'cancelled' | 'interrupted' = 'failed',
): void {
  db.prepare('UPDATE evaluations SET status = ?, error = ?, finished_at = ? WHERE id = ?').run(
    status,
    message,
    nowIso(),
    evaluationId,
  );
}

export function getEvaluation(db: Database, id: number): EvaluationRow | undefined {
  return db.prepare('SELECT * FROM evaluations WHERE id = ?').get(id) as EvaluationRow | undefined;
}

/** A stored evaluation back as an EvalRunResult (predictions in insertion order). */
export function loadEvaluationResult(db: Database, id: number): StoredEvalResult {
  const row = getEvaluation(db, id);
  if (!row) throw new Error(`evaluation ${id} does not exist`);
  if (row.status !== 'completed') throw new Error(`evaluation ${id} is ${row.status}`);
  const config = JSON.parse(row.config_json) as { task?: EvalTask };
  const preds = db
    .prepare(
      'SELECT item_id, prompt, output, reference, scores_json FROM predictions WHERE evaluation_id = ? ORDER BY id',
    )
    .all(id) as {
    item_id: number | null;
    prompt: string;
    output: string;
    reference: string | null;
    scores_json: string;
  }[];
  const predictions: Prediction[] = preds.map((p, i) => {
    const { key, ...scores } = JSON.parse(p.scores_json) as { key?: string | number } & Record<string, number>;
    const item: EvalItem = {
      key: key ?? p.item_id ?? i,
      itemId: p.item_id,
      prompt: p.prompt,
      references: decodeReferences(p.reference),
    };
    return { item, output: p.output, scores };
  });
  return { task: config.task ?? 'vqa', metrics: JSON.parse(row.metrics_json) as Record<string, number>, predictions };
}

/** Predictions stored for an evaluation. */
export function countPredictions(db: Database, evaluationId: number): number {
  return (
    db.prepare('SELECT COUNT(*) AS n FROM predictions WHERE evaluation_id = ?').get(evaluationId) as { n: number }
  ).n;
}

export interface PredictionRow {
  id: number;
  item_id: number | null;
  prompt: string;
  output: string;
  reference: string | null;
  scores_json: string;
}

/** One page of an evaluation's predictions, in insertion order. */
export function listPredictions(db: Database, evaluationId: number, limit: number, offset: number): PredictionRow[] {
  return db
    .prepare(
      'SELECT id, item_id, prompt, output, reference, scores_json FROM predictions WHERE evaluation_id = ? ORDER BY id LIMIT ? OFFSET ?',
    )
    .all(evaluationId, limit, offset) as PredictionRow[];
}

/** Evaluations, newest first, optionally of one run and/or one dataset. */
export function listEvaluations(db: Database, filter: { runId?: number; datasetId?: number } = {}): EvaluationRow[] {
  const where: string[] = [];
  const args: unknown[] = [];
  if (filter.runId !== undefined) {
    where.push('run_id = ?');
    args.push(filter.runId);
  }
  if (filter.datasetId !== undefined) {
    where.push('dataset_id = ?');
    args.push(filter.datasetId);
  }
  return db
    .prepare(
      `SELECT * FROM evaluations${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC`,
    )
    .all(...args) as EvaluationRow[];
}

/** Evaluations marked running, with the pid of the process that runs them (null when not recorded). */
export function runningEvaluations(db: Database): { id: number; pid: number | null }[] {
  return db
    .prepare(`SELECT id, json_extract(config_json, '$.pid') AS pid FROM evaluations WHERE status = 'running'`)
    .all() as { id: number; pid: number | null }[];
}
