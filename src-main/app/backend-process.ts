// The Electron utilityProcess entry: hosts the backend (database + services) and answers the main
// process over process.parentPort. No electron import: utilityProcess provides parentPort on `process`.
import { createBackend } from '../services/backend';
import { serveOverPort, type ChildPortLike } from '../transport/ipc';
import { resolveDataDir } from '../storage/data-dir';
import type { ChatHostOptions } from '../services/chat';
import type { WorkHostOptions } from '../services/work';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { importWorkerOptions } from '../datasets/import-worker';
import { mediaWorkerOptions } from '../media/media-worker';

// Training jobs, the generation worker and the backend worker (run checks, evaluations, previews) are bundled beside
// this file (electron.vite.config.ts): point the services at those built entries (a job runs as Electron's binary in Node mode, see services/training-runtime.ts).
const here = import.meta.dirname;
const jobEntry = join(here, 'job.js');
if (!process.env.LENSLAB_JOB_ENTRY && existsSync(jobEntry)) process.env.LENSLAB_JOB_ENTRY = jobEntry;
const workerEntry = join(here, 'generate-worker.js');
const chat: ChatHostOptions = existsSync(workerEntry) ? { entry: workerEntry, execArgv: [] } : {};
const backendWorkerEntry = join(here, 'backend-worker.js');
// without its built entry the work runs in this thread (this bundle's own file is no worker entry)
const work: WorkHostOptions = existsSync(backendWorkerEntry)
  ? { entry: backendWorkerEntry, execArgv: [] }
  : { inProcess: true };
const importWorkerEntry = join(here, 'import-worker.js');
if (existsSync(importWorkerEntry)) importWorkerOptions.entry = importWorkerEntry;
else importWorkerOptions.inProcess = true;
const mediaWorkerEntry = join(here, 'media-worker.js');
if (existsSync(mediaWorkerEntry)) mediaWorkerOptions.entry = mediaWorkerEntry;
else mediaWorkerOptions.inProcess = true;

const parentPort = (process as unknown as { parentPort?: ChildPortLike }).parentPort;
if (!parentPort) {
  console.error('backend-process must be started by Electron as a utilityProcess');
  process.exit(1);
}

// LENSLAB_SQLITE_BINDING: better-sqlite3 compiled for Electron's ABI (set by main when present).
const backend = createBackend({
  dataDir: resolveDataDir(),
  host: 'electron',
  sqliteBinding: process.env.LENSLAB_SQLITE_BINDING || undefined,
  chat,
  work,
});
serveOverPort(backend, parentPort);

const shutdown = () => {
  backend.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
