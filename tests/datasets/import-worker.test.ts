// The import worker (datasets/import-worker.ts): imports run off the calling thread with a heap limit, a time
// limit for reading the source and a stall limit after it; cancelling or breaking a limit stores nothing and
// leaves no extraction folder or image file behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { openDatabase, closeDatabase, type Database } from '../../src-main/storage/database';
import { importInWorker, canImportInWorker } from '../../src-main/datasets/import-worker';
import { ImportError } from '../../src-main/datasets/types';
import { png, write, zipOf } from './fixtures';

let tmp: ReturnType<typeof tempDir>;
let db: Database;
let dataDir: string;

before(() => {
  tmp = tempDir('ds-worker-');
  dataDir = join(tmp.dir, 'data');
  db = openDatabase(join(dataDir, 'lenslab.db'));
});
after(() => {
  closeDatabase(db);
  tmp.cleanup();
});

const count = (t: string) => (db.prepare(`SELECT COUNT(*) AS n FROM ${t}`).get() as { n: number }).n;
const storeFiles = () =>
  ['images', 'thumbs'].flatMap((top) => {
    try {
      return readdirSync(join(dataDir, top), { recursive: true })
        .map(String)
        .filter((f) => /\.[a-z]+$/.test(f));
    } catch {
      return [];
    }
  });
const leftovers = () => readdirSync(dataDir).filter((f) => f.startsWith('.lenslab-unzip-'));

async function dataset(name: string, n: number): Promise<string> {
  const dir = join(tmp.dir, name);
  for (let i = 0; i < n; i++) write(dir, `img${i}.png`, await png(1000 + i + name.length * 100));
  write(
    dir,
    'data.jsonl',
    Array.from({ length: n }, (_, i) =>
      JSON.stringify({ image: `img${i}.png`, question: `q${i}`, answer: `a${i}` }),
    ).join('\n'),
  );
  return dir;
}

test('an import in the worker stores the same as in this thread and relays progress', async () => {
  assert.ok(canImportInWorker(db), 'a file database can import in a worker');
  const src = await dataset('ok', 5);
  const progress: number[] = [];
  let parsed = -1;
  const rep = await importInWorker(db, dataDir, src, {
    dataset: 'ok',
    onProgress: (d) => progress.push(d),
    onParsed: (n) => (parsed = n),
  });
  assert.equal(rep.imported, 5);
  assert.equal(parsed, 5);
  assert.equal(progress.at(-1), 5);
  assert.equal(count('items'), 5, 'the rows the worker committed are visible here');
  const zip = join(tmp.dir, 'ok.zip');
  writeFileSync(zip, zipOf({ 'a.png': await png(7), 'a.txt': 'caption' }));
  const z = await importInWorker(db, dataDir, zip, { dataset: 'zipped' });
  assert.equal(z.imported, 1);
  assert.deepEqual(leftovers(), [], 'the extraction folder is removed');
});

test('a clear ImportError from the worker keeps its message and problems', async () => {
  const dir = join(tmp.dir, 'bad');
  write(dir, 'data.json', '[{"image": "nope.png", "conversations": [');
  await assert.rejects(
    importInWorker(db, dataDir, dir, {}),
    (e: unknown) => e instanceof ImportError && /data\.json: invalid JSON/.test(e.message),
  );
});

test('breaking the time limit for reading the source stops the worker and stores nothing', async () => {
  const src = await dataset('slow', 3);
  const before = [count('items'), storeFiles().length];
  await assert.rejects(importInWorker(db, dataDir, src, { limits: { parseTimeoutMs: 1 } }), (e: unknown) => {
    assert.ok(e instanceof ImportError);
    assert.match(
      e.message,
      /^slow: import stopped: reading the source took longer than 0 s \(limit parseTimeoutMs\); nothing was stored$/,
    );
    return true;
  });
  assert.deepEqual([count('items'), storeFiles().length], before);
  assert.deepEqual(leftovers(), []);
});

test('breaking the heap limit stops the worker with an error naming the limit', async () => {
  const src = await dataset('big', 2);
  await assert.rejects(importInWorker(db, dataDir, src, { limits: { maxHeapMb: 8 } }), (e: unknown) => {
    assert.ok(e instanceof ImportError);
    assert.match(e.message, /^big: import stopped: .*(more than 8 MiB of memory \(limit maxHeapMb\)|worker)/);
    return true;
  });
  assert.deepEqual(leftovers(), []);
});

test('cancelling after the source is read stores nothing and removes the images written so far', async () => {
  const src = await dataset('cancel', 200);
  const before = [count('items'), count('imports'), storeFiles().length];
  const ac = new AbortController();
  await assert.rejects(
    importInWorker(db, dataDir, src, { signal: ac.signal, concurrency: 1, onParsed: () => ac.abort() }),
    (e: unknown) => e instanceof ImportError && /^cancel: import cancelled; nothing was stored$/.test(e.message),
  );
  assert.deepEqual([count('items'), count('imports'), storeFiles().length], before);
  assert.deepEqual(leftovers(), []);
});

test('a store write that fails (disk full, not writable) names the file, stops the pool and leaves no file behind', async () => {
  const { importDataset } = await import('../../src-main/datasets/import');
  const src = await dataset('full', 30);
  // a second data folder whose images/ is a file: every image write fails after its thumbnail was written
  const dd = join(tmp.dir, 'full-data');
  const db2 = openDatabase(join(dd, 'lenslab.db'));
  writeFileSync(join(dd, 'images'), 'not a folder');
  let progress = 0;
  await assert.rejects(importDataset(db2, dd, src, { onProgress: () => progress++ }), (e: unknown) => {
    assert.ok(e instanceof ImportError);
    assert.match(
      e.message,
      /^full: import failed: cannot write .*images\/[0-9a-f]{2}\/[0-9a-f]{64}\.png: (ENOTDIR|EEXIST)/,
    );
    return true;
  });
  assert.ok(progress < 30, `the pool stopped (${progress} images done)`);
  const thumbs = (() => {
    try {
      return readdirSync(join(dd, 'thumbs'), { recursive: true })
        .map(String)
        .filter((f) => f.endsWith('.webp'));
    } catch {
      return [];
    }
  })();
  assert.deepEqual(thumbs, [], 'the thumbnails written before the failure are removed');
  assert.equal((db2.prepare('SELECT COUNT(*) AS n FROM items').get() as { n: number }).n, 0);
  closeDatabase(db2);
});

test('datasets.cancelImport cancels a running import through the API; nothing of it is stored', async () => {
  const { createBackend } = await import('../../src-main/services/backend');
  const be = createBackend({ dataDir: join(tmp.dir, 'api-data') });
  try {
    const src = await dataset('apicancel', 300);
    const call = (m: string, p?: unknown) => be.dispatcher.call(m as never, p as never) as Promise<any>;
    assert.deepEqual(await call('datasets.cancelImport', { path: src }), { cancelled: false }, 'nothing runs yet');
    let asked: Promise<unknown> | undefined;
    const off = be.events.subscribe((e) => {
      if (e === 'datasets.importProgress' && !asked) asked = call('datasets.cancelImport', { path: src });
    });
    await assert.rejects(call('datasets.import', { path: src, dataset: 'apicancel' }), (e: Error) =>
      /^apicancel: import cancelled; nothing was stored$/.test(e.message),
    );
    off();
    assert.deepEqual(await asked, { cancelled: true });
    assert.deepEqual(
      (await call('datasets.list')).datasets.map((d: { name: string }) => d.name),
      [],
      'no dataset, no items',
    );
  } finally {
    be.close();
  }
});

test('a full database (SQLITE_FULL) fails the import naming the database file; its images are removed', async () => {
  const { importDataset } = await import('../../src-main/datasets/import');
  const src = await dataset('dbfull', 20);
  // long answers: the rows need pages the database may not grow to
  write(
    src,
    'data.jsonl',
    Array.from({ length: 20 }, (_, i) =>
      JSON.stringify({ image: `img${i}.png`, question: `q${i}`, answer: `a${i} `.repeat(2000) }),
    ).join('\n'),
  );
  const dd = join(tmp.dir, 'dbfull-data');
  const db2 = openDatabase(join(dd, 'lenslab.db'));
  const pages = db2.pragma('page_count', { simple: true }) as number;
  db2.pragma(`max_page_count = ${pages}`); // room for almost nothing: the insert runs out of pages
  await assert.rejects(importDataset(db2, dd, src, {}), (e: unknown) => {
    assert.ok(e instanceof ImportError);
    assert.match(
      e.message,
      /^dbfull: import failed: cannot write the database .*dbfull-data\/lenslab\.db: database or disk is full; nothing was stored$/,
    );
    return true;
  });
  const left = ['images', 'thumbs'].flatMap((top) => {
    try {
      return readdirSync(join(dd, top), { recursive: true })
        .map(String)
        .filter((f) => /\.[a-z]+$/.test(f));
    } catch {
      return [];
    }
  });
  assert.deepEqual(left, []);
  closeDatabase(db2);
});
