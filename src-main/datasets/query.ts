// Read queries for the UI/API: a filtered page of items with labels and tags, tag counts, provenance.
import type { Database } from 'better-sqlite3';
import type { LintRule } from './lint';
import { assembleItems, type AnnotationRow, type FullItem, type ItemRow, type ItemTagRow } from './rows';
import type { Split } from './types';

export interface ItemFilter {
  offset?: number;
  limit?: number;
  split?: Split | 'none';
  tag?: string;
  lintRule?: LintRule;
  search?: string;
  unlabeled?: boolean;
}

/** Items of a dataset in position order, filtered and paged, with their annotations and tags. */
export function listItems(db: Database, datasetId: number, f: ItemFilter = {}): { items: FullItem[]; total: number } {
  const where = ['i.dataset_id = @ds'];
  const params: Record<string, unknown> = { ds: datasetId };
  if (f.split === 'none') where.push('i.split IS NULL');
  else if (f.split) {
    where.push('i.split = @split');
    params.split = f.split;
  }
  if (f.tag !== undefined) {
    where.push('EXISTS (SELECT 1 FROM item_tags it JOIN tags t ON t.id = it.tag_id WHERE it.item_id = i.id AND t.name = @tag)');
    params.tag = f.tag;
  }
  if (f.lintRule) {
    where.push('EXISTS (SELECT 1 FROM lint_results l WHERE l.item_id = i.id AND l.rule = @rule)');
    params.rule = f.lintRule;
  }
  if (f.search) {
    where.push("EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = i.id AND instr(lower(a.data_json), lower(@search)) > 0)");
    params.search = JSON.stringify(f.search).slice(1, -1);
  }
  if (f.unlabeled === true) where.push('NOT EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = i.id)');
  if (f.unlabeled === false) where.push('EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = i.id)');
  const w = where.join(' AND ');
  const total = (db.prepare(`SELECT COUNT(*) AS n FROM items i WHERE ${w}`).get(params) as { n: number }).n;
  const rows = db.prepare(`SELECT i.* FROM items i WHERE ${w} ORDER BY i.position, i.id LIMIT @limit OFFSET @offset`).all({ ...params, limit: f.limit ?? 200, offset: f.offset ?? 0 }) as ItemRow[];
  return { items: hydrate(db, rows), total };
}

/** Rows → items with annotations and tags (two queries for the whole page). */
export function hydrate(db: Database, rows: ItemRow[]): FullItem[] {
  if (rows.length === 0) return [];
  const ids = JSON.stringify(rows.map((r) => r.id));
  const anns = db.prepare('SELECT a.* FROM annotations a WHERE a.item_id IN (SELECT value FROM json_each(?)) ORDER BY a.item_id, a.position, a.id').all(ids) as AnnotationRow[];
  const tags = db
    .prepare('SELECT it.item_id, t.name FROM item_tags it JOIN tags t ON t.id = it.tag_id WHERE it.item_id IN (SELECT value FROM json_each(?)) ORDER BY t.name')
    .all(ids) as ItemTagRow[];
  return assembleItems(rows, anns, tags);
}

export function getFullItem(db: Database, id: number): (FullItem & { datasetId: number }) | undefined {
  const row = db.prepare('SELECT * FROM items WHERE id = ?').get(id) as ItemRow | undefined;
  return row ? { ...hydrate(db, [row])[0], datasetId: row.dataset_id } : undefined;
}

export function itemProvenance(db: Database, id: number): { importId: number | null; record: string; imageOriginal: string | null } | null {
  const r = db.prepare('SELECT import_id, record, image_original FROM item_sources WHERE item_id = ?').get(id) as { import_id: number | null; record: string; image_original: string | null } | undefined;
  return r ? { importId: r.import_id, record: r.record, imageOriginal: r.image_original } : null;
}

export function tagCounts(db: Database, datasetId: number): { name: string; count: number }[] {
  return db
    .prepare('SELECT t.name, COUNT(it.item_id) AS count FROM tags t LEFT JOIN item_tags it ON it.tag_id = t.id WHERE t.dataset_id = ? GROUP BY t.id ORDER BY t.name')
    .all(datasetId) as { name: string; count: number }[];
}
