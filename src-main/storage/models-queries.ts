// Typed queries for registered models (table models).
import type { Database } from './database';
import { nowIso } from './database';

/** A registered model's folder as stored (relative to the data dir, or absolute). */
export function getModelPath(db: Database, id: number): { id: number; path: string } | undefined {
  return db.prepare('SELECT id, path FROM models WHERE id = ?').get(id) as { id: number; path: string } | undefined;
}

export interface ModelRow {
  id: number;
  name: string;
  kind: 'base' | 'adapter' | 'merged';
  family: string | null;
  path: string;
  base_model_id: number | null;
  config_json: string;
  params: number | null;
  bytes: number | null;
  created_at: string;
  updated_at: string;
}

export function getModelRow(db: Database, id: number): ModelRow | undefined {
  return db.prepare('SELECT * FROM models WHERE id = ?').get(id) as ModelRow | undefined;
}

/** Newest first. */
export function listModelRows(db: Database): ModelRow[] {
  return db.prepare('SELECT * FROM models ORDER BY created_at DESC, id DESC').all() as ModelRow[];
}

export function modelNameTaken(db: Database, name: string): boolean {
  return !!db.prepare('SELECT 1 FROM models WHERE name = ?').get(name);
}

/** The model registered with this stored path, if any. */
export function modelByPath(db: Database, path: string): { id: number; name: string } | undefined {
  return db.prepare('SELECT id, name FROM models WHERE path = ?').get(path) as { id: number; name: string } | undefined;
}

export function insertModelRow(
  db: Database,
  m: {
    name: string;
    kind: ModelRow['kind'];
    family: string | null;
    path: string;
    baseModelId: number | null;
    config: Record<string, unknown>;
    params: number | null;
    bytes: number | null;
  },
): number {
  const now = nowIso();
  const info = db
    .prepare(
      'INSERT INTO models (name, kind, family, path, base_model_id, config_json, params, bytes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    )
    .run(m.name, m.kind, m.family, m.path, m.baseModelId, JSON.stringify(m.config), m.params, m.bytes, now, now);
  return Number(info.lastInsertRowid);
}

export function renameModel(db: Database, id: number, name: string): void {
  db.prepare('UPDATE models SET name = ?, updated_at = ? WHERE id = ?').run(name, nowIso(), id);
}

export function deleteModelRow(db: Database, id: number): void {
  db.prepare('DELETE FROM models WHERE id = ?').run(id);
}
