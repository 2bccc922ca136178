// Imports run in a worker thread of their own, with limits: the files being imported are untrusted, and
// parsing, decoding and the one big insert transaction must neither block the backend's event loop nor take
// its memory. The worker opens its own connection to the same database file (WAL: the backend keeps reading
// while the import writes) and runs importDataset there; the host relays progress, cancels, and stops the
// worker when it breaks a limit:
//   - memory: the worker's V8 heap is capped (resourceLimits), so a hostile file fails alone;
//   - time: parsing (before the first image is stored) must finish within `parseTimeoutMs`, and after it the
//     worker must report progress (images stored, rows inserted) at least every `stallMs`;
//   - a stopped or crashed worker leaves nothing: its extraction folder is removed, and the image files it
//     reported writing are removed unless a row refers to them. Its transaction never committed.
// This file is also the worker's entry (built as import-worker.js, electron.vite.config.ts).
import { mkdirSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, SHARE_ENV, workerData, type Worker } from 'node:worker_threads';
import type { Database } from 'better-sqlite3';
import { closeDatabase, openDatabase } from '../storage/database';
import { startWorker } from '../util/worker-host';
import { removeUnreferenced } from './images';
import { importDataset, type ImportOptions, type ImportReport } from './import';
import { removeTree } from './read';
import { ImportError, type ImportProblem } from './types';

export const IMPORT_WORKER_ENTRY = fileURLToPath(import.meta.url);
const FLAG = 'lenslabImportWorker';

/**
 * Where the worker entry is (a bundle sets its built import-worker.js: inside a bundle this module's own URL is
 * the bundle's file), or `inProcess` to import in the calling thread.
 */
export const importWorkerOptions: { entry?: string; inProcess?: boolean } = {};

export interface ImportLimits {
  /** Heap of the import worker (MiB). */
  maxHeapMb: number;
  /** Parsing the source (reading, validating, resolving paths) must end within this long (ms). */
  parseTimeoutMs: number;
  /** After parsing, the worker must report progress at least this often (ms). */
  stallMs: number;
}

export const DEFAULT_IMPORT_LIMITS: ImportLimits = {
  maxHeapMb: 3072,
  parseTimeoutMs: 10 * 60_000,
  stallMs: 5 * 60_000,
};

export interface WorkerImportOptions extends Omit<ImportOptions, 'tempDir'> {
  limits?: Partial<ImportLimits>;
  /** Worker entry (a .ts entry runs through tsx). */
  entry?: string;
  /** Called when the worker has read the source (before images are stored). */
  onParsed?: (items: number) => void;
}

type ToWorker = { t: 'cancel' };
type FromWorker =
  | { t: 'parsed'; items: number }
  | { t: 'progress'; done: number; total: number }
  | { t: 'created'; files: string[] }
  | { t: 'alive' }
  | { t: 'done'; report: ImportReport }
  | { t: 'error'; message: string; file?: string; problems: ImportProblem[]; name: string };

interface WorkerInput {
  [FLAG]: true;
  dbFile: string;
  dataDir: string;
  source: string;
  options: Omit<ImportOptions, 'onProgress' | 'signal'>;
}

/** Whether imports can run in a worker here: a database on disk and the worker entry present. */
export function canImportInWorker(db: Database, entry = importWorkerOptions.entry ?? IMPORT_WORKER_ENTRY): boolean {
  return (
    !importWorkerOptions.inProcess &&
    db.name !== ':memory:' &&
    !db.memory &&
    existsSync(entry) &&
    process.env.LENSLAB_IMPORT_IN_PROCESS !== '1'
  );
}

/**
 * importDataset in a worker thread with limits (see the file comment). `db` is the caller's connection, used
 * only to remove files a stopped worker wrote; the worker writes through its own connection to `db.name`.
 */
export function importInWorker(
  db: Database,
  dataDir: string,
  source: string,
  options: WorkerImportOptions = {},
): Promise<ImportReport> {
  const L = { ...DEFAULT_IMPORT_LIMITS, ...options.limits };
  const label = basename(source);
  // a folder of its own for any extraction, removed whatever happens to the worker
  const tempDir = join(dataDir, `.lenslab-unzip-${randomBytes(6).toString('hex')}`);
  mkdirSync(tempDir, { recursive: true });
  const { onProgress, onParsed, signal, limits: _limits, entry, ...rest } = options;
  void _limits;
  const input: WorkerInput = { [FLAG]: true, dbFile: db.name, dataDir, source, options: { ...rest, tempDir } };
  const created: string[] = [];
  return new Promise<ImportReport>((resolve, reject) => {
    let w: Worker;
    try {
      w = startWorker(entry ?? importWorkerOptions.entry ?? IMPORT_WORKER_ENTRY, {
        workerData: input,
        env: SHARE_ENV,
        resourceLimits: { maxOldGenerationSizeMb: L.maxHeapMb },
      });
    } catch (err) {
      removeTree(tempDir);
      reject(err);
      return;
    }
    let settled = false;
    let stopReason: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    const arm = (ms: number, why: string) => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => stop(why), ms);
    };
    const stop = (why: string) => {
      if (stopReason) return;
      stopReason = why;
      void w.terminate();
    };
    const onAbort = () => {
      w.postMessage({ t: 'cancel' } satisfies ToWorker);
      // a worker busy in a synchronous loop cannot read the message: stop it after a grace period
      setTimeout(() => stop('cancelled'), 10_000).unref();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      try {
        removeTree(tempDir);
      } catch {
        // left for datasets.cleanImages, which removes stale extraction folders
      }
      fn();
    };
    arm(
      L.parseTimeoutMs,
      `reading the source took longer than ${Math.round(L.parseTimeoutMs / 1000)} s (limit parseTimeoutMs)`,
    );
    w.on('message', (m: FromWorker) => {
      switch (m.t) {
        case 'parsed':
          arm(L.stallMs, `no progress for ${Math.round(L.stallMs / 1000)} s (limit stallMs)`);
          onParsed?.(m.items);
          break;
        case 'progress':
          arm(L.stallMs, `no progress for ${Math.round(L.stallMs / 1000)} s (limit stallMs)`);
          onProgress?.(m.done, m.total);
          break;
        case 'alive':
          arm(L.stallMs, `no progress for ${Math.round(L.stallMs / 1000)} s (limit stallMs)`);
          break;
        case 'created':
          for (const f of m.files) created.push(f);
          break;
        case 'done':
          finish(() => resolve(m.report));
          break;
        case 'error':
          finish(() => reject(new ImportError(m.message, { file: m.file, problems: m.problems })));
          break;
      }
    });
    w.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY')
        stopReason ??= `it needed more than ${L.maxHeapMb} MiB of memory (limit maxHeapMb)`;
      else stopReason ??= `the import worker failed: ${err.message}`;
    });
    w.on('exit', () => {
      if (settled) return;
      try {
        removeUnreferenced(db, created);
      } catch {
        // the files stay for datasets.cleanImages (they are unreferenced)
      }
      const why = stopReason ?? 'the import worker exited';
      finish(() =>
        reject(
          new ImportError(
            why === 'cancelled'
              ? `${label}: import cancelled; nothing was stored`
              : `${label}: import stopped: ${why}; nothing was stored`,
            { file: label },
          ),
        ),
      );
    });
  });
}

// ---- the worker side ----
if (!isMainThread && (workerData as WorkerInput | undefined)?.[FLAG]) {
  const { dbFile, dataDir, source, options } = workerData as WorkerInput;
  const port = parentPort!;
  const post = (m: FromWorker) => port.postMessage(m);
  const abort = new AbortController();
  port.on('message', (m: ToWorker) => {
    if (m.t === 'cancel') abort.abort();
  });
  void (async () => {
    let db: Database | undefined;
    let lastProgress = 0;
    try {
      // the same better-sqlite3 build as the backend's (Electron's ABI where it runs under Electron)
      db = openDatabase(dbFile, { nativeBinding: process.env.LENSLAB_SQLITE_BINDING || undefined });
      const report = await importDataset(db, dataDir, source, {
        ...options,
        signal: abort.signal,
        onParsed: (n) => post({ t: 'parsed', items: n }),
        onCreated: (files) => post({ t: 'created', files }),
        onInserting: () => {
          const now = Date.now();
          if (now - lastProgress >= 1000) {
            lastProgress = now;
            post({ t: 'alive' });
          }
        },
        onProgress: (done, total) => {
          const now = Date.now();
          if (done === total || now - lastProgress >= 100) {
            lastProgress = now;
            post({ t: 'progress', done, total });
          }
        },
      });
      post({ t: 'done', report });
    } catch (err) {
      const e = err as Error & { file?: string; problems?: ImportProblem[] };
      const message =
        err instanceof ImportError ? e.message : `${basename(source)}: import failed: ${e?.message ?? String(err)}`;
      post({
        t: 'error',
        message,
        file: e?.file,
        problems: (e?.problems ?? []).slice(0, 10_000),
        name: e?.name ?? 'Error',
      });
    } finally {
      if (db) closeDatabase(db);
      port.close();
    }
  })();
}
