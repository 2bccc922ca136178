// Typed queries for the undo/redo history (datasets/history.ts): the entries and cursor of a dataset, and the
// single-row changes a recorded operation makes and undo/redo replays, on the tables the history covers.
import type { Database } from './database';

export type HistTable = 'items' | 'annotations' | 'tags' | 'item_tags' | 'item_sources';
export type HistRow = Record<string, unknown>;

/** The key columns of each table the history covers. */
export const HIST_KEYS: Record<HistTable, string[]> = {
  items: ['id'],
  annotations: ['id'],
  tags: ['id'],
  item_tags: ['item_id', 'tag_id'],
  item_sources: ['item_id'],
};

function where(t: HistTable): string {
  return HIST_KEYS[t].map((k) => `${k} = @${k}`).join(' AND ');
}

export function insertHistRow(db: Database, t: HistTable, row: HistRow): void {
  const cols = Object.keys(row);
  db.prepare(`INSERT INTO ${t} (${cols.join(', ')}) VALUES (${cols.map((c) => `@${c}`).join(', ')})`).run(row);
}

/** Delete one row by key; returns how many rows went (1, or 0 when it no longer exists). */
export function deleteHistRow(db: Database, t: HistTable, key: Record<string, number>): number {
  return db.prepare(`DELETE FROM ${t} WHERE ${where(t)}`).run(key).changes;
}

/** Set columns of one row by key; returns how many rows changed (1, or 0 when it no longer exists). */
export function updateHistRow(db: Database, t: HistTable, key: Record<string, number>, patch: HistRow): number {
  const cols = Object.keys(patch);
  const params: HistRow = { ...key };
  cols.forEach((c, i) => (params[`v${i}`] = patch[c]));
  return db.prepare(`UPDATE ${t} SET ${cols.map((c, i) => `${c} = @v${i}`).join(', ')} WHERE ${where(t)}`).run(params)
    .changes;
}

export function histRow(db: Database, t: HistTable, key: Record<string, number>): HistRow | undefined {
  return db.prepare(`SELECT * FROM ${t} WHERE ${where(t)}`).get(key) as HistRow | undefined;
}

/** The rows of table `t` whose column `fk` is `id` (what a delete of the parent would cascade to). */
export function histChildRows(db: Database, t: HistTable, fk: string, id: number): HistRow[] {
  return db.prepare(`SELECT * FROM ${t} WHERE ${fk} = ?`).all(id) as HistRow[];
}

/** The last applied history entry of a dataset (0: none). */
export function historyCursor(db: Database, datasetId: number): number {
  return (
    (db.prepare('SELECT seq FROM history_cursor WHERE dataset_id = ?').get(datasetId) as { seq: number } | undefined)
      ?.seq ?? 0
  );
}

export function setHistoryCursor(db: Database, datasetId: number, seq: number): void {
  db.prepare(
    'INSERT INTO history_cursor (dataset_id, seq) VALUES (?, ?) ON CONFLICT(dataset_id) DO UPDATE SET seq = excluded.seq',
  ).run(datasetId, seq);
}

/** Drop a dataset's entries after `seq` (the redo entries a new operation replaces). */
export function deleteHistoryAfter(db: Database, datasetId: number, seq: number): void {
  db.prepare('DELETE FROM history WHERE dataset_id = ? AND seq > ?').run(datasetId, seq);
}

/** Drop a dataset's entries up to and including `seq` (the oldest, past the kept number). */
export function deleteHistoryUpTo(db: Database, datasetId: number, seq: number): void {
  db.prepare('DELETE FROM history WHERE dataset_id = ? AND seq <= ?').run(datasetId, seq);
}

export function insertHistoryEntry(
  db: Database,
  e: { datasetId: number; seq: number; label: string; changesJson: string; createdAt: string },
): void {
  db.prepare('INSERT INTO history (dataset_id, seq, label, changes_json, created_at) VALUES (?, ?, ?, ?, ?)').run(
    e.datasetId,
    e.seq,
    e.label,
    e.changesJson,
    e.createdAt,
  );
}

export function historyEntryRows(
  db: Database,
  datasetId: number,
): { seq: number; label: string; created_at: string }[] {
  return db.prepare('SELECT seq, label, created_at FROM history WHERE dataset_id = ? ORDER BY seq').all(datasetId) as {
    seq: number;
    label: string;
    created_at: string;
  }[];
}

export function historyEntryRow(
  db: Database,
  datasetId: number,
  seq: number,
): { label: string; changes_json: string } | undefined {
  return db.prepare('SELECT label, changes_json FROM history WHERE dataset_id = ? AND seq = ?').get(datasetId, seq) as
    { label: string; changes_json: string } | undefined;
}
