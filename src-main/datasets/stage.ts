// Records of JSON / JSONL / CSV files are kept on disk between reading them and inserting them, not in the
// heap: a million parsed records hold ~0.5 GB of small objects (1.6 GiB RSS), which the import's memory
// bound does not allow. Each record is written as it is parsed into a scratch SQLite file (its own
// connection, no journal), grouped into items there (records naming the same image or the same exported
// item, in the order the first record of each was read), and read back item by item, twice: once to store
// the images, once inside the import's transaction. Only the items being worked on are in memory.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import { assemble, groupKey, type RecordOut } from './formats/common';
import { removeTree } from './read';
import type { NormalizedItem } from './types';

export class RecordStage implements Iterable<NormalizedItem> {
  private readonly dir: string;
  private readonly db: Database;
  private readonly ins: BetterSqlite3.Statement;
  private seq = 0;
  private finished = false;
  /** Items (after grouping); set by `finish()`. */
  count = 0;
  /** Items with an image; set by `finish()`. */
  withImage = 0;
  /** Put before every record's ref (a zip's name). */
  refPrefix = '';

  constructor(
    parentDir: string,
    private readonly opts: { groupByImage?: boolean } = {},
  ) {
    this.dir = mkdtempSync(join(parentDir, '.lenslab-import-'));
    try {
      this.db = new BetterSqlite3(
        join(this.dir, 'records.db'),
        process.env.LENSLAB_SQLITE_BINDING ? { nativeBinding: process.env.LENSLAB_SQLITE_BINDING } : {},
      );
      // scratch: thrown away whatever happens, so neither a journal nor fsync is worth paying for
      this.db.pragma('journal_mode = OFF');
      this.db.pragma('synchronous = OFF');
      this.db.pragma('temp_store = FILE');
      this.db.pragma('cache_size = -16384');
      this.db.exec(
        'CREATE TABLE records (seq INTEGER PRIMARY KEY, file INTEGER NOT NULL, item INTEGER NOT NULL, grp TEXT, has_img INTEGER NOT NULL, rec TEXT NOT NULL)',
      );
      this.ins = this.db.prepare('INSERT INTO records (seq, file, item, grp, has_img, rec) VALUES (?, ?, ?, ?, ?, ?)');
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** Append parsed records of file number `file` (in the order read). */
  add(file: number, records: readonly RecordOut[]): void {
    if (records.length === 0) return;
    this.db.transaction(() => {
      for (const r of records) {
        const seq = ++this.seq;
        this.ins.run(seq, file, seq, groupKey(r, this.opts) ?? null, r.image ? 1 : 0, JSON.stringify(r));
      }
    })();
  }

  /** Leave out every record of file number `file`. */
  drop(file: number): void {
    this.db.prepare('DELETE FROM records WHERE file = ?').run(file);
  }

  /** Group the records into items (as `assemble` does) and count them. */
  finish(): void {
    this.db.exec(`
      CREATE TABLE groups AS SELECT grp, MIN(seq) AS item FROM records WHERE grp IS NOT NULL GROUP BY grp;
      CREATE UNIQUE INDEX groups_grp ON groups (grp);
      UPDATE records SET item = groups.item FROM groups WHERE groups.grp = records.grp;
      DROP TABLE groups;
      CREATE INDEX records_item ON records (item, seq);
    `);
    const r = this.db
      .prepare(
        'SELECT COUNT(*) AS n, COALESCE(SUM(img), 0) AS img FROM (SELECT MAX(has_img) AS img FROM records GROUP BY item)',
      )
      .get() as { n: number; img: number };
    this.count = r.n;
    this.withImage = r.img;
    this.finished = true;
  }

  /** The items in order, each built from its records as `assemble` builds it. */
  *[Symbol.iterator](): Iterator<NormalizedItem> {
    if (!this.finished) throw new Error('RecordStage: finish() first');
    const rows = this.db
      .prepare('SELECT item, rec FROM records ORDER BY item, seq')
      .raw()
      .iterate() as IterableIterator<[number, string]>;
    let cur = -1;
    let group: RecordOut[] = [];
    const build = () => assemble(group, this.opts)[0];
    for (const [item, rec] of rows) {
      if (item !== cur && group.length) {
        yield build();
        group = [];
      }
      cur = item;
      const r = JSON.parse(rec) as RecordOut;
      if (this.refPrefix) r.ref = this.refPrefix + r.ref;
      group.push(r);
    }
    if (group.length) yield build();
  }

  close(): void {
    try {
      if (this.db?.open) this.db.close();
    } finally {
      removeTree(this.dir);
    }
  }
}
