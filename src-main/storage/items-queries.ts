// Typed queries for a dataset's items, their annotations and tags, provenance and split records. The row types
// are the tables' columns; datasets/ turns them into items (datasets/rows.ts assembleItems).
import type { Database } from './database';
import { nowIso } from './database';

export type ItemSplit = 'train' | 'val' | 'test';

export interface ItemRow {
  id: number;
  dataset_id: number;
  image_hash: string | null;
  image_ext: string | null;
  width: number | null;
  height: number | null;
  bytes: number | null;
  source_path: string | null;
  split: ItemSplit | null;
  position: number;
  created_at: string;
  updated_at: string;
  /** an audio clip or video instead of an image (migration 0004) */
  media_kind?: 'audio' | 'video' | null;
  media_hash?: string | null;
  media_ext?: string | null;
  media_json?: string | null;
}

export interface AnnotationRow {
  id: number;
  item_id: number;
  kind: 'caption' | 'qa' | 'chat';
  data_json: string;
  position: number;
  created_at: string;
  updated_at: string;
}

export interface TagRow {
  id: number;
  dataset_id: number;
  name: string;
  created_at: string;
}

/** An item's tag name, as the item_tags ⨝ tags queries return it. */
export interface ItemTagRow {
  item_id: number;
  name: string;
}

/** What a page of items is filtered by (all optional; absent means no filter). */
export interface ItemRowFilter {
  offset?: number;
  limit?: number;
  split?: ItemSplit | 'none';
  tag?: string;
  /** items with a lint result of this rule */
  lintRule?: string;
  /** a substring of an annotation's text, case-insensitive */
  search?: string;
  unlabeled?: boolean;
}

/** A page of a dataset's item rows in position order (limit 200 by default) and how many match in all. */
export function pageItemRows(
  db: Database,
  datasetId: number,
  f: ItemRowFilter = {},
): { rows: ItemRow[]; total: number } {
  const where = ['i.dataset_id = @ds'];
  const params: Record<string, unknown> = { ds: datasetId };
  if (f.split === 'none') where.push('i.split IS NULL');
  else if (f.split) {
    where.push('i.split = @split');
    params.split = f.split;
  }
  if (f.tag !== undefined) {
    where.push(
      'EXISTS (SELECT 1 FROM item_tags it JOIN tags t ON t.id = it.tag_id WHERE it.item_id = i.id AND t.name = @tag)',
    );
    params.tag = f.tag;
  }
  if (f.lintRule) {
    where.push('EXISTS (SELECT 1 FROM lint_results l WHERE l.item_id = i.id AND l.rule = @rule)');
    params.rule = f.lintRule;
  }
  if (f.search) {
    where.push(
      'EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = i.id AND instr(lower(a.data_json), lower(@search)) > 0)',
    );
    // matched against the stored JSON text, so the needle is JSON-escaped the same way
    params.search = JSON.stringify(f.search).slice(1, -1);
  }
  if (f.unlabeled === true) where.push('NOT EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = i.id)');
  if (f.unlabeled === false) where.push('EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = i.id)');
  const w = where.join(' AND ');
  const total = (db.prepare(`SELECT COUNT(*) AS n FROM items i WHERE ${w}`).get(params) as { n: number }).n;
  const rows = db
    .prepare(`SELECT i.* FROM items i WHERE ${w} ORDER BY i.position, i.id LIMIT @limit OFFSET @offset`)
    .all({ ...params, limit: f.limit ?? 200, offset: f.offset ?? 0 }) as ItemRow[];
  return { rows, total };
}

/** The annotation rows of these items, ordered by item, position, id. */
export function annotationRowsOf(db: Database, itemIds: readonly number[]): AnnotationRow[] {
  return db
    .prepare(
      'SELECT a.* FROM annotations a WHERE a.item_id IN (SELECT value FROM json_each(?)) ORDER BY a.item_id, a.position, a.id',
    )
    .all(JSON.stringify(itemIds)) as AnnotationRow[];
}

/** The tag names of these items, ordered by name. */
export function itemTagRowsOf(db: Database, itemIds: readonly number[]): ItemTagRow[] {
  return db
    .prepare(
      'SELECT it.item_id, t.name FROM item_tags it JOIN tags t ON t.id = it.tag_id WHERE it.item_id IN (SELECT value FROM json_each(?)) ORDER BY t.name',
    )
    .all(JSON.stringify(itemIds)) as ItemTagRow[];
}

export function itemRow(db: Database, id: number): ItemRow | undefined {
  return db.prepare('SELECT * FROM items WHERE id = ?').get(id) as ItemRow | undefined;
}

export function itemSourceRow(
  db: Database,
  itemId: number,
): { import_id: number | null; record: string; image_original: string | null } | undefined {
  return db.prepare('SELECT import_id, record, image_original FROM item_sources WHERE item_id = ?').get(itemId) as
    { import_id: number | null; record: string; image_original: string | null } | undefined;
}

/** Every tag of a dataset with how many items carry it, by name. */
export function tagCountRows(db: Database, datasetId: number): { name: string; count: number }[] {
  return db
    .prepare(
      'SELECT t.name, COUNT(it.item_id) AS count FROM tags t LEFT JOIN item_tags it ON it.tag_id = t.id WHERE t.dataset_id = ? GROUP BY t.id ORDER BY t.name',
    )
    .all(datasetId) as { name: string; count: number }[];
}

/** Each item of a dataset with its split, by id. */
export function itemSplitRows(db: Database, datasetId: number): { id: number; split: ItemSplit | null }[] {
  return db.prepare('SELECT id, split FROM items WHERE dataset_id = ? ORDER BY id').all(datasetId) as {
    id: number;
    split: ItemSplit | null;
  }[];
}

/** The alphabetically first tag of each tagged item of a dataset. */
export function firstTagRows(db: Database, datasetId: number): { item_id: number; name: string }[] {
  return db
    .prepare(
      'SELECT it.item_id, MIN(t.name) AS name FROM item_tags it JOIN tags t ON t.id = it.tag_id WHERE t.dataset_id = ? GROUP BY it.item_id',
    )
    .all(datasetId) as { item_id: number; name: string }[];
}

/** Record a split that was applied; returns its id. */
export function insertSplitRecord(
  db: Database,
  r: {
    datasetId: number;
    seed: number;
    train: number;
    val: number;
    test: number;
    stratifyBy: string | null;
    createdAt: string;
  },
): number {
  return Number(
    db
      .prepare(
        'INSERT INTO splits (dataset_id, seed, train, val, test, stratify_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(r.datasetId, r.seed, r.train, r.val, r.test, r.stratifyBy, r.createdAt).lastInsertRowid,
  );
}

/** An annotation with the dataset of its item; undefined when no such annotation. */
export function annotationWithDataset(
  db: Database,
  annotationId: number,
): (AnnotationRow & { ds: number }) | undefined {
  return db
    .prepare('SELECT a.*, i.dataset_id AS ds FROM annotations a JOIN items i ON i.id = a.item_id WHERE a.id = ?')
    .get(annotationId) as (AnnotationRow & { ds: number }) | undefined;
}

export function tagIdByName(db: Database, datasetId: number, name: string): number | undefined {
  return (
    db.prepare('SELECT id FROM tags WHERE dataset_id = ? AND name = ?').get(datasetId, name) as
      { id: number } | undefined
  )?.id;
}

/** The position after the last item of a dataset (0 when it has none). */
export function nextItemPosition(db: Database, datasetId: number): number {
  return (
    (
      db.prepare('SELECT COALESCE(MAX(position), -1) AS p FROM items WHERE dataset_id = ?').get(datasetId) as {
        p: number;
      }
    ).p + 1
  );
}

/** An item's annotation ids and positions, in position order. */
export function annotationPositions(db: Database, itemId: number): { id: number; position: number }[] {
  return db.prepare('SELECT id, position FROM annotations WHERE item_id = ? ORDER BY position, id').all(itemId) as {
    id: number;
    position: number;
  }[];
}

/** An item's annotation rows; in position order when `ordered`, else in storage order. */
export function annotationRowsOfItem(db: Database, itemId: number, ordered = true): AnnotationRow[] {
  const sql = ordered
    ? 'SELECT * FROM annotations WHERE item_id = ? ORDER BY position, id'
    : 'SELECT * FROM annotations WHERE item_id = ?';
  return db.prepare(sql).all(itemId) as AnnotationRow[];
}

export function itemHasTag(db: Database, itemId: number, tagId: number): boolean {
  return !!db.prepare('SELECT 1 FROM item_tags WHERE item_id = ? AND tag_id = ?').get(itemId, tagId);
}

/** Whether any item still carries the tag. */
export function tagInUse(db: Database, tagId: number): boolean {
  return !!db.prepare('SELECT 1 FROM item_tags WHERE tag_id = ? LIMIT 1').get(tagId);
}

export const ID_TABLES = ['items', 'annotations', 'tags'] as const;
export type IdTable = (typeof ID_TABLES)[number];

/** The id `allocIds` would hand out next, without taking it (take it with `setHighWater`). */
export function nextId(db: Database, table: IdTable): number {
  const max = (db.prepare(`SELECT COALESCE(MAX(id), 0) AS m FROM ${table}`).get() as { m: number }).m;
  const hw =
    (db.prepare('SELECT max_id FROM id_high_water WHERE tbl = ?').get(table) as { max_id: number } | undefined)
      ?.max_id ?? 0;
  return Math.max(max, hw) + 1;
}

/** Records `maxId` as taken (ids up to it are never handed out again). */
export function setHighWater(db: Database, table: IdTable, maxId: number): void {
  db.prepare(
    'INSERT INTO id_high_water (tbl, max_id) VALUES (?, ?) ON CONFLICT(tbl) DO UPDATE SET max_id = MAX(max_id, excluded.max_id)',
  ).run(table, maxId);
}

/**
 * Reserve `n` consecutive ids in `table` and return the first. Ids are never reused, even after the rows
 * holding them were deleted (undo/redo re-inserts rows with their old ids).
 */
export function allocIds(db: Database, table: IdTable, n = 1): number {
  const max = (db.prepare(`SELECT COALESCE(MAX(id), 0) AS m FROM ${table}`).get() as { m: number }).m;
  const hw =
    (db.prepare('SELECT max_id FROM id_high_water WHERE tbl = ?').get(table) as { max_id: number } | undefined)
      ?.max_id ?? 0;
  const first = Math.max(max, hw) + 1;
  db.prepare(
    'INSERT INTO id_high_water (tbl, max_id) VALUES (?, ?) ON CONFLICT(tbl) DO UPDATE SET max_id = excluded.max_id',
  ).run(table, first + n - 1);
  return first;
}

/** The dataset with this name or id; created when `create` and it is a name that does not exist. */
export function findDataset(db: Database, ref: string | number): { id: number; name: string } | undefined {
  return (
    typeof ref === 'number'
      ? db.prepare('SELECT id, name FROM datasets WHERE id = ?').get(ref)
      : db.prepare('SELECT id, name FROM datasets WHERE name = ?').get(ref)
  ) as { id: number; name: string } | undefined;
}

export function createDataset(db: Database, name: string, description = ''): number {
  const now = nowIso();
  return Number(
    db
      .prepare('INSERT INTO datasets (name, description, created_at, updated_at) VALUES (?, ?, ?, ?)')
      .run(name, description, now, now).lastInsertRowid,
  );
}

export function touchDataset(db: Database, datasetId: number): void {
  db.prepare('UPDATE datasets SET updated_at = ? WHERE id = ?').run(nowIso(), datasetId);
}

/** Tag id for `name` in the dataset (created if missing). Returns [id, created]. */
export function ensureTag(db: Database, datasetId: number, name: string): [number, boolean] {
  const row = db.prepare('SELECT id FROM tags WHERE dataset_id = ? AND name = ?').get(datasetId, name) as
    { id: number } | undefined;
  if (row) return [row.id, false];
  const id = allocIds(db, 'tags');
  db.prepare('INSERT INTO tags (id, dataset_id, name, created_at) VALUES (?, ?, ?, ?)').run(
    id,
    datasetId,
    name,
    nowIso(),
  );
  return [id, true];
}

export function getItem(db: Database, id: number): ItemRow | undefined {
  return db.prepare('SELECT * FROM items WHERE id = ?').get(id) as ItemRow | undefined;
}

export function itemAnnotations(db: Database, itemId: number): AnnotationRow[] {
  return db.prepare('SELECT * FROM annotations WHERE item_id = ? ORDER BY position, id').all(itemId) as AnnotationRow[];
}

export function itemTagNames(db: Database, itemId: number): string[] {
  return (
    db
      .prepare('SELECT t.name FROM item_tags it JOIN tags t ON t.id = it.tag_id WHERE it.item_id = ? ORDER BY t.name')
      .all(itemId) as { name: string }[]
  ).map((r) => r.name);
}

/** Every item row of a dataset in position order. */
export function datasetItemRows(db: Database, datasetId: number): ItemRow[] {
  return db.prepare('SELECT * FROM items WHERE dataset_id = ? ORDER BY position, id').all(datasetId) as ItemRow[];
}

/** Every annotation row of a dataset, ordered by item, position, id. */
export function datasetAnnotationRows(db: Database, datasetId: number): AnnotationRow[] {
  return db
    .prepare(
      'SELECT a.* FROM annotations a JOIN items i ON i.id = a.item_id WHERE i.dataset_id = ? ORDER BY a.item_id, a.position, a.id',
    )
    .all(datasetId) as AnnotationRow[];
}

/** Every (item, tag name) pair of a dataset, ordered by name. */
export function datasetItemTagRows(db: Database, datasetId: number): ItemTagRow[] {
  return db
    .prepare(
      'SELECT it.item_id, t.name FROM item_tags it JOIN tags t ON t.id = it.tag_id WHERE t.dataset_id = ? ORDER BY t.name',
    )
    .all(datasetId) as ItemTagRow[];
}

/** Whether an item of the dataset has an image (a "more like this" query needs one). */
export function isImageItemOf(db: Database, itemId: number, datasetId: number): boolean {
  return (
    db
      .prepare('SELECT 1 FROM items WHERE id = ? AND dataset_id = ? AND image_hash IS NOT NULL')
      .get(itemId, datasetId) !== undefined
  );
}

/**
 * A string that changes with every write to the database: data_version moves when another connection commits,
 * total_changes() with each write of this one. Caches derived from rows key on it.
 */
export function databaseWriteStamp(db: Database): string {
  return `${db.pragma('data_version', { simple: true })}:${db.prepare('SELECT total_changes()').pluck().get()}`;
}

/** [id, image_hash, image_ext] of a dataset's items that have an image, in position order (raw rows: large datasets). */
export function imageItemTuples(db: Database, datasetId: number): Array<[number, string, string | null]> {
  return db
    .prepare(
      'SELECT id, image_hash, image_ext FROM items WHERE dataset_id = ? AND image_hash IS NOT NULL ORDER BY position, id',
    )
    .raw()
    .all(datasetId) as Array<[number, string, string | null]>;
}
