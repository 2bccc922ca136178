// 0002: the Datasets area's tables beyond 0001: tags, import provenance, undo/redo history,
// lint results, and id high-water marks (so ids freed by undo are never handed out again).
import type { Migration } from './index';

const migration: Migration = {
  version: 2,
  name: 'datasets-extra',
  up(db) {
    db.exec(`
CREATE TABLE tags (
  id INTEGER PRIMARY KEY,
  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  created_at TEXT NOT NULL,
  UNIQUE (dataset_id, name)
) STRICT;

CREATE TABLE item_tags (
  item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
  tag_id INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
  PRIMARY KEY (item_id, tag_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX item_tags_tag ON item_tags(tag_id);

-- One row per import: what was read, how, and what was skipped (problems_json: [{ref, field?, message, severity}]).
CREATE TABLE imports (
  id INTEGER PRIMARY KEY,
  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  source TEXT NOT NULL,           -- the path the user gave (file, folder or zip)
  format TEXT NOT NULL,
  options_json TEXT NOT NULL DEFAULT '{}',
  item_count INTEGER NOT NULL,
  skipped_count INTEGER NOT NULL,
  problems_json TEXT NOT NULL DEFAULT '[]',
  created_at TEXT NOT NULL
) STRICT;
CREATE INDEX imports_dataset ON imports(dataset_id);

-- Where each imported item came from.
CREATE TABLE item_sources (
  item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
  import_id INTEGER REFERENCES imports(id) ON DELETE SET NULL,
  record TEXT NOT NULL,           -- e.g. 'data.json[3]', 'metadata.jsonl:12', 'cats/1.jpg'
  image_original TEXT             -- the image path (or parquet cell) as the source named it
) STRICT;
CREATE INDEX item_sources_import ON item_sources(import_id);

-- Undo/redo: each labeling operation's row changes (changes_json: [{t, key, op, before?, after?}]).
-- history_cursor.seq is the last applied entry; entries with a higher seq can be redone.
CREATE TABLE history (
  id INTEGER PRIMARY KEY,
  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  label TEXT NOT NULL,
  changes_json TEXT NOT NULL,
  created_at TEXT NOT NULL,
  UNIQUE (dataset_id, seq)
) STRICT;
CREATE TABLE history_cursor (
  dataset_id INTEGER PRIMARY KEY REFERENCES datasets(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL
) STRICT;

-- The latest lint of each dataset, one row per finding.
CREATE TABLE lint_results (
  id INTEGER PRIMARY KEY,
  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  item_id INTEGER REFERENCES items(id) ON DELETE CASCADE,
  rule TEXT NOT NULL,
  severity TEXT NOT NULL CHECK (severity IN ('error','warning','info')),
  message TEXT NOT NULL,
  data_json TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL
) STRICT;
CREATE INDEX lint_results_dataset ON lint_results(dataset_id, rule);
CREATE INDEX lint_results_item ON lint_results(item_id);

CREATE TABLE id_high_water (
  tbl TEXT PRIMARY KEY,
  max_id INTEGER NOT NULL
) STRICT;
`);
  },
};

export default migration;
