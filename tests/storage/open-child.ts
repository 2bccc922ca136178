// Child process for database.test.ts: loads, prints "ready", and on "go" on stdin (sent to every child at once),
// after its own delay (so the children arrive spread over the first one's migrations), opens the database (creating
// and migrating it), adds one row, and prints "ok" or the error. Mode "slow": two test migrations, the first taking
// 300 ms, instead of the project's (a wide window for another process to arrive mid-migration).
import { openDatabase, closeDatabase } from '../../src-main/storage/database';
import { insertDataset } from '../../src-main/storage/datasets-queries';
import type { Migration } from '../../src-main/storage/migrations/index';

const [file, delayMs, mode] = process.argv.slice(2);
const spin = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};
const slow: Migration[] = [
  { version: 1, name: 'slow', up: (db) => (db.exec('CREATE TABLE a (id INTEGER PRIMARY KEY) STRICT'), spin(300)) },
  { version: 2, name: 'next', up: (db) => db.exec('CREATE TABLE b (id INTEGER PRIMARY KEY) STRICT') },
];
process.stdout.write('ready\n');
process.stdin.once('data', () => {
  spin(Number(delayMs ?? 0));
  try {
    const db = openDatabase(file, mode === 'slow' ? { migrations: slow } : {});
    if (mode === 'slow') db.prepare('INSERT INTO a DEFAULT VALUES').run();
    else insertDataset(db, { name: `child-${process.pid}` });
    closeDatabase(db);
    process.stdout.write('ok\n');
  } catch (e) {
    process.stdout.write(`${(e as Error).message}\n`);
    process.exitCode = 1;
  }
  process.stdin.destroy();
});
