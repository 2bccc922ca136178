// 0003: runs can be archived (hidden from the Runs list by default, kept with their files and metrics).
import type { Migration } from './index';

const migration: Migration = {
  version: 3,
  name: 'runs-archived',
  up(db) {
    db.exec('ALTER TABLE runs ADD COLUMN archived_at TEXT');
  },
};

export default migration;
