// The backend's worker thread for heavy handler work (training/backend-worker.ts): the run check of runs.estimate /
// runs.start and the tokenized preview share one per backend (started on first use, stopped when idle or when
// the backend closes); each evaluation gets a worker of its own (its model's memory is freed when it ends).
// Where the worker entry is not on disk or LENSLAB_WORK_IN_PROCESS=1, the work runs in this thread instead.
import type { ServiceContext } from './context';
import type { Database } from '../storage/database';
import { WorkLocal, WorkThread, type WorkHost } from '../training/backend-worker';

/** Options for tests / hosts: where the worker entry lives (Electron: the built backend-worker.js), or no worker. */
export const workHostOptions: { inProcess?: boolean; entry?: string; execArgv?: string[] } = {};

const hosts = new WeakMap<Database, WorkHost>();

/** A new host: a worker thread, or this thread where no worker can be started. */
export function newWorkHost(): WorkHost {
  const inProcess = workHostOptions.inProcess ?? (process.env.LENSLAB_WORK_IN_PROCESS === '1' || !WorkThread.available(workHostOptions.entry));
  return inProcess ? new WorkLocal() : new WorkThread({ entry: workHostOptions.entry, execArgv: workHostOptions.execArgv });
}

/** The backend's shared host (checks, previews). */
export function workHost(ctx: ServiceContext): WorkHost {
  let h = hosts.get(ctx.db);
  if (!h) {
    h = newWorkHost();
    hosts.set(ctx.db, h);
  }
  return h;
}

/** Stop the backend's shared worker (waits for it). */
export async function closeWork(ctx: ServiceContext): Promise<void> {
  const h = hosts.get(ctx.db);
  hosts.delete(ctx.db);
  await h?.close();
}

/** Stop the backend's shared worker at once (the backend is closing). */
export function terminateWork(ctx: ServiceContext): void {
  const h = hosts.get(ctx.db);
  hosts.delete(ctx.db);
  if (h instanceof WorkThread) h.terminate();
}
