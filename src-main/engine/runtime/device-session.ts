// Programs on an accelerator through ONNX Runtime's WebGPU provider (D3D12 on Windows, Metal on macOS, Vulkan on Linux).
//
// openProgram(build, …) is what the step executor and the generator call instead of Session.create: on the CPU (and
// CUDA) it is exactly Session.create of the cached graph; for 'webgpu' the graph is lowered (graph/lower-webgpu.ts)
// and split (graph/split.ts) into a CPU prologue and a device graph, both compiled into the graph cache under their own
// keys, and run by a SplitSession:
//   - the device session is created with session.disable_cpu_ep_fallback = 1: a node the provider cannot run is an
//     error at load, never a silent CPU fallback that would copy tensors back and forth;
//   - outputs listed in `deviceOutputs` stay on the device (ORT 'gpu-buffer' tensors) and may be fed back as inputs of
//     the next run; every other output is bound to the CPU. Reading a gpu-buffer tensor's data (getData) aborted the
//     process in onnxruntime-node 1.30, so state comes back only through CPU-bound outputs (readBack);
//   - every run counts the bytes it moves between host and device (`transfer`), for the benchmarks.

import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { Graph } from '../graph/builder';
import { DTYPE_BYTES, type DType } from '../graph/dtype';
import { lowerForWebGpu } from '../graph/lower-webgpu';
import { SHAPE_INPUT_PREFIX, splitHostDevice, type SplitGraphs } from '../graph/split';
import { modelSource } from './cache';
import { autoProvider, providerFromEnv, Session, type Provider, type SessionOptions } from './session';
import { tensor } from './tensor';

/** Bump when lower-webgpu.ts or split.ts change what they emit for the same graph (new cache keys). */
export const WEBGPU_GRAPH_VERSION = 1;

/** What the executor and the generator need of a session (Session and SplitSession). */
export interface RunSession {
  readonly provider: Provider;
  readonly fallback: string | null;
  readonly source: string;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, ort.Tensor>, fetch?: readonly string[]): Promise<Record<string, ort.Tensor>>;
  dispose(): Promise<void>;
}

/** The accelerator cannot be used (no adapter, driver refused, device lost): the message names the reason. */
export class DeviceError extends Error {
  constructor(
    message: string,
    readonly provider: Provider,
  ) {
    super(message);
    this.name = 'DeviceError';
  }
}

/** Bytes moved by the runs of a session since it was created (or since `reset`). */
export interface TransferStats {
  runs: number;
  /** CPU tensors fed to the device session (data feeds, prologue results, state fed from the host). */
  toDevice: number;
  /** CPU-bound outputs of the device session. */
  fromDevice: number;
}

const NO_HOST = '__lenslab_no_host';

/** Protobuf varint at `pos`: [value, next position]. */
function varint(b: Uint8Array, pos: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (;;) {
    const x = b[pos++];
    v += (x & 0x7f) * mul;
    if (x < 0x80) return [v, pos];
    mul *= 128;
  }
}

/** Call `f(field, start, end)` for each length-delimited field of a protobuf message in b[start, end). */
function fields(b: Uint8Array, start: number, end: number, f: (field: number, s: number, e: number) => void): void {
  let pos = start;
  while (pos < end) {
    const [tag, p1] = varint(b, pos);
    const wire = tag & 7;
    pos = p1;
    if (wire === 0) pos = varint(b, pos)[1];
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      const [len, p2] = varint(b, pos);
      f(tag >>> 3, p2, p2 + len);
      pos = p2 + len;
    } else throw new Error(`ONNX model: unsupported protobuf wire type ${wire}`);
  }
}

/** The graph output names of ONNX model bytes (ModelProto.graph.output[].name). */
export function modelOutputNames(b: Uint8Array): string[] {
  const names: string[] = [];
  fields(b, 0, b.length, (f, s, e) => {
    if (f !== 7) return; // graph
    fields(b, s, e, (gf, gs, ge) => {
      if (gf !== 12) return; // output ValueInfoProto
      fields(b, gs, ge, (vf, vs, ve) => {
        if (vf === 1) names.push(new TextDecoder().decode(b.subarray(vs, ve)));
      });
    });
  });
  return names;
}

function bytesOf(t: ort.Tensor): number {
  const n = t.dims.reduce((a, b) => a * b, 1);
  return n * (DTYPE_BYTES[t.type as DType] ?? 4);
}

/** True for a tensor that lives on the device (never call getData on it). */
export function onDevice(t: ort.Tensor): boolean {
  return t.location !== 'cpu' && t.location !== 'cpu-pinned';
}

/** The provider a SessionOptions resolves to: its provider, else LENSLAB_PROVIDER, else 'auto' (CUDA when installed). */
export function resolveProvider(o?: SessionOptions): Provider {
  const asked = o?.provider ?? providerFromEnv() ?? 'auto';
  return asked === 'auto' ? autoProvider() : asked;
}

export interface ProgramOptions {
  cacheDir?: string;
  key?: unknown;
  session?: SessionOptions;
  /** Outputs that stay on the device between runs (WebGPU only; elsewhere every output is a CPU tensor). */
  deviceOutputs?: readonly string[];
}

/** Lower and split `g` for the WebGPU provider (g is consumed). */
export function webgpuGraphs(g: Graph): SplitGraphs {
  lowerForWebGpu(g);
  return splitHostDevice(g);
}

/** A session for the graph `build` makes: Session.create on CPU / CUDA, a SplitSession on WebGPU. */
export async function openProgram(build: () => Graph, o: ProgramOptions = {}): Promise<RunSession> {
  const provider = resolveProvider(o.session);
  if (provider !== 'webgpu') return Session.create(modelSource(build, { cacheDir: o.cacheDir, key: o.key }), o.session);
  let parts: SplitGraphs | null = null;
  const split = () => (parts ??= webgpuGraphs(build()));
  const key = (part: string) => (o.key === undefined ? undefined : { webgpu: WEBGPU_GRAPH_VERSION, part, key: o.key });
  const device = modelSource(() => split().device, { cacheDir: o.cacheDir, key: key('device') });
  const host = modelSource(() => split().host ?? noHostGraph(), { cacheDir: o.cacheDir, key: key('host') });
  return SplitSession.create(host, device, o);
}

function noHostGraph(): Graph {
  const g = new Graph(NO_HOST);
  g.output(g.op1('Identity', [g.constant(0, 'float32', [])]), NO_HOST);
  return g;
}

export class SplitSession implements RunSession {
  readonly provider: Provider = 'webgpu';
  readonly fallback = null;
  readonly transfer: TransferStats = { runs: 0, toDevice: 0, fromDevice: 0 };
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  private readonly hostOutputs: Set<string>;

  private constructor(
    private readonly host: ort.InferenceSession | null,
    private readonly device: ort.InferenceSession,
    readonly source: string,
    private readonly deviceOutputs: ReadonlySet<string>,
  ) {
    this.hostOutputs = new Set(host ? host.outputNames : []);
    const inputs = new Set<string>();
    for (const n of host?.inputNames ?? []) if (!n.startsWith(SHAPE_INPUT_PREFIX)) inputs.add(n);
    for (const n of device.inputNames) if (!this.hostOutputs.has(n)) inputs.add(n);
    for (const n of host?.inputNames ?? [])
      if (n.startsWith(SHAPE_INPUT_PREFIX)) inputs.add(n.slice(SHAPE_INPUT_PREFIX.length));
    this.inputNames = [...inputs];
    const outs = [...device.outputNames];
    for (const n of this.hostOutputs) if (!device.inputNames.includes(n)) outs.push(n);
    this.outputNames = outs;
  }

  static async create(
    host: string | Uint8Array,
    device: string | Uint8Array,
    o: ProgramOptions = {},
  ): Promise<SplitSession> {
    const s = o.session ?? {};
    const source = typeof device === 'string' ? device : `<${device.byteLength} bytes>`;
    const common = {
      graphOptimizationLevel: s.optimization ?? 'all',
      executionMode: 'sequential' as const,
      logSeverityLevel: s.logSeverity ?? 3,
    };
    let hostSession: ort.InferenceSession | null = null;
    const load = (m: string | Uint8Array, opts: ort.InferenceSession.SessionOptions) =>
      typeof m === 'string' ? ort.InferenceSession.create(m, opts) : ort.InferenceSession.create(m, opts);
    try {
      hostSession = await load(host, {
        ...common,
        executionProviders: ['cpu'],
        intraOpNumThreads: 1,
        interOpNumThreads: 1,
      });
    } catch (e) {
      throw new Error(`cannot load the CPU prologue of ${source}: ${(e as Error).message}`);
    }
    if (hostSession.outputNames.length === 1 && hostSession.outputNames[0] === NO_HOST) {
      await hostSession.release();
      hostSession = null;
    }
    let dev: ort.InferenceSession;
    try {
      // ORT refuses a location for a name that is not an output: the names come from the model file itself (its
      // weights are in the external-data file, so this reads kilobytes)
      const locations: Record<string, ort.Tensor.DataLocation> = {};
      const outputs = new Set(modelOutputNames(typeof device === 'string' ? readFileSync(device) : device));
      for (const n of o.deviceOutputs ?? []) if (outputs.has(n)) locations[n] = 'gpu-buffer';
      dev = await load(device, {
        ...common,
        executionProviders: ['webgpu'],
        preferredOutputLocation: Object.keys(locations).length ? locations : 'cpu',
        extra: { session: { disable_cpu_ep_fallback: s.config?.['session.disable_cpu_ep_fallback'] ?? '1' } },
      });
    } catch (e) {
      await hostSession?.release();
      const msg = (e as Error).message.split('\n')[0];
      throw new DeviceError(`the WebGPU device cannot run ${source}: ${msg}`, 'webgpu');
    }
    return new SplitSession(hostSession, dev, source, new Set(o.deviceOutputs ?? []));
  }

  async run(feeds: Record<string, ort.Tensor>, fetch?: readonly string[]): Promise<Record<string, ort.Tensor>> {
    for (const name of this.inputNames)
      if (!(name in feeds)) throw new Error(`run ${this.source}: missing input '${name}'`);
    for (const name of Object.keys(feeds))
      if (!this.inputNames.includes(name))
        throw new Error(
          `run ${this.source}: '${name}' is not an input of this model (inputs: ${this.inputNames.join(', ')})`,
        );
    if (fetch)
      for (const name of fetch)
        if (!this.outputNames.includes(name))
          throw new Error(`run ${this.source}: '${name}' is not an output of this model`);
    let hostOut: Record<string, ort.Tensor> = {};
    if (this.host) {
      const hf: Record<string, ort.Tensor> = {};
      for (const n of this.host.inputNames) {
        if (n.startsWith(SHAPE_INPUT_PREFIX)) {
          const src = feeds[n.slice(SHAPE_INPUT_PREFIX.length)];
          hf[n] = tensor(
            'int64',
            [src.dims.length],
            BigInt64Array.from(src.dims, (d) => BigInt(d)),
          );
        } else {
          const t = feeds[n];
          if (onDevice(t))
            throw new Error(`run ${this.source}: input '${n}' is read by the CPU prologue and must be a CPU tensor`);
          hf[n] = t;
        }
      }
      hostOut = (await this.host.run(hf)) as Record<string, ort.Tensor>;
    }
    const df: Record<string, ort.Tensor> = {};
    let up = 0;
    for (const n of this.device.inputNames) {
      const t = feeds[n] ?? hostOut[n];
      if (!t) throw new Error(`run ${this.source}: no value for device input '${n}'`);
      if (!onDevice(t)) up += bytesOf(t);
      df[n] = t;
    }
    const want = (fetch ?? this.outputNames).filter((n) => this.device.outputNames.includes(n));
    let out: Record<string, ort.Tensor>;
    try {
      out = (await this.device.run(df, want)) as Record<string, ort.Tensor>;
    } catch (e) {
      // the inputs were checked above: what fails here is the device (lost, out of memory, driver reset)
      throw new DeviceError(
        `the WebGPU device failed running ${this.source}: ${(e as Error).message.split('\n')[0]}`,
        'webgpu',
      );
    }
    let down = 0;
    for (const [n, t] of Object.entries(out)) if (!this.deviceOutputs.has(n) && !onDevice(t)) down += bytesOf(t);
    for (const n of fetch ?? this.outputNames) if (!(n in out) && n in hostOut) out[n] = hostOut[n];
    this.transfer.runs++;
    this.transfer.toDevice += up;
    this.transfer.fromDevice += down;
    return out;
  }

  async dispose(): Promise<void> {
    await this.host?.release();
    await this.device.release();
  }
}

/**
 * Copies of device tensors into CPU memory through a WebGPU session of Identity nodes with CPU-bound outputs (the
 * one safe way back in onnxruntime-node 1.30). One session per set of shapes; tensors already on the CPU pass through.
 */
export class DeviceReader {
  private session: Promise<ort.InferenceSession> | null = null;
  private names: string[] = [];
  constructor(private readonly specs: readonly { dtype: DType; shape: readonly number[] }[]) {}

  async read(ts: readonly ort.Tensor[]): Promise<ort.Tensor[]> {
    if (ts.length !== this.specs.length)
      throw new Error(`device reader: ${ts.length} tensors for ${this.specs.length} slots`);
    if (!ts.some(onDevice)) return ts.slice();
    if (!this.session) {
      const g = new Graph('read_back');
      this.names = this.specs.map((s, i) => {
        const x = g.input(`x${i}`, s.dtype, s.shape);
        g.output(g.op1('Identity', [x]), `y${i}`);
        return `y${i}`;
      });
      const { serializeModel } = await import('../graph/serialize');
      this.session = ort.InferenceSession.create(serializeModel(g).model, {
        executionProviders: ['webgpu'],
        preferredOutputLocation: 'cpu',
        logSeverityLevel: 3,
      });
    }
    try {
      const s = await this.session;
      const feeds: Record<string, ort.Tensor> = {};
      ts.forEach((t, i) => (feeds[`x${i}`] = t));
      const out = await s.run(feeds);
      return this.names.map((n) => out[n]);
    } catch (e) {
      this.session = null;
      throw new DeviceError(
        `reading the training state back from the WebGPU device failed: ${(e as Error).message.split('\n')[0]}`,
        'webgpu',
      );
    }
  }

  async dispose(): Promise<void> {
    if (this.session) await (await this.session).release();
    this.session = null;
  }
}
