// Typed queries for the datasets table (item/annotation queries live with the Datasets area).
import type { Database } from './database';
import { nowIso } from './database';

export interface DatasetRow {
  id: number;
  name: string;
  description: string;
  created_at: string;
  updated_at: string;
}

export interface DatasetSummaryRow extends DatasetRow {
  item_count: number;
}

const SUMMARY_SQL = `SELECT d.id, d.name, d.description, d.created_at, d.updated_at,
  (SELECT COUNT(*) FROM items i WHERE i.dataset_id = d.id) AS item_count
  FROM datasets d`;

export function listDatasets(db: Database): DatasetSummaryRow[] {
  return db.prepare(`${SUMMARY_SQL} ORDER BY d.updated_at DESC, d.id DESC`).all() as DatasetSummaryRow[];
}

export function getDataset(db: Database, id: number): DatasetSummaryRow | undefined {
  return db.prepare(`${SUMMARY_SQL} WHERE d.id = ?`).get(id) as DatasetSummaryRow | undefined;
}

export function getDatasetByName(db: Database, name: string): DatasetSummaryRow | undefined {
  return db.prepare(`${SUMMARY_SQL} WHERE d.name = ?`).get(name) as DatasetSummaryRow | undefined;
}

/** Insert a dataset; throws a SqliteError with code SQLITE_CONSTRAINT_UNIQUE when the name is taken. */
export function insertDataset(db: Database, input: { name: string; description?: string }): DatasetSummaryRow {
  const now = nowIso();
  const info = db
    .prepare('INSERT INTO datasets (name, description, created_at, updated_at) VALUES (?, ?, ?, ?)')
    .run(input.name, input.description ?? '', now, now);
  return getDataset(db, Number(info.lastInsertRowid))!;
}

/** Update name and/or description; returns the updated row or undefined when the id does not exist. */
export function updateDataset(
  db: Database,
  id: number,
  patch: { name?: string; description?: string },
): DatasetSummaryRow | undefined {
  const info = db
    .prepare(
      `UPDATE datasets SET name = COALESCE(?, name), description = COALESCE(?, description), updated_at = ?
       WHERE id = ?`,
    )
    .run(patch.name ?? null, patch.description ?? null, nowIso(), id);
  return info.changes === 0 ? undefined : getDataset(db, id);
}

/** Delete a dataset (items, annotations and splits cascade). Returns whether a row was deleted. */
export function deleteDataset(db: Database, id: number): boolean {
  return db.prepare('DELETE FROM datasets WHERE id = ?').run(id).changes > 0;
}

/** The dataset most recently imported from `source` (an absolute path), if it still exists. */
export function datasetImportedFrom(db: Database, source: string): { id: number; name: string } | undefined {
  return db
    .prepare(
      'SELECT i.dataset_id AS id, d.name FROM imports i JOIN datasets d ON d.id = i.dataset_id WHERE i.source = ? ORDER BY i.id DESC LIMIT 1',
    )
    .get(source) as { id: number; name: string } | undefined;
}

/** A dataset's id and name alone (no counts); undefined when no such dataset. */
export function datasetName(db: Database, id: number): { id: number; name: string } | undefined {
  return db.prepare('SELECT id, name FROM datasets WHERE id = ?').get(id) as { id: number; name: string } | undefined;
}

export function datasetExists(db: Database, id: number): boolean {
  return !!db.prepare('SELECT 1 FROM datasets WHERE id = ?').get(id);
}

export function datasetNameExists(db: Database, name: string): boolean {
  return !!db.prepare('SELECT 1 FROM datasets WHERE name = ?').get(name);
}

/** An annotation's kind and the dataset its item belongs to. */
export function annotationOwner(db: Database, annotationId: number): { kind: string; datasetId: number } | undefined {
  return db
    .prepare(
      'SELECT a.kind, i.dataset_id AS datasetId FROM annotations a JOIN items i ON i.id = a.item_id WHERE a.id = ?',
    )
    .get(annotationId) as { kind: string; datasetId: number } | undefined;
}
