// The backend: one database, the service registry, the dispatcher and the event bus.
// Every host (Electron utilityProcess, `lenslab serve`, the CLI, tests) creates one of these.
import { mkdirSync } from 'node:fs';
import { openDatabase, closeDatabase, type Database } from '../storage/database';
import { databasePath } from '../storage/data-dir';
import { detachTraining, recoverTraining, shutdownTraining } from './training';
import { registry } from './registry';
import { closeWork, terminateWork } from './work';
import { abortPulls, stopPulls } from './hub';
import type { ServiceContext } from './context';
import { Dispatcher, EventBus, type Logger } from './dispatcher';

export interface BackendOptions {
  dataDir: string;
  /** Database file; defaults to <dataDir>/lenslab.db. ':memory:' for tests. */
  dbFile?: string;
  host?: string;
  log?: Logger;
  /** Mark runs left 'running' by a dead process as 'interrupted' (default true; the CLI passes false). */
  recoverRuns?: boolean;
  /** A better_sqlite3.node built for this runtime (Electron); see scripts/ensure-electron.mjs. */
  sqliteBinding?: string;
}

export interface Backend {
  readonly db: Database;
  readonly dataDir: string;
  readonly dispatcher: Dispatcher;
  readonly events: EventBus;
  readonly ctx: ServiceContext;
  /** Pause running training jobs (each checkpoints) and wait for them; call before close() when quitting. */
  shutdown(): Promise<void>;
  close(): void;
}

export function createBackend(options: BackendOptions): Backend {
  mkdirSync(options.dataDir, { recursive: true });
  const db = openDatabase(options.dbFile ?? databasePath(options.dataDir), { nativeBinding: options.sqliteBinding });
  const bus = new EventBus();
  const ctx: ServiceContext = {
    db,
    dataDir: options.dataDir,
    host: options.host ?? 'test',
    emit: (event, payload) => bus.emit(event, payload),
  };
  // runs left 'running' whose job process is gone become 'interrupted' (a live job is left alone)
  if (options.recoverRuns ?? true) recoverTraining(ctx);
  const dispatcher = new Dispatcher(registry, ctx, options.log);
  let closed = false;
  return {
    db,
    dataDir: options.dataDir,
    dispatcher,
    events: bus,
    ctx,
    async shutdown() {
      if (!closed) await Promise.all([shutdownTraining(ctx), closeWork(ctx), stopPulls(ctx)]);
    },
    close() {
      if (closed) return;
      closed = true;
      abortPulls(ctx);
      detachTraining(ctx);
      terminateWork(ctx);
      closeDatabase(db);
    },
  };
}
