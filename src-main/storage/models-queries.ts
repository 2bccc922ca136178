// Typed queries for registered models (table models).
import type { Database } from './database';

/** A registered model's folder as stored (relative to the data dir, or absolute). */
export function getModelPath(db: Database, id: number): { id: number; path: string } | undefined {
  return db.prepare('SELECT id, path FROM models WHERE id = ?').get(id) as { id: number; path: string } | undefined;
}
