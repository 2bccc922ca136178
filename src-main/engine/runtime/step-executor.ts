// Step executor: owns the training sessions and keeps trainable parameters and AdamW moments as ORT tensors between
// steps (each step's outputs become the next step's inputs; nothing is copied back to JS unless asked).
//
//   accumulation 1:  one fused session (forward + backward + clip + AdamW)
//   accumulation >1: a grad session per micro-batch (acc += scale * grad) and an apply session (clip + AdamW)

import * as ort from 'onnxruntime-node';
import type { TypedArray } from '../graph/dtype';
import {
  buildApplyStep,
  buildGradStep,
  buildTrainStep,
  stepNames,
  type ParamSpec,
  type TrainProgramOptions,
} from '../programs/train-step';
import { buildScore, type ScoreProgramOptions } from '../programs/score';
import { DeviceReader, onDevice, openProgram, type RunSession } from './device-session';
import type { SessionOptions } from './session';
import { tensor } from './tensor';
import { PhaseTimer } from '../../util/phase-timer';

export type Feeds = Record<string, ort.Tensor>;

export interface StepExecutorOptions extends TrainProgramOptions {
  /** Micro-batches per optimizer step (default 1 = fused graph). */
  accumulation?: number;
  session?: SessionOptions;
  /** Compiled-graph cache: folder and a key describing (architecture, shapes, options). */
  cacheDir?: string;
  cacheKey?: unknown;
  /**
   * On an accelerator, keep parameters, moments and accumulators in device memory between steps (default true);
   * false copies them to the host and back every step (the benchmarks' baseline).
   */
  keepOnDevice?: boolean;
  /** Optional eval program over the same params. */
  score?: Omit<ScoreProgramOptions, 'params'>;
}

export interface StepResult {
  /** Scale-weighted sum of micro-batch losses (the mean with default scales). */
  loss: number;
  microLosses: number[];
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Extra forward outputs of the last micro-batch. */
  outputs: Record<string, ort.Tensor>;
  /** Raw gradients by parameter name (fused step built with outputGrads only). */
  grads: Record<string, ort.Tensor>;
}

export interface ExecutorState {
  /** Optimizer steps done. */
  t: number;
  params: Record<string, Float32Array | Float64Array>;
  m: Record<string, Float32Array | Float64Array>;
  v: Record<string, Float32Array | Float64Array>;
}

function n(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function scalarOf(t: ort.Tensor): number {
  return Number((t.data as ArrayLike<number>)[0]);
}

export class StepExecutor {
  private params = new Map<string, ort.Tensor>();
  private m = new Map<string, ort.Tensor>();
  private v = new Map<string, ort.Tensor>();
  /** Optimizer steps done so far (the next step uses t + 1 for bias correction). */
  t = 0;
  /**
   * Wall time of each step's phases: 'step.prep' (feeds assembled and checked in JS), 'step.run' (inside ORT:
   * forward, backward, clip, AdamW), 'step.post' (updated state taken, loss and norm read).
   */
  readonly phases = new PhaseTimer();

  private constructor(
    readonly specs: readonly ParamSpec[],
    readonly accumulation: number,
    private fused: RunSession | null,
    private grad: RunSession | null,
    private apply: RunSession | null,
    private scorer: RunSession | null,
    readonly dataInputs: readonly string[],
    readonly extraOutputs: readonly string[],
  ) {}

  static async create(
    o: StepExecutorOptions,
    init: Record<string, TypedArray | ArrayLike<number>>,
  ): Promise<StepExecutor> {
    const acc = o.accumulation ?? 1;
    if (!Number.isInteger(acc) || acc < 1)
      throw new Error(`step executor: accumulation must be a positive integer, got ${acc}`);
    const key = (kind: string) =>
      o.cacheKey === undefined
        ? undefined
        : { kind, key: o.cacheKey, adamw: o.adamw ?? null, clip: o.clipNorm ?? null, params: o.params };
    // parameters, moments and accumulators are outputs fed back as the next run's inputs: on an accelerator they stay
    // in device memory between steps (device-session.ts), only the loss, grad norm and extra outputs come to the CPU
    const resident = o.params.flatMap((p) => [
      stepNames.paramOut(p.name),
      stepNames.mOut(p.name),
      stepNames.vOut(p.name),
      stepNames.accOut(p.name),
    ]);
    const src = (kind: string, build: () => import('../graph/builder').Graph) =>
      openProgram(build, {
        cacheDir: o.cacheDir,
        key: key(kind),
        session: o.session,
        deviceOutputs: kind === 'score' || o.keepOnDevice === false ? [] : resident,
      });
    let fused: RunSession | null = null;
    let grad: RunSession | null = null;
    let apply: RunSession | null = null;
    let scorer: RunSession | null = null;
    let dataInputs: string[] = [];
    let extra: string[] = [];
    const program = (p: { dataInputs: string[]; extraOutputs: string[] }) => {
      dataInputs = p.dataInputs;
      extra = p.extraOutputs;
    };
    if (acc === 1) {
      fused = await src('fused', () => {
        const p = buildTrainStep(o);
        program(p);
        return p.graph;
      });
    } else {
      grad = await src('grad', () => {
        const p = buildGradStep(o);
        program(p);
        return p.graph;
      });
      apply = await src('apply', () => buildApplyStep(o).graph);
    }
    if (o.score) scorer = await src('score', () => buildScore({ ...o.score!, params: o.params }).graph);
    const main = fused ?? grad!;
    const fixed = new Set<string>(
      o.params.flatMap((p) => [
        stepNames.param(p.name),
        stepNames.m(p.name),
        stepNames.v(p.name),
        stepNames.acc(p.name),
      ]),
    );
    fixed.add(stepNames.lr).add(stepNames.step).add(stepNames.gradScale);
    if (dataInputs.length === 0) dataInputs = main.inputNames.filter((x) => !fixed.has(x)); // cache hit: read from the session
    if (extra.length === 0)
      extra = main.outputNames.filter(
        (x) => x !== stepNames.loss && x !== stepNames.gradNorm && !x.startsWith('new.') && !x.startsWith('grad.'),
      );
    const ex = new StepExecutor(o.params, acc, fused, grad, apply, scorer, dataInputs, extra);
    for (const p of o.params) {
      const d = init[p.name];
      if (!d) throw new Error(`step executor: no initial value for parameter '${p.name}'`);
      if (d.length !== n(p.shape))
        throw new Error(
          `step executor: parameter '${p.name}' has ${d.length} values, shape [${p.shape.join(',')}] needs ${n(p.shape)}`,
        );
      const dt = p.dtype ?? 'float32';
      ex.params.set(
        p.name,
        tensor(
          dt,
          p.shape,
          dt === 'float64' ? Float64Array.from(d as ArrayLike<number>) : Float32Array.from(d as ArrayLike<number>),
        ),
      );
      ex.m.set(p.name, tensor(dt, p.shape));
      ex.v.set(p.name, tensor(dt, p.shape));
    }
    return ex;
  }

  private paramFeeds(): Feeds {
    const f: Feeds = {};
    for (const p of this.specs) f[stepNames.param(p.name)] = this.params.get(p.name)!;
    return f;
  }
  private optFeeds(lr: number): Feeds {
    const f: Feeds = {
      [stepNames.lr]: tensor('float32', [], [lr]),
      [stepNames.step]: tensor('float32', [], [this.t + 1]),
    };
    for (const p of this.specs) {
      f[stepNames.m(p.name)] = this.m.get(p.name)!;
      f[stepNames.v(p.name)] = this.v.get(p.name)!;
    }
    return f;
  }
  private takeUpdates(r: Record<string, ort.Tensor>): void {
    for (const m of [this.params, this.m, this.v]) for (const t of m.values()) if (onDevice(t)) t.dispose();
    for (const p of this.specs) {
      this.params.set(p.name, r[stepNames.paramOut(p.name)]);
      this.m.set(p.name, r[stepNames.mOut(p.name)]);
      this.v.set(p.name, r[stepNames.vOut(p.name)]);
    }
  }
  private dataSet: Set<string> | null = null;
  private checkData(feeds: Feeds, i: number): void {
    for (const k of this.dataInputs)
      if (!(k in feeds)) throw new Error(`train step: micro-batch ${i} lacks input '${k}'`);
    const known = (this.dataSet ??= new Set(this.dataInputs));
    for (const k of Object.keys(feeds))
      if (!known.has(k))
        throw new Error(
          `train step: micro-batch ${i} has unknown input '${k}' (inputs: ${this.dataInputs.join(', ')})`,
        );
  }

  /**
   * One optimizer step over 1..accumulation micro-batches at learning rate `lr`. `scales` weight each micro-batch's
   * gradient (default 1/count, i.e. the mean).
   */
  async step(batches: Feeds | Feeds[], lr: number, scales?: number[]): Promise<StepResult> {
    const list = Array.isArray(batches) ? batches : [batches];
    if (list.length === 0) throw new Error('train step: no micro-batches');
    if (list.length > this.accumulation)
      throw new Error(`train step: ${list.length} micro-batches, executor built for accumulation ${this.accumulation}`);
    if (!Number.isFinite(lr)) throw new Error(`train step: lr must be finite, got ${lr}`);
    const t0 = performance.now();
    const sc = scales ?? list.map(() => 1 / list.length);
    if (sc.length !== list.length) throw new Error(`train step: ${sc.length} scales for ${list.length} micro-batches`);
    list.forEach((b, i) => this.checkData(b, i));
    if (this.fused) {
      if (sc[0] !== 1) throw new Error('train step: fused step (accumulation 1) takes no gradient scale');
      const feeds = { ...list[0], ...this.paramFeeds(), ...this.optFeeds(lr) };
      const t1 = performance.now();
      const r = await this.fused.run(feeds);
      const t2 = performance.now();
      this.takeUpdates(r);
      this.t++;
      const loss = scalarOf(r[stepNames.loss]);
      const grads: Record<string, ort.Tensor> = {};
      for (const p of this.specs) if (stepNames.grad(p.name) in r) grads[p.name] = r[stepNames.grad(p.name)];
      const out = {
        loss,
        microLosses: [loss],
        gradNorm: scalarOf(r[stepNames.gradNorm]),
        outputs: pick(r, this.extraOutputs),
        grads,
      };
      this.phases.add('step.prep', t1 - t0);
      this.phases.add('step.run', t2 - t1);
      this.phases.add('step.post', performance.now() - t2);
      return out;
    }
    let acc: Feeds = {};
    for (const p of this.specs) acc[stepNames.acc(p.name)] = tensor(p.dtype ?? 'float32', p.shape);
    const losses: number[] = [];
    let last: Record<string, ort.Tensor> = {};
    let runMs = 0;
    for (let i = 0; i < list.length; i++) {
      const feeds = { ...list[i], ...this.paramFeeds(), ...acc, [stepNames.gradScale]: tensor('float32', [], [sc[i]]) };
      const tr = performance.now();
      const r = await this.grad!.run(feeds);
      runMs += performance.now() - tr;
      const next: Feeds = {};
      for (const p of this.specs) next[stepNames.acc(p.name)] = r[stepNames.accOut(p.name)];
      for (const t of Object.values(acc)) if (onDevice(t)) t.dispose();
      acc = next;
      losses.push(scalarOf(r[stepNames.loss]));
      last = r;
    }
    const applyFeeds = { ...this.paramFeeds(), ...this.optFeeds(lr), ...acc };
    const ta = performance.now();
    const r = await this.apply!.run(applyFeeds);
    const tb = performance.now();
    runMs += tb - ta;
    for (const t of Object.values(acc)) if (onDevice(t)) t.dispose();
    this.takeUpdates(r);
    this.t++;
    this.phases.add('step.run', runMs);
    this.phases.add('step.prep', tb - t0 - runMs);
    this.phases.add('step.post', performance.now() - tb);
    return {
      loss: losses.reduce((a, l, i) => a + l * sc[i], 0),
      microLosses: losses,
      gradNorm: scalarOf(r[stepNames.gradNorm]),
      outputs: pick(last, this.extraOutputs),
      grads: {},
    };
  }

  /** Run the score program (per-sample losses) with the current parameters. */
  async score(feeds: Feeds): Promise<Record<string, ort.Tensor>> {
    if (!this.scorer) throw new Error('step executor: created without a score program');
    return this.scorer.run({ ...feeds, ...this.paramFeeds() });
  }

  /** Whether parameters or moments are held in device memory now (between steps on an accelerator). */
  get resident(): boolean {
    return [this.params, this.m, this.v].some((m) => [...m.values()].some(onDevice));
  }

  /**
   * Bring device-resident parameters and moments to the CPU (through CPU-bound outputs of a read-back session, never
   * by reading a device tensor); the next step uploads them again. Call before state() / paramTensors() on an
   * accelerator: checkpoints, evaluations, the final export. A no-op on the CPU.
   */
  async sync(): Promise<void> {
    if (!this.resident) return;
    const order = this.specs.flatMap(
      (p) =>
        [
          [this.params, p],
          [this.m, p],
          [this.v, p],
        ] as const,
    );
    this.reader ??= new DeviceReader(order.map(([, p]) => ({ dtype: p.dtype ?? 'float32', shape: p.shape })));
    const cpu = await this.reader.read(order.map(([m, p]) => m.get(p.name)!));
    order.forEach(([m, p], i) => {
      const old = m.get(p.name)!;
      m.set(p.name, cpu[i]);
      if (old !== cpu[i] && onDevice(old)) old.dispose();
    });
  }
  private reader: DeviceReader | null = null;

  private assertOnHost(what: string): void {
    if (this.resident) throw new Error(`step executor: ${what} while the state is on the device; await sync() first`);
  }

  /** Current parameter tensors (ORT tensors; do not mutate). */
  paramTensors(): Record<string, ort.Tensor> {
    this.assertOnHost('paramTensors()');
    return Object.fromEntries(this.params);
  }

  /** Copy of params and optimizer state, for checkpoints. */
  state(): ExecutorState {
    this.assertOnHost('state()');
    const copy = (m: Map<string, ort.Tensor>) =>
      Object.fromEntries([...m].map(([k, t]) => [k, (t.data as Float32Array | Float64Array).slice()]));
    return { t: this.t, params: copy(this.params), m: copy(this.m), v: copy(this.v) };
  }

  /** Restore a state() (resume from a checkpoint). */
  loadState(s: ExecutorState): void {
    for (const m of [this.params, this.m, this.v]) for (const t of m.values()) if (onDevice(t)) t.dispose();
    for (const p of this.specs) {
      const dt = p.dtype ?? 'float32';
      for (const [what, src, dst] of [
        ['params', s.params, this.params],
        ['m', s.m, this.m],
        ['v', s.v, this.v],
      ] as const) {
        const d = src[p.name];
        if (!d || d.length !== n(p.shape)) throw new Error(`loadState: ${what}['${p.name}'] missing or of wrong size`);
        dst.set(p.name, tensor(dt, p.shape, dt === 'float64' ? Float64Array.from(d) : Float32Array.from(d)));
      }
    }
    this.t = s.t;
  }

  /** The sessions' provider ('webgpu' when the programs run on the WebGPU device). */
  get provider(): string {
    return (this.fused ?? this.grad)!.provider;
  }

  /** Host<->device bytes of the step sessions so far (accelerators only; null on the CPU). */
  transfer(): { runs: number; toDevice: number; fromDevice: number } | null {
    const ss = [this.fused, this.grad, this.apply].filter(
      (s): s is RunSession => !!s && s.provider !== 'cpu' && 'transfer' in s,
    );
    if (ss.length === 0) return null;
    const t = { runs: 0, toDevice: 0, fromDevice: 0 };
    for (const s of ss) {
      const x = (s as unknown as { transfer: typeof t }).transfer;
      t.runs += x.runs;
      t.toDevice += x.toDevice;
      t.fromDevice += x.fromDevice;
    }
    return t;
  }

  async dispose(): Promise<void> {
    for (const m of [this.params, this.m, this.v]) for (const t of m.values()) if (onDevice(t)) t.dispose();
    await this.reader?.dispose();
    for (const s of [this.fused, this.grad, this.apply, this.scorer]) if (s) await s.dispose();
  }
}

function pick(r: Record<string, ort.Tensor>, names: readonly string[]): Record<string, ort.Tensor> {
  const o: Record<string, ort.Tensor> = {};
  for (const k of names) if (k in r) o[k] = r[k];
  return o;
}
