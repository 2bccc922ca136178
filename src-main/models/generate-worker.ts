// Hosting generators for a long-lived process (the chat service): a small LRU of loaded generators keyed by
// (model folder, adapter folder), one generation at a time (2 CPU cores: concurrent runs would only slow each other),
// cancel for running and queued requests. GeneratorPool does this in the calling thread; GeneratorWorker runs a
// GeneratorPool in a worker_thread so that nothing of generation stalls the backend's event loop: onnxruntime-node
// runs session.run and model loading synchronously on the calling thread (a 0.5B prefill: seconds), graph building
// on a cache miss is synchronous JS, and per-token JS work (sampling over a 150k vocabulary, detokenizing) adds up.
// This file is also the worker's entry.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { QuantScheme } from './quantize';
import { GenerateError, loadGenerator, type GenerateOptions, type GenerateResult, type ChatTurn } from './generate';
import { isAudioLlmFolder, loadAudioChatGenerator } from './audio/chat';
import type { AudioClip } from './audio/ultravox';
import { providerFromEnv, PROVIDER_ENV, type Provider, type SessionOptions } from '../engine/runtime/session';
import { chooseProvider, type ProviderChoice } from '../engine/runtime/provider-choice';
import { WorkerHost, errorName } from '../util/worker-host';

export { errorName };

export interface PoolRequest {
  modelDir: string;
  adapterDir?: string | null;
  /** An image file path or encoded bytes. */
  image?: string | Uint8Array | null;
  /** A decoded clip (mono samples at the model's rate), for a model that takes audio (chatInputsOf). */
  audio?: AudioClip | null;
  messages: ChatTurn[];
  /**
   * Where to generate: a provider by name, or 'auto' (time a short greedy answer on the CPU and on each usable GPU,
   * keep the fastest; cached per machine and model: engine/runtime/provider-choice.ts). Default: the pool's session
   * options (LENSLAB_PROVIDER, else CUDA when installed, else the CPU).
   */
  device?: 'auto' | 'cpu' | 'webgpu' | 'cuda';
}

export type PoolOptions = Omit<GenerateOptions, 'signal' | 'onToken' | 'kvCache'> & {
  /** Weight-only quantization of the generator's graphs (a generator per model, adapter and scheme). */
  quantize?: QuantScheme;
};

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

/** What a model folder takes besides text in chat, asked of the folder (an audio LLM: clips; the others: images). */
export function chatInputsOf(modelDir: string): { image: boolean; audio: boolean } {
  return isAudioLlmFolder(modelDir) ? { image: false, audio: true } : { image: true, audio: false };
}

/** A loaded chat model of any kind: the image generator (generate.ts) or an audio LLM's (audio/chat.ts). */
interface Hosted {
  readonly provider: string;
  generate(
    req: { image?: string | Buffer | null; audio?: AudioClip | null; messages: ChatTurn[] },
    opts: GenerateOptions,
  ): Promise<GenerateResult>;
  dispose(): Promise<void>;
}

async function loadHosted(
  modelDir: string,
  adapterDir: string | null,
  o: Parameters<typeof loadGenerator>[2] = {},
): Promise<Hosted> {
  if (isAudioLlmFolder(modelDir)) {
    const g = await loadAudioChatGenerator(modelDir, adapterDir, {
      quantize: o.quantize,
      provider: o.session?.provider,
      onStatus: o.onStatus,
    });
    return {
      provider: g.provider,
      generate: async (req, opts) => {
        if (req.image) throw new GenerateError(`${modelDir}: an audio model hears clips; it cannot take an image`);
        return g.generate({ audio: req.audio ?? null, messages: req.messages }, opts);
      },
      dispose: () => g.dispose(),
    };
  }
  const g = await loadGenerator(modelDir, adapterDir, o);
  return {
    provider: g.provider,
    generate: async (req, opts) => {
      if (req.audio)
        throw new GenerateError(
          `${modelDir}: this model cannot take audio (an audio LLM, e.g. one made by lenslab audio compose, can)`,
        );
      return g.generate({ image: req.image, messages: req.messages }, opts);
    },
    dispose: () => g.dispose(),
  };
}

function identity(dir: string | null | undefined): string {
  if (!dir) return '';
  const parts: string[] = [dir];
  for (const f of [
    'config.json',
    'model.safetensors',
    'model.safetensors.index.json',
    'adapter_config.json',
    'adapter_model.safetensors',
  ]) {
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
  private gens = new Map<string, { id: string; g: Promise<Hosted> }>();
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  constructor(private readonly config: PoolConfig) {}

  private devices = new Map<string, Promise<ProviderChoice>>();

  /** The provider for a request's device, and why. */
  private async device(
    req: PoolRequest,
    onStatus?: (m: string) => void,
  ): Promise<{ provider: Provider | undefined; reason: string }> {
    const d = req.device;
    if (!d) {
      const p = this.config.session?.provider ?? providerFromEnv();
      return {
        provider: undefined,
        reason: p && p !== 'auto' ? `${PROVIDER_ENV}=${p}` : 'default: CUDA when installed, else the CPU',
      };
    }
    if (d !== 'auto') return { provider: d, reason: 'chosen for this chat' };
    const key = `${identity(req.modelDir)}#${identity(req.adapterDir)}`;
    let c = this.devices.get(key);
    if (!c) {
      onStatus?.('measuring which device generates fastest here (once per model)');
      c = chooseProvider({
        key: { what: 'generate', model: identity(req.modelDir), adapter: identity(req.adapterDir) },
        cacheDir: this.config.cacheDir,
        probe: async (p) => {
          const g = await loadHosted(req.modelDir, req.adapterDir ?? null, {
            cacheDir: this.config.cacheDir,
            session: { ...this.config.session, provider: p },
          });
          try {
            const ask = () => g.generate({ messages: [{ role: 'user', content: 'Hello' }] }, { maxNewTokens: 4 });
            await ask(); // warm-up: kernel / shader compilation
            const t = performance.now();
            await ask();
            return performance.now() - t;
          } finally {
            await g.dispose();
          }
        },
      });
      this.devices.set(key, c);
      c.catch(() => this.devices.delete(key));
    }
    const r = await c;
    return { provider: r.provider, reason: r.reason };
  }

  private async generator(
    modelDir: string,
    adapterDir: string | null,
    quantize: QuantScheme,
    onStatus?: (m: string) => void,
    provider?: Provider,
  ): Promise<Hosted> {
    const key = `${modelDir}\u0000${adapterDir ?? ''}\u0000${quantize}\u0000${provider ?? ''}`;
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
    const session = provider ? { ...this.config.session, provider } : this.config.session;
    const g = loadHosted(modelDir, adapterDir, { cacheDir: this.config.cacheDir, session, onStatus, quantize });
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
      const { quantize, ...genOpts } = opts;
      const dev = await this.device(req, hooks.onStatus);
      const g = await this.generator(
        req.modelDir,
        req.adapterDir ?? null,
        quantize ?? 'none',
        hooks.onStatus,
        dev.provider,
      );
      if (hooks.signal?.aborted) return cancelledResult();
      const image =
        req.image instanceof Uint8Array && !Buffer.isBuffer(req.image)
          ? Buffer.from(req.image.buffer, req.image.byteOffset, req.image.byteLength)
          : req.image;
      const r = await g.generate(
        { image, audio: req.audio, messages: req.messages },
        { ...genOpts, signal: hooks.signal, onToken: hooks.onToken },
      );
      return {
        ...r,
        device: {
          provider: g.provider,
          reason: g.provider === (dev.provider ?? g.provider) ? dev.reason : `${dev.provider} unavailable, fell back`,
        },
      };
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
  { t: 'generate'; rid: number; req: PoolRequest; opts: PoolOptions } | { t: 'cancel'; rid: number } | { t: 'close' };
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

/** A GeneratorPool in a worker_thread. The worker is started on first use and does not keep the process alive. */
export class GeneratorWorker extends WorkerHost<PoolHooks, FromWorker> implements GeneratorHost {
  constructor(options: WorkerHostOptions) {
    const { entry, execArgv, idleMs, ...config } = options;
    super({
      entry: entry ?? GENERATE_WORKER_ENTRY,
      worker: { workerData: { [WORKER_FLAG]: true, config }, execArgv: execArgv ?? [] },
      idleMs: idleMs ?? 10 * 60_000,
      label: 'generation worker',
    });
  }

  /** Whether a worker entry exists to start (false in a bundle without it: use GeneratorPool instead). */
  static available(entry = GENERATE_WORKER_ENTRY): boolean {
    return existsSync(entry);
  }

  protected onEvent(m: FromWorker, hooks: PoolHooks): void {
    if (m.t === 'token') hooks.onToken?.({ id: m.id, text: m.text });
    else if (m.t === 'status') hooks.onStatus?.(m.message);
  }

  protected errorOf(m: Extract<FromWorker, { t: 'error' }>): Error {
    const e = new Error(m.message);
    e.name = m.name;
    return e;
  }

  generate(req: PoolRequest, opts: PoolOptions, hooks: PoolHooks = {}): Promise<GenerateResult> {
    return this.request((rid) => ({ t: 'generate', rid, req, opts }) satisfies ToWorker, hooks);
  }
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
