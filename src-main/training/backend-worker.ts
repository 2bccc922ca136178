// Heavy work that service handlers need, run in a worker_thread so that the backend's event loop (every client's
// requests and events) never stalls on it:
//   check     checkVlmRun (runs.estimate / runs.start): loads the model folder and tokenizer, renders and tokenizes
//             every sample of the split, plans and estimates memory; synchronous, seconds for thousands of items
//   evaluate  evaluateModel (evaluations.start): loads the model (ORT sessions, graph compile: synchronous) and
//             generates for every item
//   preview   items.preview: the model's tokenizer + template (loaded once per folder, cached in the worker) and
//             one item rendered and tokenized
//   lintLengths datasets.lint with a model: every item's conversations rendered and measured in tokens (the items are
//             read from SQLite and the findings stored on the main thread)
// Errors cross the thread boundary by name + own fields and are rebuilt as the same classes (HparamsError,
// SampleError, VlmCheckError, MemoryRefusalError), so the services map them to the same typed API errors.
// Where the worker entry is not on disk (a bundle without it) or `inProcess` is set, the same work runs in this
// thread (WorkLocal). This file is also the worker's entry (built as backend-worker.js, electron.vite.config.ts).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SHARE_ENV, Worker, isMainThread, parentPort, workerData, type WorkerOptions } from 'node:worker_threads';
import { checkVlmRun, MemoryRefusalError, VlmCheckError, type VlmCheck } from './vlm-config';
import { HparamsError } from './hparams';
import { SampleError } from './batching';
import { evaluateModel, type ModelEvalOptions } from '../eval/model-eval';
import type { EvalRunResult } from '../eval/evaluate';
import { renderSetupFromFolder } from '../datasets/model-setup';
import { previewItem, type ConversationPreview } from '../datasets/render';
import { measureLengths, type ItemLengths, type LengthItem } from '../datasets/lint-lengths';
import type { ConversationOptions } from '../datasets/conversation';

export type CheckInput = Parameters<typeof checkVlmRun>[0];
export type EvaluateInput = Omit<ModelEvalOptions, 'signal' | 'onProgress'>;
export interface PreviewInput {
  modelDir: string;
  item: Parameters<typeof previewItem>[0];
  opts?: Parameters<typeof previewItem>[2];
}
export interface PreviewResult {
  contextLength: number;
  conversations: ConversationPreview[];
}
export interface LintLengthsInput {
  modelDir: string;
  items: LengthItem[];
  conversation?: ConversationOptions;
}
export interface LintLengthsResult {
  /** The model's context length. */
  contextLength: number;
  /** One per item, in order. */
  lengths: ItemLengths[];
}

/** items.preview / datasets.lint: the model folder cannot give a tokenizer + template (the message is the loader's). */
export class PreviewSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PreviewSetupError';
  }
}

export interface WorkHooks {
  signal?: AbortSignal;
  onProgress?(done: number, total: number): void;
}

/** What the services call; the same in a worker or in this thread. */
export interface WorkHost {
  check(input: CheckInput): Promise<VlmCheck>;
  evaluate(input: EvaluateInput, hooks?: WorkHooks): Promise<EvalRunResult>;
  preview(input: PreviewInput): Promise<PreviewResult>;
  lintLengths(input: LintLengthsInput): Promise<LintLengthsResult>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- the work itself

function setupOf(modelDir: string) {
  try {
    return renderSetupFromFolder(modelDir);
  } catch (e) {
    throw new PreviewSetupError((e as Error).message);
  }
}

function preview(input: PreviewInput): PreviewResult {
  const setup = setupOf(input.modelDir);
  return { contextLength: setup.contextLength, conversations: previewItem(input.item, setup, input.opts) };
}

function lintLengths(input: LintLengthsInput): LintLengthsResult {
  const setup = setupOf(input.modelDir);
  return { contextLength: setup.contextLength, lengths: measureLengths(input.items, setup, input.conversation) };
}

/** The work in this thread (tests, bundles without the worker entry, LENSLAB_WORK_IN_PROCESS=1). */
export class WorkLocal implements WorkHost {
  async check(input: CheckInput): Promise<VlmCheck> {
    return checkVlmRun(input);
  }
  evaluate(input: EvaluateInput, hooks: WorkHooks = {}): Promise<EvalRunResult> {
    return evaluateModel({ ...input, signal: hooks.signal, onProgress: hooks.onProgress });
  }
  async preview(input: PreviewInput): Promise<PreviewResult> {
    return preview(input);
  }
  async lintLengths(input: LintLengthsInput): Promise<LintLengthsResult> {
    return lintLengths(input);
  }
  async close(): Promise<void> {}
}

// ---------------------------------------------------------------- errors across the boundary

interface WireError {
  name: string;
  message: string;
  fields: Record<string, unknown>;
}

function className(e: unknown): string {
  if (!(e instanceof Error)) return 'Error';
  return e.name !== 'Error' ? e.name : (e.constructor?.name ?? 'Error');
}

function toWire(e: unknown): WireError {
  const fields: Record<string, unknown> = {};
  if (e && typeof e === 'object') for (const [k, v] of Object.entries(e)) if (k !== 'name' && k !== 'message' && k !== 'stack') fields[k] = v;
  return { name: className(e), message: e instanceof Error ? e.message : String(e), fields };
}

/** Rebuild an error from the worker as its own class (so instanceof checks in the services hold). */
export function fromWire(w: WireError): Error {
  const f = w.fields as Record<string, any>;
  let e: Error;
  switch (w.name) {
    case 'HparamsError':
      e = new HparamsError(f.issues ?? []);
      break;
    case 'SampleError':
      e = new SampleError(f.problems ?? []);
      break;
    case 'VlmCheckError':
      e = new VlmCheckError(w.message, f.field);
      break;
    case 'MemoryRefusalError':
      e = new MemoryRefusalError(f.estimate);
      break;
    case 'PreviewSetupError':
      e = new PreviewSetupError(w.message);
      break;
    default:
      e = Object.assign(new Error(w.message), f);
      e.name = w.name;
  }
  e.message = w.message;
  return e;
}

// ---------------------------------------------------------------- worker thread

type Op =
  | { op: 'check'; input: CheckInput }
  | { op: 'evaluate'; input: EvaluateInput }
  | { op: 'preview'; input: PreviewInput }
  | { op: 'lintLengths'; input: LintLengthsInput };
type ToWorker = ({ t: 'call'; rid: number } & Op) | { t: 'cancel'; rid: number } | { t: 'close' };
type FromWorker =
  | { t: 'progress'; rid: number; done: number; total: number }
  | { t: 'done'; rid: number; result: unknown }
  | { t: 'error'; rid: number; error: WireError }
  | { t: 'closed' };

const WORKER_FLAG = 'lenslabBackendWorker';

/** The worker entry's default location (this file). */
export const BACKEND_WORKER_ENTRY = fileURLToPath(import.meta.url);

export interface WorkThreadOptions {
  /** Worker entry (default this file; a .ts entry is loaded through tsx, a built .js one directly). */
  entry?: string;
  execArgv?: string[];
  /** Stop the worker (freeing its caches) after this long without requests (default 5 min). */
  idleMs?: number;
}

interface Pending {
  resolve(r: unknown): void;
  reject(e: Error): void;
  hooks: WorkHooks;
  onAbort?: () => void;
}

/** The work in a worker_thread, started on first use; it does not keep the process alive while idle. */
export class WorkThread implements WorkHost {
  private worker: Worker | null = null;
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private closing: Promise<void> | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  constructor(private readonly options: WorkThreadOptions = {}) {}

  /** Whether a worker entry exists to start (false in a bundle without it: use WorkLocal instead). */
  static available(entry = BACKEND_WORKER_ENTRY): boolean {
    return existsSync(entry);
  }

  /** Whether a worker thread is running now. */
  get started(): boolean {
    return this.worker !== null;
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const file = this.options.entry ?? BACKEND_WORKER_ENTRY;
    // SHARE_ENV: the worker reads this thread's environment as it is at each call (LENSLAB_MEMORY_LIMIT,
    // LENSLAB_GRAPH_CACHE), not a copy taken when it started
    const data: WorkerOptions = { workerData: { [WORKER_FLAG]: true }, execArgv: this.options.execArgv ?? [], env: SHARE_ENV };
    const w = file.endsWith('.ts')
      ? new Worker(
          `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(pathToFileURL(file).href)}); });`,
          { ...data, eval: true },
        )
      : new Worker(file, data);
    w.unref();
    w.on('message', (m: FromWorker) => this.onMessage(m));
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
    w.on('exit', (code) => fail(new Error(`the backend worker exited (code ${code})`)));
    this.worker = w;
    return w;
  }

  private onMessage(m: FromWorker): void {
    if (m.t === 'closed') return;
    const p = this.pending.get(m.rid);
    if (!p) return;
    if (m.t === 'progress') {
      p.hooks.onProgress?.(m.done, m.total);
      return;
    }
    this.pending.delete(m.rid);
    if (p.onAbort) p.hooks.signal?.removeEventListener('abort', p.onAbort);
    if (this.pending.size === 0) {
      this.worker?.unref();
      this.armIdle();
    }
    if (m.t === 'done') p.resolve(m.result);
    else p.reject(fromWire(m.error));
  }

  private call<T>(op: Op, hooks: WorkHooks = {}): Promise<T> {
    if (this.closing) return Promise.reject(new Error('the backend worker is closed'));
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const w = this.start();
    const rid = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const p: Pending = { resolve: resolve as (r: unknown) => void, reject, hooks };
      if (hooks.signal) {
        p.onAbort = () => this.worker?.postMessage({ t: 'cancel', rid } satisfies ToWorker);
        hooks.signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.pending.set(rid, p);
      w.ref(); // a request in flight keeps the process alive until it answers
      w.postMessage({ t: 'call', rid, ...op } satisfies ToWorker);
      if (hooks.signal?.aborted) p.onAbort!();
    });
  }

  check(input: CheckInput): Promise<VlmCheck> {
    return this.call({ op: 'check', input });
  }
  evaluate(input: EvaluateInput, hooks: WorkHooks = {}): Promise<EvalRunResult> {
    return this.call({ op: 'evaluate', input }, hooks);
  }
  preview(input: PreviewInput): Promise<PreviewResult> {
    return this.call({ op: 'preview', input });
  }
  lintLengths(input: LintLengthsInput): Promise<LintLengthsResult> {
    return this.call({ op: 'lintLengths', input });
  }

  private armIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      const w = this.worker;
      if (!w || this.pending.size > 0 || this.closing) return;
      this.worker = null; // its exit is no failure of anything pending
      w.postMessage({ t: 'close' } satisfies ToWorker);
    }, this.options.idleMs ?? 5 * 60_000);
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
        w.postMessage({ t: 'close' } satisfies ToWorker);
      });
      this.worker = null;
    })();
    return this.closing;
  }

  /** Stop the worker now without waiting (the backend is closing); what is pending fails. */
  terminate(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.closing ??= Promise.resolve();
    const w = this.worker;
    if (w) void w.terminate();
  }
}

function runWorker(): void {
  const port = parentPort!;
  const local = new WorkLocal();
  const controllers = new Map<number, { ac: AbortController; done: Promise<unknown> }>();
  const send = (m: FromWorker) => {
    try {
      port.postMessage(m);
    } catch (e) {
      // a result or error field that cannot be cloned: answer with the message alone
      if (m.t === 'done' || m.t === 'error') port.postMessage({ t: 'error', rid: m.rid, error: { ...toWire(e), fields: {} } } satisfies FromWorker);
      else throw e;
    }
  };
  port.on('message', (m: ToWorker) => {
    if (m.t === 'cancel') controllers.get(m.rid)?.ac.abort();
    else if (m.t === 'close') {
      for (const c of controllers.values()) c.ac.abort();
      void Promise.allSettled([...controllers.values()].map((c) => c.done)).finally(() => {
        send({ t: 'closed' });
        port.close();
      });
    } else if (m.t === 'call') {
      const ac = new AbortController();
      const run = (): Promise<unknown> => {
        if (m.op === 'check') return local.check(m.input);
        if (m.op === 'preview') return local.preview(m.input);
        if (m.op === 'lintLengths') return local.lintLengths(m.input);
        let last = 0;
        return local.evaluate(m.input, {
          signal: ac.signal,
          onProgress: (done, total) => {
            // the service throttles what it emits; spare the port most of the messages anyway
            const now = Date.now();
            if (done === total || now - last > 100) {
              last = now;
              send({ t: 'progress', rid: m.rid, done, total });
            }
          },
        });
      };
      const done = run()
        .then(
          (result) => send({ t: 'done', rid: m.rid, result }),
          (e: unknown) => send({ t: 'error', rid: m.rid, error: toWire(e) }),
        )
        .finally(() => controllers.delete(m.rid));
      controllers.set(m.rid, { ac, done });
    }
  });
}

if (!isMainThread && (workerData as Record<string, unknown> | null)?.[WORKER_FLAG]) runWorker();
