// Row types and small queries of the datasets area (items, annotations, tags, provenance).
import type { Database } from 'better-sqlite3';
import { nowIso } from '../storage/database';
import type { Annotation, Split } from './types';

export type { ItemRow, AnnotationRow, TagRow, ItemTagRow } from '../storage/items-queries';
import type { ItemRow, AnnotationRow, ItemTagRow } from '../storage/items-queries';

export const ID_TABLES = ['items', 'annotations', 'tags'] as const;
export type IdTable = (typeof ID_TABLES)[number];

/** The id `allocIds` would hand out next, without taking it (take it with `setHighWater`). */
export function nextId(db: Database, table: IdTable): number {
  const max = (db.prepare(`SELECT COALESCE(MAX(id), 0) AS m FROM ${table}`).get() as { m: number }).m;
  const hw = (db.prepare('SELECT max_id FROM id_high_water WHERE tbl = ?').get(table) as { max_id: number } | undefined)?.max_id ?? 0;
  return Math.max(max, hw) + 1;
}

/** Records `maxId` as taken (ids up to it are never handed out again). */
export function setHighWater(db: Database, table: IdTable, maxId: number): void {
  db.prepare('INSERT INTO id_high_water (tbl, max_id) VALUES (?, ?) ON CONFLICT(tbl) DO UPDATE SET max_id = MAX(max_id, excluded.max_id)').run(table, maxId);
}

/**
 * Reserve `n` consecutive ids in `table` and return the first. Ids are never reused, even after the rows
 * holding them were deleted (undo/redo re-inserts rows with their old ids).
 */
export function allocIds(db: Database, table: IdTable, n = 1): number {
  const max = (db.prepare(`SELECT COALESCE(MAX(id), 0) AS m FROM ${table}`).get() as { m: number }).m;
  const hw = (db.prepare('SELECT max_id FROM id_high_water WHERE tbl = ?').get(table) as { max_id: number } | undefined)?.max_id ?? 0;
  const first = Math.max(max, hw) + 1;
  db.prepare('INSERT INTO id_high_water (tbl, max_id) VALUES (?, ?) ON CONFLICT(tbl) DO UPDATE SET max_id = excluded.max_id').run(table, first + n - 1);
  return first;
}

/** The dataset with this name or id; created when `create` and it is a name that does not exist. */
export function findDataset(db: Database, ref: string | number): { id: number; name: string } | undefined {
  return (typeof ref === 'number'
    ? db.prepare('SELECT id, name FROM datasets WHERE id = ?').get(ref)
    : db.prepare('SELECT id, name FROM datasets WHERE name = ?').get(ref)) as { id: number; name: string } | undefined;
}

export function createDataset(db: Database, name: string, description = ''): number {
  const now = nowIso();
  return Number(db.prepare('INSERT INTO datasets (name, description, created_at, updated_at) VALUES (?, ?, ?, ?)').run(name, description, now, now).lastInsertRowid);
}

export function touchDataset(db: Database, datasetId: number): void {
  db.prepare('UPDATE datasets SET updated_at = ? WHERE id = ?').run(nowIso(), datasetId);
}

/** Tag id for `name` in the dataset (created if missing). Returns [id, created]. */
export function ensureTag(db: Database, datasetId: number, name: string): [number, boolean] {
  const row = db.prepare('SELECT id FROM tags WHERE dataset_id = ? AND name = ?').get(datasetId, name) as { id: number } | undefined;
  if (row) return [row.id, false];
  const id = allocIds(db, 'tags');
  db.prepare('INSERT INTO tags (id, dataset_id, name, created_at) VALUES (?, ?, ?, ?)').run(id, datasetId, name, nowIso());
  return [id, true];
}

export function getItem(db: Database, id: number): ItemRow | undefined {
  return db.prepare('SELECT * FROM items WHERE id = ?').get(id) as ItemRow | undefined;
}

export function itemAnnotations(db: Database, itemId: number): AnnotationRow[] {
  return db.prepare('SELECT * FROM annotations WHERE item_id = ? ORDER BY position, id').all(itemId) as AnnotationRow[];
}

export function itemTagNames(db: Database, itemId: number): string[] {
  return (db.prepare('SELECT t.name FROM item_tags it JOIN tags t ON t.id = it.tag_id WHERE it.item_id = ? ORDER BY t.name').all(itemId) as { name: string }[]).map((r) => r.name);
}

export function toAnnotation(r: AnnotationRow): Annotation {
  return { kind: r.kind, data: JSON.parse(r.data_json) } as Annotation;
}

/** A dataset's items with their annotations and tags, in position order. */
export interface FullItem {
  id: number;
  image: { hash: string; ext: string; width: number | null; height: number | null; bytes: number | null } | null;
  /** An audio clip or a video (media store, datasets/media-store.ts); such an item has no image. */
  media?: ItemMedia | null;
  sourcePath: string | null;
  split: Split | null;
  position: number;
  annotations: (Annotation & { id: number })[];
  tags: string[];
}

export interface ItemMedia {
  kind: 'audio' | 'video';
  hash: string;
  ext: string;
  bytes: number | null;
  /** seconds, sampleRate, channels (audio); width, height, frames, fps (video) */
  meta: Record<string, number | string>;
}

function mediaOf(r: ItemRow): ItemMedia | null {
  if (!r.media_kind || !r.media_hash) return null;
  return { kind: r.media_kind, hash: r.media_hash, ext: r.media_ext ?? 'bin', bytes: r.bytes, meta: r.media_json ? (JSON.parse(r.media_json) as ItemMedia['meta']) : {} };
}

export function loadItems(db: Database, datasetId: number, opts: { ids?: number[]; split?: Split } = {}): FullItem[] {
  let rows = db.prepare('SELECT * FROM items WHERE dataset_id = ? ORDER BY position, id').all(datasetId) as ItemRow[];
  if (opts.ids) {
    const want = new Set(opts.ids);
    rows = rows.filter((r) => want.has(r.id));
  }
  if (opts.split) rows = rows.filter((r) => r.split === opts.split);
  const anns = db
    .prepare('SELECT a.* FROM annotations a JOIN items i ON i.id = a.item_id WHERE i.dataset_id = ? ORDER BY a.item_id, a.position, a.id')
    .all(datasetId) as AnnotationRow[];
  const tags = db
    .prepare('SELECT it.item_id, t.name FROM item_tags it JOIN tags t ON t.id = it.tag_id WHERE t.dataset_id = ? ORDER BY t.name')
    .all(datasetId) as ItemTagRow[];
  return assembleItems(rows, anns, tags);
}

/**
 * Item rows + their annotation rows (ordered by item, position, id) + tag rows (ordered by name) → items.
 * Annotations and tags of items not in `rows` are ignored.
 */
export function assembleItems(rows: ItemRow[], anns: AnnotationRow[], tags: ItemTagRow[]): FullItem[] {
  const annsBy = new Map<number, AnnotationRow[]>();
  for (const a of anns) {
    let l = annsBy.get(a.item_id);
    if (!l) annsBy.set(a.item_id, (l = []));
    l.push(a);
  }
  const tagsBy = new Map<number, string[]>();
  for (const t of tags) {
    let l = tagsBy.get(t.item_id);
    if (!l) tagsBy.set(t.item_id, (l = []));
    l.push(t.name);
  }
  return rows.map((r) => ({
    id: r.id,
    image: r.image_hash ? { hash: r.image_hash, ext: r.image_ext ?? 'bin', width: r.width, height: r.height, bytes: r.bytes } : null,
    media: mediaOf(r),
    sourcePath: r.source_path,
    split: r.split,
    position: r.position,
    annotations: (annsBy.get(r.id) ?? []).map((a) => ({ ...toAnnotation(a), id: a.id })),
    tags: tagsBy.get(r.id) ?? [],
  }));
}
