// The backend: one database, the service registry, the dispatcher and the event bus, and the runtimes the services
// use (training jobs and evaluations, the backend worker, the chat generator). Every host (Electron utilityProcess,
// `lenslab serve`, the CLI, tests) creates one of these; it builds every runtime and disposes of all of them from
// one list, so a closed backend leaves no worker, job process, timer or open file behind.
import { mkdirSync } from 'node:fs';
import { openDatabase, closeDatabase, storageError, type Database } from '../storage/database';
import { databasePath, graphCacheDirOf } from '../storage/data-dir';
import { registry } from './registry';
import { HubRuntime } from './hub';
import { ImportRuntime } from './dataset-io';
import type { ServiceContext } from './context';
import { Dispatcher, EventBus, type Logger } from './dispatcher';
import { TrainingRuntime, jobRunnerOptionsFromEnv, type JobProcessOptions } from './training-runtime';
import { WorkRuntime, type WorkHostOptions } from './work';
import { ChatRuntime, type ChatHostOptions } from './chat';

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
  /** How training job processes start (default: jobRunnerOptionsFromEnv, i.e. LENSLAB_JOB_ENTRY or entry.ts). */
  jobs?: JobProcessOptions;
  /** The backend worker for run checks, previews and evaluations (Electron: its built entry). */
  work?: WorkHostOptions;
  /** The chat generation worker (Electron: its built entry), or in-process generation. */
  chat?: ChatHostOptions;
  /** Open the database read-only (nothing migrated or written; works where the data folder cannot be written). */
  readonly?: boolean;
}

export interface Backend {
  readonly db: Database;
  readonly dataDir: string;
  readonly dispatcher: Dispatcher;
  readonly events: EventBus;
  readonly ctx: ServiceContext;
  /** Pause running training jobs (each checkpoints), stop the workers and wait for all of it; call before close(). */
  shutdown(): Promise<void>;
  /** Let go of everything at once (jobs pause themselves, workers are terminated) and close the database. */
  close(): void;
}

/** One part the backend disposes of: gracefully (shutdown) or at once (close), in reverse order of creation. */
interface Part {
  shutdown(): Promise<void>;
  close(): void;
}

export function createBackend(options: BackendOptions): Backend {
  if (!options.readonly) {
    try {
      mkdirSync(options.dataDir, { recursive: true });
    } catch (err) {
      throw storageError('cannot create the data folder', options.dataDir, err);
    }
  }
  const db = openDatabase(options.dbFile ?? databasePath(options.dataDir), {
    nativeBinding: options.sqliteBinding,
    readonly: options.readonly,
  });
  const parts: Part[] = [{ shutdown: async () => {}, close: () => closeDatabase(db) }];
  try {
    const bus = new EventBus();
    const base = {
      db,
      dataDir: options.dataDir,
      host: options.host ?? 'test',
      emit: bus.emit.bind(bus) as ServiceContext['emit'],
    };
    const work = new WorkRuntime(options.work);
    parts.push({ shutdown: () => work.close(), close: () => work.terminate() });
    const chat = new ChatRuntime(graphCacheDirOf(options.dataDir), options.chat);
    parts.push({ shutdown: () => chat.close(), close: () => chat.terminate() });
    const training = new TrainingRuntime(base, options.jobs ?? jobRunnerOptionsFromEnv());
    parts.push({ shutdown: () => training.shutdown(), close: () => training.detach() });
    parts.push({ shutdown: async () => {}, close: () => bus.clear() });
    const hub = new HubRuntime();
    parts.push({ shutdown: () => hub.stop(), close: () => hub.abort() });
    // an import still running when the backend closes is cancelled (datasets/import.ts then stores none of it)
    const imports = new ImportRuntime();
    parts.push({ shutdown: async () => imports.abort(), close: () => imports.abort() });
    const ctx: ServiceContext = { ...base, training, work, chat, hub, imports };
    // runs left 'running' whose job process is gone become 'interrupted' (a live job is left alone)
    if ((options.recoverRuns ?? true) && !options.readonly) training.recover();
    const dispatcher = new Dispatcher(registry, ctx, options.log);
    let closed = false;
    return {
      db,
      dataDir: options.dataDir,
      dispatcher,
      events: bus,
      ctx,
      async shutdown() {
        if (!closed) await Promise.all(parts.map((p) => p.shutdown()));
      },
      close() {
        if (closed) return;
        closed = true;
        disposeAll(parts);
      },
    };
  } catch (e) {
    disposeAll(parts);
    throw e;
  }
}

function disposeAll(parts: Part[]): void {
  for (const p of parts.reverse()) {
    try {
      p.close();
    } catch (e) {
      console.error('[lenslab] closing the backend:', e);
    }
  }
}
