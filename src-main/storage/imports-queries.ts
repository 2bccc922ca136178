// Typed queries for an import's write (datasets/import.ts): the import record, the bulk row writer (statements
// prepared once for the whole batch), and what the dataset already holds.
import type { Database } from './database';

export function insertImportRecord(
  db: Database,
  r: {
    datasetId: number;
    source: string;
    format: string;
    optionsJson: string;
    skippedCount: number;
    problemsJson: string;
    createdAt: string;
  },
): number {
  return Number(
    db
      .prepare(
        'INSERT INTO imports (dataset_id, source, format, options_json, item_count, skipped_count, problems_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(r.datasetId, r.source, r.format, r.optionsJson, 0, r.skippedCount, r.problemsJson, r.createdAt)
      .lastInsertRowid,
  );
}

export function setImportItemCount(db: Database, importId: number, n: number): void {
  db.prepare('UPDATE imports SET item_count = ? WHERE id = ?').run(n, importId);
}

export function setDatasetUpdatedAt(db: Database, datasetId: number, at: string): void {
  db.prepare('UPDATE datasets SET updated_at = ? WHERE id = ?').run(at, datasetId);
}

type Value = string | number | null;

/** Inserts for an import's items, annotations, provenance and tags, each statement prepared once. */
export function importRowWriter(db: Database): {
  /** id, dataset_id, image_hash, image_ext, width, height, bytes, source_path, split, position, created_at, updated_at, media_kind, media_hash, media_ext, media_json */
  item(...values: Value[]): void;
  /** id, item_id, kind, data_json, position, created_at, updated_at */
  annotation(...values: Value[]): void;
  /** item_id, import_id, record, image_original */
  source(...values: Value[]): void;
  /** item_id, tag_id (a pair already there is left alone) */
  tag(itemId: number, tagId: number): void;
} {
  const insItem = db.prepare(
    `INSERT INTO items (id, dataset_id, image_hash, image_ext, width, height, bytes, source_path, split, position, created_at, updated_at, media_kind, media_hash, media_ext, media_json)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insAnn = db.prepare(
    'INSERT INTO annotations (id, item_id, kind, data_json, position, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const insSrc = db.prepare(
    'INSERT INTO item_sources (item_id, import_id, record, image_original) VALUES (?, ?, ?, ?)',
  );
  const insTag = db.prepare('INSERT OR IGNORE INTO item_tags (item_id, tag_id) VALUES (?, ?)');
  return {
    item: (...v) => void insItem.run(...v),
    annotation: (...v) => void insAnn.run(...v),
    source: (...v) => void insSrc.run(...v),
    tag: (itemId, tagId) => void insTag.run(itemId, tagId),
  };
}

/** [item id, image or media hash, annotation kind, annotation data_json] of every item and annotation of a dataset, by item then position (streamed raw rows). */
export function presentItemTuples(
  db: Database,
  datasetId: number,
): IterableIterator<[number, string | null, string | null, string | null]> {
  return db
    .prepare(
      `SELECT i.id, COALESCE(i.image_hash, i.media_hash) AS hash, a.kind, a.data_json AS data FROM items i LEFT JOIN annotations a ON a.item_id = i.id
       WHERE i.dataset_id = ? ORDER BY i.id, a.position`,
    )
    .raw()
    .iterate(datasetId) as IterableIterator<[number, string | null, string | null, string | null]>;
}
