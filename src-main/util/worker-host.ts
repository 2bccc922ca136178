// The host side of a long-lived worker_thread that answers requests (GeneratorWorker, WorkThread): the worker is
// started on first use (a .ts entry through tsx's loader, a built .js entry directly), requests wait in a map keyed
// by id, an aborted request's signal posts { t: 'cancel', rid }, the worker is stopped after some idle time, and
// close() posts { t: 'close' } and waits for its exit (terminated after 10 s). The worker does not keep the process
// alive while nothing is pending. Subclasses own their message types and ops; the protocol they share:
//   to the worker:   their own requests carrying `rid`, { t: 'cancel'; rid }, { t: 'close' }
//   from the worker: { t: 'done'; rid; result }, { t: 'error'; rid; ... }, other events carrying `rid`, { t: 'closed' }
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** A thrown error's class name (custom Error subclasses keep name 'Error'), so the other thread can map it. */
export function errorName(e: unknown): string {
  if (!(e instanceof Error)) return 'Error';
  return e.name !== 'Error' ? e.name : (e.constructor?.name ?? 'Error');
}

/** Start a worker from `file`: a TypeScript entry (running from source) through tsx's loader, registered inside the worker. */
export function startWorker(file: string, options: WorkerOptions): Worker {
  return file.endsWith('.ts')
    ? new Worker(
        `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(pathToFileURL(file).href)}); });`,
        { ...options, eval: true },
      )
    : new Worker(file, options);
}

export interface WorkerHostConfig {
  /** Worker entry (.ts through tsx, .js directly). */
  entry: string;
  /** The Worker's options (workerData, execArgv, env). */
  worker: WorkerOptions;
  /** Stop the worker after this long without requests. */
  idleMs: number;
  /** Names the worker in errors ('the <label> exited', 'the <label> is closed'). */
  label: string;
}

export interface HostHooks {
  signal?: AbortSignal;
}

/** What the worker sends; `rid` is absent only on { t: 'closed' }. */
export interface FromWorkerMessage {
  t: string;
  rid?: number;
}

interface Pending<H> {
  resolve(r: unknown): void;
  reject(e: Error): void;
  hooks: H;
  onAbort?: () => void;
}

export abstract class WorkerHost<H extends HostHooks, M extends FromWorkerMessage> {
  private worker: Worker | null = null;
  private pending = new Map<number, Pending<H>>();
  private nextId = 1;
  private closing: Promise<void> | null = null;
  private idleTimer: NodeJS.Timeout | null = null;

  protected constructor(private readonly host: WorkerHostConfig) {}

  /** The error a { t: 'error' } answer stands for. */
  protected abstract errorOf(m: Extract<M, { t: 'error' }>): Error;
  /** A message other than done/error/closed for a pending request (progress, tokens, status). */
  protected abstract onEvent(m: M, hooks: H): void;

  /** Whether a worker thread is running now (it starts on demand and stops when idle). */
  get started(): boolean {
    return this.worker !== null;
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = startWorker(this.host.entry, this.host.worker);
    w.unref();
    w.on('message', (m: M) => this.onMessage(m));
    const fail = (err: Error) => {
      if (this.worker !== w) return;
      this.worker = null;
      for (const [rid, p] of this.pending) {
        this.pending.delete(rid);
        if (p.onAbort) p.hooks.signal?.removeEventListener('abort', p.onAbort);
        p.reject(err);
      }
    };
    w.on('error', (e) => fail(e instanceof Error ? e : new Error(String(e))));
    w.on('exit', (code) => fail(new Error(`the ${this.host.label} exited (code ${code})`)));
    this.worker = w;
    return w;
  }

  private onMessage(m: M): void {
    if (m.t === 'closed' || m.rid === undefined) return;
    const rid = m.rid;
    const p = this.pending.get(rid);
    if (!p) return;
    if (m.t !== 'done' && m.t !== 'error') {
      this.onEvent(m, p.hooks);
      return;
    }
    this.pending.delete(rid);
    if (p.onAbort) p.hooks.signal?.removeEventListener('abort', p.onAbort);
    if (this.pending.size === 0) {
      this.worker?.unref();
      this.armIdle();
    }
    if (m.t === 'done') p.resolve((m as unknown as { result: unknown }).result);
    else p.reject(this.errorOf(m as Extract<M, { t: 'error' }>));
  }

  /** Post the request `message(rid)` and wait for its done/error answer; hooks.signal's abort posts a cancel. */
  protected request<T>(message: (rid: number) => unknown, hooks: H): Promise<T> {
    if (this.closing) return Promise.reject(new Error(`the ${this.host.label} is closed`));
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const w = this.start();
    const rid = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const p: Pending<H> = { resolve: resolve as (r: unknown) => void, reject, hooks };
      if (hooks.signal) {
        p.onAbort = () => this.worker?.postMessage({ t: 'cancel', rid });
        hooks.signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.pending.set(rid, p);
      w.ref(); // a request in flight keeps the process alive until it answers
      w.postMessage(message(rid));
      if (hooks.signal?.aborted) p.onAbort!();
    });
  }

  private armIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      const w = this.worker;
      if (!w || this.pending.size > 0 || this.closing) return;
      this.worker = null; // its exit is no failure of anything pending
      w.postMessage({ t: 'close' });
    }, this.host.idleMs);
    this.idleTimer.unref();
  }

  /** Cancel what is running, stop the worker and wait for it (terminated after 10 s). */
  close(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.closing) return this.closing;
    const w = this.worker;
    this.closing = (async () => {
      if (!w) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => void w.terminate().then(() => resolve()), 10_000);
        timer.unref();
        w.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        w.ref();
        w.postMessage({ t: 'close' });
      });
      this.worker = null;
    })();
    return this.closing;
  }

  /** Stop the worker now without waiting (the process is closing); what is pending fails. */
  terminate(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.closing ??= Promise.resolve();
    const w = this.worker;
    if (w) void w.terminate();
  }
}
