// The ordered list of schema migrations. A new area adds its own numbered file
// (e.g. 0002-datasets-extra.ts) and one line below.
import type { Database } from 'better-sqlite3';
import m0001 from './0001-initial';
import m0002 from './0002-datasets-extra';
import m0003 from './0003-runs-archived';
import m0004 from './0004-media-items';
import m0005 from './0005-message-audio';

export interface Migration {
  version: number;
  name: string;
  up(db: Database): void;
}

export const migrations: Migration[] = [m0001, m0002, m0003, m0004, m0005];
