// Items as the datasets area uses them (rows assembled with their annotations, tags and media); the row types
// and queries are storage/items-queries.ts, re-exported here for the datasets code.
import type { Database } from 'better-sqlite3';
import type { Annotation, Split } from './types';

export type { ItemRow, AnnotationRow, TagRow, ItemTagRow } from '../storage/items-queries';
import {
  datasetAnnotationRows,
  datasetItemRows,
  datasetItemTagRows,
  type ItemRow,
  type AnnotationRow,
  type ItemTagRow,
} from '../storage/items-queries';

export {
  ID_TABLES,
  type IdTable,
  nextId,
  setHighWater,
  allocIds,
  findDataset,
  createDataset,
  touchDataset,
  ensureTag,
  getItem,
  itemAnnotations,
  itemTagNames,
} from '../storage/items-queries';

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
  return {
    kind: r.media_kind,
    hash: r.media_hash,
    ext: r.media_ext ?? 'bin',
    bytes: r.bytes,
    meta: r.media_json ? (JSON.parse(r.media_json) as ItemMedia['meta']) : {},
  };
}

export function loadItems(db: Database, datasetId: number, opts: { ids?: number[]; split?: Split } = {}): FullItem[] {
  let rows = datasetItemRows(db, datasetId);
  if (opts.ids) {
    const want = new Set(opts.ids);
    rows = rows.filter((r) => want.has(r.id));
  }
  if (opts.split) rows = rows.filter((r) => r.split === opts.split);
  const anns = datasetAnnotationRows(db, datasetId);
  const tags = datasetItemTagRows(db, datasetId);
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
    image: r.image_hash
      ? { hash: r.image_hash, ext: r.image_ext ?? 'bin', width: r.width, height: r.height, bytes: r.bytes }
      : null,
    media: mediaOf(r),
    sourcePath: r.source_path,
    split: r.split,
    position: r.position,
    annotations: (annsBy.get(r.id) ?? []).map((a) => ({ ...toAnnotation(a), id: a.id })),
    tags: tagsBy.get(r.id) ?? [],
  }));
}
