// Hosting generators for a long-lived process (the chat service): a small LRU of loaded generators keyed by
// (model folder, adapter folder), one generation at a time (2 CPU cores: concurrent runs would only slow each other),
// cancel for running and queued requests. GeneratorPool does this in the calling thread; GeneratorWorker runs a
// GeneratorPool in a worker_thread so that nothing of generation stalls the backend's event loop: onnxruntime-node
// runs session.run and model loading synchronously on the calling thread (a 0.5B prefill: seconds), graph building
// on a cache miss is synchronous JS, and per-token JS work (sampling over a 150k vocabulary, detokenizing) adds up.
// This file is also the worker's entry.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { loadGenerator, type GenerateOptions, type GenerateResult, type Generator, type ChatTurn } from './generate';
import type { SessionOptions } from '../engine/runtime/session';

export interface PoolRequest {
  modelDir: string;
  adapterDir?: string | null;
  /** An image file path or encoded bytes. */
  image?: string | Uint8Array | null;
  messages: ChatTurn[];
}

export type PoolOptions = Omit<GenerateOptions, 'signal' | 'onToken' | 'kvCache'>;

export interface PoolHooks {
  signal?: AbortSignal;
  onToken?(t: { id: number; text: string }): void;
  onStatus?(message: string): void;
}

export interface GeneratorHost {
  generate(req: PoolRequest, opts: PoolOptions, hooks?: PoolHooks): Promise<GenerateResult>;
  /** Release every generator (and the worker). */
  close(): Promise<void>;
}

export interface PoolConfig {
  cacheDir: string;
  /** Loaded generators kept (default 2; each holds its model's weights in ORT sessions). */
  maxGenerators?: number;
  session?: SessionOptions;
}

function identity(dir: string | null | undefined): string {
  if (!dir) return '';
  const parts: string[] = [dir];
  for (const f of ['config.json', 'model.safetensors', 'model.safetensors.index.json', 'adapter_config.json', 'adapter_model.safetensors']) {
    try {
      const st = statSync(join(dir, f));
      parts.push(`${f}:${st.size}:${st.mtimeMs}`);
    } catch {
      /* absent */
    }
  }
  return parts.join('|');
}

const cancelledResult = (): GenerateResult => ({
  ids: [],
  text: '',
  finishReason: 'cancelled',
  promptTokens: 0,
  timings: { prepareMs: 0, prefillMs: 0, firstTokenMs: 0, decodeMs: 0, decodeTokens: 0, tokensPerSecond: NaN },
});

/** Generators in this thread, serialized. */
export class GeneratorPool implements GeneratorHost {
  private gens = new Map<string, { id: string; g: Promise<Generator> }>();
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  constructor(private readonly config: PoolConfig) {}

  private async generator(modelDir: string, adapterDir: string | null, onStatus?: (m: string) => void): Promise<Generator> {
    const key = `${modelDir}\u0000${adapterDir ?? ''}`;
    const id = `${identity(modelDir)}#${identity(adapterDir)}`;
    const hit = this.gens.get(key);
    if (hit && hit.id === id) {
      // most recently used last
      this.gens.delete(key);
      this.gens.set(key, hit);
      return hit.g;
    }
    if (hit) {
      this.gens.delete(key);
      await (await hit.g.catch(() => null))?.dispose();
    }
    while (this.gens.size >= Math.max(1, this.config.maxGenerators ?? 2)) {
      const [oldKey, old] = this.gens.entries().next().value!;
      this.gens.delete(oldKey);
      await (await old.g.catch(() => null))?.dispose();
    }
    onStatus?.(`loading ${modelDir}${adapterDir ? ` with adapter ${adapterDir}` : ''}`);
    const g = loadGenerator(modelDir, adapterDir, { cacheDir: this.config.cacheDir, session: this.config.session, onStatus });
    this.gens.set(key, { id, g });
    g.catch(() => {
      if (this.gens.get(key)?.g === g) this.gens.delete(key);
    });
    return g;
  }

  generate(req: PoolRequest, opts: PoolOptions, hooks: PoolHooks = {}): Promise<GenerateResult> {
    if (this.closed) return Promise.reject(new Error('the generator pool is closed'));
    const run = async () => {
      if (hooks.signal?.aborted) return cancelledResult();
      const g = await this.generator(req.modelDir, req.adapterDir ?? null, hooks.onStatus);
      if (hooks.signal?.aborted) return cancelledResult();
      const image = req.image instanceof Uint8Array && !Buffer.isBuffer(req.image) ? Buffer.from(req.image.buffer, req.image.byteOffset, req.image.byteLength) : req.image;
      return g.generate({ image, messages: req.messages }, { ...opts, signal: hooks.signal, onToken: hooks.onToken });
    };
    const p = this.tail.then(run, run);
    this.tail = p.catch(() => {});
    return p;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.tail;
    const all = [...this.gens.values()];
    this.gens.clear();
    for (const e of all) await (await e.g.catch(() => null))?.dispose();
  }
}

// ---------------------------------------------------------------- worker thread

type ToWorker =
  | { t: 'generate'; rid: number; req: PoolRequest; opts: PoolOptions }
  | { t: 'cancel'; rid: number }
  | { t: 'close' };
type FromWorker =
  | { t: 'token'; rid: number; id: number; text: string }
  | { t: 'status'; rid: number; message: string }
  | { t: 'done'; rid: number; result: GenerateResult }
  | { t: 'error'; rid: number; name: string; message: string }
  | { t: 'closed' };

const WORKER_FLAG = 'lenslabGenerateWorker';

/** The worker entry's default location (this file). */
export const GENERATE_WORKER_ENTRY = fileURLToPath(import.meta.url);

export interface WorkerHostOptions extends PoolConfig {
  /** Worker entry (default this file; a .ts entry is loaded through tsx, a built .js one directly). */
  entry?: string;
  execArgv?: string[];
  /** Stop the worker (releasing its models' memory) after this long without requests (default 10 min). */
  idleMs?: number;
}

interface Pending {
  resolve(r: GenerateResult): void;
  reject(e: Error): void;
  hooks: PoolHooks;
  onAbort?: () => void;
}

/** A GeneratorPool in a worker_thread. The worker is started on first use and does not keep the process alive. */
export class GeneratorWorker implements GeneratorHost {
  private worker: Worker | null = null;
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private closing: Promise<void> | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  constructor(private readonly options: WorkerHostOptions) {}

  /** Whether a worker thread is running now (it starts on demand and stops when idle). */
  get started(): boolean {
    return this.worker !== null;
  }

  /** Whether a worker entry exists to start (false in a bundle without it: use GeneratorPool instead). */
  static available(entry = GENERATE_WORKER_ENTRY): boolean {
    return existsSync(entry);
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const { entry, execArgv, idleMs: _idle, ...config } = this.options;
    const file = entry ?? GENERATE_WORKER_ENTRY;
    const data = { workerData: { [WORKER_FLAG]: true, config }, execArgv: execArgv ?? [] };
    // a TypeScript entry (running from source) is loaded through tsx's loader, registered inside the worker
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
        p.hooks.signal?.removeEventListener('abort', p.onAbort!);
        p.reject(err);
      }
    };
    w.on('error', (e) => fail(e instanceof Error ? e : new Error(String(e))));
    w.on('exit', (code) => fail(new Error(`the generation worker exited (code ${code})`)));
    this.worker = w;
    return w;
  }

  private onMessage(m: FromWorker): void {
    if (m.t === 'closed') return;
    const p = this.pending.get(m.rid);
    if (!p) return;
    if (m.t === 'token') p.hooks.onToken?.({ id: m.id, text: m.text });
    else if (m.t === 'status') p.hooks.onStatus?.(m.message);
    else {
      this.pending.delete(m.rid);
      p.hooks.signal?.removeEventListener('abort', p.onAbort!);
      if (this.pending.size === 0) {
        this.worker?.unref();
        this.armIdle();
      }
      if (m.t === 'done') p.resolve(m.result);
      else {
        const e = new Error(m.message);
        e.name = m.name;
        p.reject(e);
      }
    }
  }

  generate(req: PoolRequest, opts: PoolOptions, hooks: PoolHooks = {}): Promise<GenerateResult> {
    if (this.closing) return Promise.reject(new Error('the generator worker is closed'));
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const w = this.start();
    const rid = this.nextId++;
    return new Promise<GenerateResult>((resolve, reject) => {
      const p: Pending = { resolve, reject, hooks };
      if (hooks.signal) {
        p.onAbort = () => this.worker?.postMessage({ t: 'cancel', rid } satisfies ToWorker);
        hooks.signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.pending.set(rid, p);
      w.ref(); // a request in flight keeps the process alive until it answers
      w.postMessage({ t: 'generate', rid, req, opts } satisfies ToWorker);
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
      w.postMessage({ t: 'close' } satisfies ToWorker);
    }, this.options.idleMs ?? 10 * 60_000);
    this.idleTimer.unref();
  }

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
}

/** A thrown error's class name (custom Error subclasses keep name 'Error'), so the other thread can map it. */
export function errorName(e: unknown): string {
  if (!(e instanceof Error)) return 'Error';
  return e.name !== 'Error' ? e.name : (e.constructor?.name ?? 'Error');
}

function runWorker(): void {
  const port = parentPort!;
  const pool = new GeneratorPool((workerData as { config: PoolConfig }).config);
  const controllers = new Map<number, AbortController>();
  const send = (m: FromWorker) => port.postMessage(m);
  port.on('message', (m: ToWorker) => {
    if (m.t === 'cancel') controllers.get(m.rid)?.abort();
    else if (m.t === 'close') {
      for (const c of controllers.values()) c.abort();
      void pool.close().finally(() => {
        send({ t: 'closed' });
        port.close();
      });
    } else if (m.t === 'generate') {
      const ac = new AbortController();
      controllers.set(m.rid, ac);
      pool
        .generate(m.req, m.opts, {
          signal: ac.signal,
          onToken: (t) => send({ t: 'token', rid: m.rid, id: t.id, text: t.text }),
          onStatus: (message) => send({ t: 'status', rid: m.rid, message }),
        })
        .then(
          (result) => send({ t: 'done', rid: m.rid, result }),
          (e: Error) => send({ t: 'error', rid: m.rid, name: errorName(e), message: e?.message ?? String(e) }),
        )
        .finally(() => controllers.delete(m.rid));
    }
  });
}

if (!isMainThread && (workerData as Record<string, unknown> | null)?.[WORKER_FLAG]) runWorker();
