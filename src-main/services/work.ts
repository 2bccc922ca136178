// The backend's worker thread for heavy handler work (work-worker.ts): the run check of runs.estimate /
// runs.start and the tokenized preview share one per backend (started on first use, stopped when idle or when
// the backend closes); each evaluation gets a worker of its own (its model's memory is freed when it ends).
// Where the worker entry is not on disk or LENSLAB_WORK_IN_PROCESS=1, the work runs in this thread instead.
import { WorkLocal, WorkThread, type WorkHost } from './work-worker';

/** Where the worker entry lives (Electron: the built backend-worker.js), or no worker at all (inProcess). */
export interface WorkHostOptions {
  inProcess?: boolean;
  entry?: string;
  execArgv?: string[];
}

export class WorkRuntime {
  private sharedHost: WorkHost | null = null;
  /** Every host not yet released: the shared one and each running evaluation's (terminate() stops them all). */
  private readonly own = new Set<WorkHost>();

  constructor(private readonly options: WorkHostOptions = {}) {}

  /** A new host: a worker thread, or this thread where no worker can be started. release() it when done. */
  newHost(): WorkHost {
    const o = this.options;
    const inProcess = o.inProcess ?? (process.env.LENSLAB_WORK_IN_PROCESS === '1' || !WorkThread.available(o.entry));
    const host = inProcess ? new WorkLocal() : new WorkThread({ entry: o.entry, execArgv: o.execArgv });
    this.own.add(host);
    return host;
  }

  /** Stop a host from newHost() and wait for it. */
  async release(host: WorkHost): Promise<void> {
    this.own.delete(host);
    await host.close();
  }

  /** The backend's shared host (checks, previews). */
  shared(): WorkHost {
    this.sharedHost ??= this.newHost();
    return this.sharedHost;
  }

  /** Stop the shared worker and wait for it; the next use starts a new one. */
  async close(): Promise<void> {
    const h = this.sharedHost;
    this.sharedHost = null;
    if (h) await this.release(h);
  }

  /** Stop every worker at once (the backend is closing). */
  terminate(): void {
    this.sharedHost = null;
    for (const h of this.own) if (h instanceof WorkThread) h.terminate();
    this.own.clear();
  }
}
