// 0001: the initial schema. Every table is STRICT; times are ISO-8601 UTC TEXT;
// JSON columns are TEXT whose name ends in `_json`.
import type { Migration } from './index';

const migration: Migration = {
  version: 1,
  name: 'initial',
  up(db) {
    db.exec(`
-- Datasets: a named collection of items (images + annotations). This is the "project" a user works on.
CREATE TABLE datasets (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  description TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
) STRICT;

CREATE TABLE items (
  id INTEGER PRIMARY KEY,
  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  image_hash TEXT,            -- sha256 hex of the image file, NULL = no image
  image_ext TEXT,
  width INTEGER,
  height INTEGER,
  bytes INTEGER,
  source_path TEXT,           -- where it was imported from
  split TEXT CHECK (split IN ('train','val','test')),
  position INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
) STRICT;
CREATE INDEX items_dataset ON items(dataset_id, position);
CREATE INDEX items_hash ON items(image_hash);

CREATE TABLE annotations (
  id INTEGER PRIMARY KEY,
  item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('caption','qa','chat')),
  -- caption: {"text"}; qa: {"question","answer"};
  -- chat: {"messages":[{"role":"system|user|assistant","content":"..."}]} (user content may contain "<image>")
  data_json TEXT NOT NULL,
  position INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
) STRICT;
CREATE INDEX annotations_item ON annotations(item_id, position);

-- A record of split operations; items.split holds the current assignment.
CREATE TABLE splits (
  id INTEGER PRIMARY KEY,
  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  seed INTEGER NOT NULL,
  train REAL NOT NULL,
  val REAL NOT NULL,
  test REAL NOT NULL,
  stratify_by TEXT,
  created_at TEXT NOT NULL
) STRICT;
CREATE INDEX splits_dataset ON splits(dataset_id);

-- Models known to Lenslab: base checkpoints on disk (HF layout) and models produced by runs.
CREATE TABLE models (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL DEFAULT 'base' CHECK (kind IN ('base','adapter','merged')),
  family TEXT,                -- normalized model_type, e.g. 'llava-qwen2'
  path TEXT NOT NULL,         -- directory holding config.json / safetensors (absolute, or relative to the data dir)
  base_model_id INTEGER REFERENCES models(id) ON DELETE SET NULL,
  config_json TEXT NOT NULL DEFAULT '{}',
  params INTEGER,
  bytes INTEGER,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
) STRICT;

-- Training runs.
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  model_id INTEGER REFERENCES models(id) ON DELETE SET NULL,
  dataset_id INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
  config_json TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued','running','paused','completed','failed','cancelled','interrupted')),
  step INTEGER NOT NULL DEFAULT 0,
  total_steps INTEGER,
  error TEXT,
  created_at TEXT NOT NULL,
  started_at TEXT,
  finished_at TEXT,
  updated_at TEXT NOT NULL
) STRICT;
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_dataset ON runs(dataset_id);
CREATE INDEX runs_model ON runs(model_id);

-- Scalar time series per run. value NULL = not finite (NaN).
CREATE TABLE metrics (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step INTEGER NOT NULL,
  name TEXT NOT NULL,
  value REAL,
  recorded_at TEXT NOT NULL,
  PRIMARY KEY (run_id, name, step)
) STRICT;

CREATE TABLE checkpoints (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step INTEGER NOT NULL,
  kind TEXT NOT NULL DEFAULT 'adapter' CHECK (kind IN ('adapter','full','state')),
  path TEXT NOT NULL,         -- absolute, or relative to the data dir
  bytes INTEGER,
  metrics_json TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL,
  UNIQUE (run_id, step, kind)
) STRICT;

-- An evaluation of a model (optionally a run's checkpoint) on a dataset split.
CREATE TABLE evaluations (
  id INTEGER PRIMARY KEY,
  run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,
  checkpoint_id INTEGER REFERENCES checkpoints(id) ON DELETE SET NULL,
  model_id INTEGER REFERENCES models(id) ON DELETE SET NULL,
  dataset_id INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
  split TEXT CHECK (split IN ('train','val','test','all')),
  config_json TEXT NOT NULL DEFAULT '{}',
  status TEXT NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued','running','completed','failed','cancelled','interrupted')),
  metrics_json TEXT NOT NULL DEFAULT '{}',
  error TEXT,
  created_at TEXT NOT NULL,
  finished_at TEXT
) STRICT;
CREATE INDEX evaluations_run ON evaluations(run_id);
CREATE INDEX evaluations_checkpoint ON evaluations(checkpoint_id);
CREATE INDEX evaluations_model ON evaluations(model_id);
CREATE INDEX evaluations_dataset ON evaluations(dataset_id);

CREATE TABLE predictions (
  id INTEGER PRIMARY KEY,
  evaluation_id INTEGER NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE,
  item_id INTEGER REFERENCES items(id) ON DELETE SET NULL,
  prompt TEXT NOT NULL,
  output TEXT NOT NULL,
  reference TEXT,
  scores_json TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL
) STRICT;
CREATE INDEX predictions_evaluation ON predictions(evaluation_id);
CREATE INDEX predictions_item ON predictions(item_id);

-- Chat sessions with a model (optionally a run's checkpoint).
CREATE TABLE chats (
  id INTEGER PRIMARY KEY,
  title TEXT NOT NULL DEFAULT '',
  model_id INTEGER REFERENCES models(id) ON DELETE SET NULL,
  run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
  checkpoint_id INTEGER REFERENCES checkpoints(id) ON DELETE SET NULL,
  settings_json TEXT NOT NULL DEFAULT '{}',   -- sampling settings, system prompt
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
) STRICT;
CREATE INDEX chats_model ON chats(model_id);
CREATE INDEX chats_run ON chats(run_id);
CREATE INDEX chats_checkpoint ON chats(checkpoint_id);

CREATE TABLE messages (
  id INTEGER PRIMARY KEY,
  chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
  role TEXT NOT NULL CHECK (role IN ('system','user','assistant')),
  content TEXT NOT NULL,
  image_hash TEXT,            -- sha256 of an attached image (content-addressed store), NULL = none
  image_ext TEXT,
  position INTEGER NOT NULL,
  stats_json TEXT NOT NULL DEFAULT '{}',      -- e.g. tokens, tokens/s for assistant turns
  created_at TEXT NOT NULL
) STRICT;
CREATE INDEX messages_chat ON messages(chat_id, position);
`);
  },
};

export default migration;
