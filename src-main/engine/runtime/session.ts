// onnxruntime-node sessions: execution-provider choice with fallback, threads, optimization level, and run helpers
// that check feeds by name.

import * as ort from 'onnxruntime-node';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';

export type Provider = 'cpu' | 'cuda' | 'dml' | 'coreml' | 'webgpu';

const BYTES: Record<string, number> = {
  float32: 4,
  float16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  uint32: 4,
  int16: 2,
  uint16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export interface SessionOptions {
  /**
   * Preferred execution provider; falls back to cpu with a message when it is not present. Default: LENSLAB_PROVIDER,
   * else 'auto' (cuda when its provider libraries are installed, else cpu).
   */
  provider?: Provider | 'auto';
  /** Intra-op threads (default: number of CPU cores). */
  threads?: number;
  interOpThreads?: number;
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Memory-pattern planning (default true). */
  memPattern?: boolean;
  memArena?: boolean;
  /** ORT log severity: 0 verbose .. 4 fatal (default 3: errors only). */
  logSeverity?: 0 | 1 | 2 | 3 | 4;
  /** Where fallback messages go (default console.warn). */
  onWarning?: (message: string) => void;
  /**
   * Whether idle intra-op threads spin-wait for work (ORT's default) or sleep (false). Spinning saves a wake-up per
   * parallel op on an idle machine, but when other processes share the cores a spinning thread burns the time slice
   * the thread it waits for needs: a small model's training step (hundreds of short ops) ran 2-4x slower that way.
   * Default: LENSLAB_ORT_SPIN (1/0) when set, else ORT's default.
   */
  spin?: boolean;
  /**
   * Write ORT's profile (chrome-trace JSON, one event per node run) with this file prefix; it is written when the
   * session is disposed. Default: LENSLAB_ORT_PROFILE=<folder> profiles every session into that folder.
   */
  profilePrefix?: string;
  /** Raw ORT session config entries (session.* keys). */
  config?: Record<string, string>;
  /** Write the graph as ORT optimized it here (to check which fusions fired). */
  optimizedModelPath?: string;
  /** Whether a provider's libraries are present (default providerInstalled); tests use it to reach the start failure. */
  installed?: (p: Provider) => boolean;
}

/** Execution providers this onnxruntime-node build has (bundled or installable). */
export function availableProviders(): string[] {
  return ort.listSupportedBackends().map((b) => b.name);
}

export const PROVIDER_ENV = 'LENSLAB_PROVIDER';
const PROVIDER_NAMES: readonly (Provider | 'auto')[] = ['auto', 'cpu', 'cuda', 'dml', 'coreml', 'webgpu'];

/** LENSLAB_PROVIDER (auto, cpu, cuda, dml, coreml, webgpu), or undefined when unset; a bad value is an error naming it. */
export function providerFromEnv(env: NodeJS.ProcessEnv = process.env): Provider | 'auto' | undefined {
  const v = env[PROVIDER_ENV]?.trim().toLowerCase();
  if (!v) return undefined;
  if (!(PROVIDER_NAMES as readonly string[]).includes(v))
    throw new Error(
      `${PROVIDER_ENV}: unknown execution provider '${env[PROVIDER_ENV]}' (expected ${PROVIDER_NAMES.join(', ')})`,
    );
  return v as Provider | 'auto';
}

let bindingDirsFound: string[] | undefined;

/** The folders holding this platform's onnxruntime-node binding (bin/napi-v*\/<platform>/<arch>); looked up once. */
function bindingDirs(): string[] {
  return (bindingDirsFound ??= findBindingDirs());
}

function findBindingDirs(): string[] {
  try {
    const root = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')), '..', 'bin');
    return readdirSync(root)
      .filter((d) => d.startsWith('napi-v'))
      .map((d) => join(root, d, process.platform, process.arch))
      .filter((d) => existsSync(d));
  } catch {
    return [];
  }
}

/**
 * Whether a provider can be used: bundled with this onnxruntime-node build, or installable and its provider library
 * is present next to the binding (CUDA: `npm rebuild onnxruntime-node` with ONNXRUNTIME_NODE_INSTALL=cuda12, README).
 */
export function providerInstalled(name: Provider, dirs: readonly string[] = bindingDirs()): boolean {
  const b = ort.listSupportedBackends().find((x) => x.name === name);
  if (!b) return false;
  if (b.bundled) return true;
  const lib =
    process.platform === 'win32' ? `onnxruntime_providers_${name}.dll` : `libonnxruntime_providers_${name}.so`;
  return dirs.some((d) => existsSync(join(d, lib)));
}

/** 'auto': the CUDA provider when its libraries are installed, else cpu. (DirectML and CoreML: ask by name.) */
export function autoProvider(installed: (p: Provider) => boolean = (p) => providerInstalled(p)): Provider {
  return installed('cuda') ? 'cuda' : 'cpu';
}

export const SPIN_ENV = 'LENSLAB_ORT_SPIN';

/** LENSLAB_ORT_SPIN as a boolean (1/true/on, 0/false/off), undefined when unset; a bad value is an error naming it. */
export function spinFromEnv(env: NodeJS.ProcessEnv = process.env): boolean | undefined {
  const v = env[SPIN_ENV]?.trim().toLowerCase();
  if (!v) return undefined;
  if (['1', 'true', 'on', 'yes'].includes(v)) return true;
  if (['0', 'false', 'off', 'no'].includes(v)) return false;
  throw new Error(`${SPIN_ENV}: expected 1 or 0, got '${env[SPIN_ENV]}'`);
}

/** ORT's session config entries: opts.config plus the spinning choice (session.intra_op.allow_spinning). */
function extraConfig(opts: SessionOptions): { extra?: Record<string, string> } {
  const entries: Record<string, string> = { ...(opts.config ?? {}) };
  const spin = spinFromEnv() ?? opts.spin;
  if (spin !== undefined) entries['session.intra_op.allow_spinning'] = spin ? '1' : '0';
  return Object.keys(entries).length ? { extra: entries } : {};
}

export const PROFILE_ENV = 'LENSLAB_ORT_PROFILE';

function profiling(opts: SessionOptions): { enableProfiling?: boolean; profileFilePrefix?: string } {
  const dir = process.env[PROFILE_ENV]?.trim();
  const prefix = opts.profilePrefix ?? (dir ? join(dir, 'ort') : undefined);
  if (!prefix) return {};
  if (dir) mkdirSync(dir, { recursive: true });
  return { enableProfiling: true, profileFilePrefix: prefix };
}

export class Session {
  private constructor(
    readonly inner: ort.InferenceSession,
    /** The provider actually in use. */
    readonly provider: Provider,
    /** Why the preferred provider was not used, or null. */
    readonly fallback: string | null,
    readonly source: string,
  ) {}

  /** Whether ORT profiles this session (profilePrefix / LENSLAB_ORT_PROFILE): the profile is written on dispose. */
  private profiled = false;

  private inputSet: Set<string> | null = null;

  /** Bytes fed to and read from an accelerator provider by run() (stays 0 on the CPU). */
  readonly transfer = { runs: 0, toDevice: 0, fromDevice: 0 };

  get inputNames(): readonly string[] {
    return this.inner.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.inner.outputNames;
  }

  /** Create a session from a model path (external data next to it is memory-mapped) or model bytes. */
  static async create(model: string | Uint8Array, opts: SessionOptions = {}): Promise<Session> {
    const source = typeof model === 'string' ? model : `<${model.byteLength} bytes>`;
    const asked = opts.provider ?? providerFromEnv() ?? 'auto';
    const installed = opts.installed ?? ((p: Provider) => providerInstalled(p));
    const want: Provider = asked === 'auto' ? autoProvider(installed) : asked;
    const base: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: opts.threads ?? cpus().length,
      interOpNumThreads: opts.interOpThreads ?? 1,
      graphOptimizationLevel: opts.optimization ?? 'all',
      enableMemPattern: opts.memPattern ?? true,
      enableCpuMemArena: opts.memArena ?? true,
      executionMode: 'sequential',
      logSeverityLevel: opts.logSeverity ?? 3,
      ...extraConfig(opts),
      ...profiling(opts),
      ...(opts.optimizedModelPath ? { optimizedModelFilePath: opts.optimizedModelPath } : {}),
    };
    const warn = opts.onWarning ?? ((m: string) => console.warn(m));
    const load = (providers: Provider[]) =>
      typeof model === 'string'
        ? ort.InferenceSession.create(model, { ...base, executionProviders: providers })
        : ort.InferenceSession.create(model, { ...base, executionProviders: providers });
    let fallback: string | null = null;
    if (want !== 'cpu') {
      const avail = availableProviders();
      if (!avail.includes(want)) {
        fallback = `execution provider '${want}' is not available in this onnxruntime-node build (available: ${avail.join(', ')}); using cpu`;
      } else if (!installed(want)) {
        fallback = `execution provider '${want}' is not installed (README, "GPU": npm rebuild onnxruntime-node with ONNXRUNTIME_NODE_INSTALL=cuda12); using cpu`;
      } else {
        try {
          return Object.assign(new Session(await load([want, 'cpu']), want, null, source), {
            profiled: !!base.enableProfiling,
          });
        } catch (e) {
          fallback = `execution provider '${want}' failed to start (${(e as Error).message.split('\n')[0]}); using cpu`;
        }
      }
      warn(`lenslab engine: ${fallback}`);
    }
    try {
      return Object.assign(new Session(await load(['cpu']), 'cpu', fallback, source), {
        profiled: !!base.enableProfiling,
      });
    } catch (e) {
      throw new Error(`cannot load ONNX model ${source}: ${(e as Error).message}`);
    }
  }

  /**
   * Run with `feeds` (every graph input must be given; unknown names are an error) and return the requested outputs
   * (default all).
   */
  async run(feeds: Record<string, ort.Tensor>, fetch?: readonly string[]): Promise<Record<string, ort.Tensor>> {
    for (const name of this.inputNames)
      if (!(name in feeds)) throw new Error(`run ${this.source}: missing input '${name}'`);
    // a training step feeds hundreds of state tensors: a set, not a scan of the input list per feed
    const inputs = (this.inputSet ??= new Set(this.inputNames));
    for (const name of Object.keys(feeds))
      if (!inputs.has(name))
        throw new Error(
          `run ${this.source}: '${name}' is not an input of this model (inputs: ${this.inputNames.join(', ')})`,
        );
    if (fetch)
      for (const name of fetch)
        if (!this.outputNames.includes(name))
          throw new Error(`run ${this.source}: '${name}' is not an output of this model`);
    const res = fetch ? await this.inner.run(feeds, fetch as string[]) : await this.inner.run(feeds);
    if (this.provider !== 'cpu') {
      // a plain session on an accelerator takes CPU tensors and returns CPU tensors: every feed goes up, every output
      // comes down (what the benchmarks report as the copied path, e.g. for CUDA)
      const bytes = (t: ort.Tensor) => t.dims.reduce((a, b) => a * b, 1) * (BYTES[t.type] ?? 4);
      this.transfer.runs++;
      for (const t of Object.values(feeds)) this.transfer.toDevice += bytes(t);
      for (const t of Object.values(res)) this.transfer.fromDevice += bytes(t as ort.Tensor);
    }
    return res as Record<string, ort.Tensor>;
  }

  async dispose(): Promise<void> {
    if (this.profiled) this.inner.endProfiling();
    await this.inner.release();
  }
}
