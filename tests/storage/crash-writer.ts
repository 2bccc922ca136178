// Child process for crash.test.ts: commits one row per transaction forever and reports each
// committed id on stdout, until it is killed.
import { openDatabase } from '../../src-main/storage/database';
import { insertDataset } from '../../src-main/storage/datasets-queries';

const db = openDatabase(process.argv[2]);
let i = 0;
const payload = 'x'.repeat(2000);
for (;;) {
  const row = db.transaction(() => {
    const d = insertDataset(db, { name: `crash-${process.pid}-${i}`, description: payload });
    const now = new Date().toISOString();
    db.prepare('INSERT INTO items (dataset_id, bytes, created_at, updated_at) VALUES (?, ?, ?, ?)').run(
      d.id,
      i,
      now,
      now,
    );
    return d;
  })();
  process.stdout.write(`${row.id}\n`);
  i++;
}
