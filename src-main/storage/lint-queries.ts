// Typed queries for stored lint results (datasets/lint.ts computes them).
import type { Database } from './database';

export interface LintResultRow {
  item_id: number;
  rule: string;
  severity: string;
  message: string;
  data_json: string;
}

/** Replace a dataset's stored lint results with these, in one immediate transaction. */
export function replaceLintResults(
  db: Database,
  datasetId: number,
  rows: readonly { itemId: number; rule: string; severity: string; message: string; dataJson: string }[],
  createdAt: string,
): void {
  db.transaction(() => {
    db.prepare('DELETE FROM lint_results WHERE dataset_id = ?').run(datasetId);
    const ins = db.prepare(
      'INSERT INTO lint_results (dataset_id, item_id, rule, severity, message, data_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    for (const r of rows) ins.run(datasetId, r.itemId, r.rule, r.severity, r.message, r.dataJson, createdAt);
  }).immediate();
}

/** A dataset's stored lint results, by item then in stored order, filtered by rule, severity and/or item. */
export function lintResultRows(
  db: Database,
  datasetId: number,
  filter: { rule?: string; severity?: string; itemId?: number } = {},
): LintResultRow[] {
  const where = ['dataset_id = ?'];
  const params: unknown[] = [datasetId];
  if (filter.rule) {
    where.push('rule = ?');
    params.push(filter.rule);
  }
  if (filter.severity) {
    where.push('severity = ?');
    params.push(filter.severity);
  }
  if (filter.itemId !== undefined) {
    where.push('item_id = ?');
    params.push(filter.itemId);
  }
  return db
    .prepare(
      `SELECT item_id, rule, severity, message, data_json FROM lint_results WHERE ${where.join(' AND ')} ORDER BY item_id, id`,
    )
    .all(...params) as LintResultRow[];
}
