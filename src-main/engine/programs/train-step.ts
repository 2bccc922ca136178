// Training-step programs: forward + loss + backward (our autodiff) + global-norm clip + AdamW in one ONNX graph.
// Trainable parameters and their AdamW moments are graph INPUTS and their updated values are OUTPUTS, so a step
// executor can keep them between steps; frozen weights live inside the graph (initializers) or are data inputs,
// as the forward builder chooses.
//
// Three shapes of program:
//   buildTrainStep  fused: params, m, v, lr, step, data -> loss, grad_norm, new params, new m, new v
//   buildGradStep   micro-batch: params, acc grads, grad_scale, data -> loss, acc + grad_scale * grad
//   buildApplyStep  params, m, v, acc grads, lr, step -> grad_norm, new params, new m, new v
// (the last two implement gradient accumulation across micro-batches).

import { Graph, type Value } from '../graph/builder';
import type { DType } from '../graph/dtype';
import { gradients, type GradientOptions } from '../autodiff';
import { adamwScalars, adamwUpdate, type AdamWConfig } from '../optim/adamw';
import { clipByGlobalNorm, globalNorm } from '../optim/clip';

export interface ParamSpec {
  name: string;
  shape: readonly number[];
  dtype?: DType; // default float32
  /** Apply weight decay to this parameter (default true). */
  decay?: boolean;
}

export interface ForwardResult {
  /** Scalar training loss. */
  loss: Value;
  /** Extra outputs to expose (e.g. per-token losses, logits). */
  outputs?: Record<string, Value>;
}

/** Builds the forward pass in `g`. Trainable params are given as graph values; data inputs are created with g.input. */
export type ForwardBuilder = (g: Graph, params: Readonly<Record<string, Value>>) => ForwardResult;

export interface TrainProgramOptions {
  params: readonly ParamSpec[];
  forward: ForwardBuilder;
  adamw?: AdamWConfig;
  /** Also output each raw (pre-clip) gradient as `grad.<name>` (for tests and debugging). */
  outputGrads?: boolean;
  /** Clip gradients to this global L2 norm (none when undefined/null). */
  clipNorm?: number | null;
  /** Gradient checkpointing: the segment of each forward node, recomputed in the backward (autodiff.ts). */
  recompute?: GradientOptions['recompute'];
  opset?: number;
  name?: string;
}

/** Graph names of the step's inputs and outputs. */
export const stepNames = {
  param: (n: string) => `param.${n}`,
  m: (n: string) => `adam_m.${n}`,
  v: (n: string) => `adam_v.${n}`,
  acc: (n: string) => `grad_acc.${n}`,
  paramOut: (n: string) => `new.param.${n}`,
  mOut: (n: string) => `new.adam_m.${n}`,
  vOut: (n: string) => `new.adam_v.${n}`,
  accOut: (n: string) => `new.grad_acc.${n}`,
  lr: 'lr',
  step: 'step',
  gradScale: 'grad_scale',
  loss: 'loss',
  gradNorm: 'grad_norm',
  grad: (n: string) => `grad.${n}`,
} as const;

export interface StepProgram {
  kind: 'fused' | 'grad' | 'apply';
  graph: Graph;
  params: readonly ParamSpec[];
  /** Graph inputs the caller feeds each step (created by the forward builder). */
  dataInputs: string[];
  /** Extra outputs from ForwardResult.outputs. */
  extraOutputs: string[];
}

function paramInputs(g: Graph, params: readonly ParamSpec[]): Record<string, Value> {
  const dts = new Set(params.map((p) => p.dtype ?? 'float32'));
  if (dts.size > 1)
    throw new Error(`train step: all trainable parameters must share one dtype (got ${[...dts].join(', ')})`);
  const seen = new Set<string>();
  const out: Record<string, Value> = {};
  for (const p of params) {
    if (seen.has(p.name)) throw new Error(`train step: parameter '${p.name}' is listed twice`);
    seen.add(p.name);
    out[p.name] = g.input(stepNames.param(p.name), p.dtype ?? 'float32', p.shape);
  }
  return out;
}

function runForward(
  g: Graph,
  o: TrainProgramOptions,
  params: Record<string, Value>,
): { loss: Value; extra: string[]; grads: Value[]; dataInputs: string[] } {
  const before = new Set(g.inputs);
  const res = g.scope('fwd', () => o.forward(g, params));
  const dataInputs = g.inputs.filter((v) => !before.has(v)).map((v) => v.name);
  const loss = res.loss;
  if (loss.shape !== null && loss.shape.length !== 0)
    throw new Error(`train step: loss must be a scalar, got shape [${loss.shape.join(',')}]`);
  g.output(loss, stepNames.loss);
  const extra: string[] = [];
  for (const [k, v] of Object.entries(res.outputs ?? {})) {
    g.output(v, k);
    extra.push(k);
  }
  const grads = gradients(
    loss,
    o.params.map((p) => params[p.name]),
    { recompute: o.recompute },
  );
  if (o.outputGrads) o.params.forEach((p, i) => g.output(grads[i], stepNames.grad(p.name)));
  return { loss, extra, grads, dataInputs };
}

function scalarInputs(g: Graph): { lr: Value; step: Value } {
  return { lr: g.input(stepNames.lr, 'float32', []), step: g.input(stepNames.step, 'float32', []) };
}

function applyUpdates(
  g: Graph,
  o: TrainProgramOptions,
  params: Record<string, Value>,
  grads: Value[],
  lr: Value,
  step: Value,
): void {
  let gs = grads;
  let norm: Value;
  if (o.clipNorm !== undefined && o.clipNorm !== null) {
    const c = clipByGlobalNorm(g, grads, o.clipNorm);
    gs = c.grads;
    norm = c.norm;
  } else norm = g.scope('clip', () => globalNorm(g, grads));
  g.output(norm, stepNames.gradNorm);
  const s = adamwScalars(g, lr, step, o.adamw, o.params[0].dtype ?? 'float32');
  o.params.forEach((p, i) => {
    const dt = p.dtype ?? 'float32';
    const m = g.input(stepNames.m(p.name), dt, p.shape);
    const v = g.input(stepNames.v(p.name), dt, p.shape);
    const u = g.scope(`adamw/${p.name}`, () =>
      adamwUpdate(g, s, params[p.name], gs[i], m, v, o.adamw, p.decay ?? true),
    );
    g.output(u.p, stepNames.paramOut(p.name));
    g.output(u.m, stepNames.mOut(p.name));
    g.output(u.v, stepNames.vOut(p.name));
  });
}

/** Fused step: forward + backward + clip + AdamW. */
export function buildTrainStep(o: TrainProgramOptions): StepProgram {
  if (o.params.length === 0) throw new Error('train step: no trainable parameters');
  const g = new Graph(o.name ?? 'train_step', { opset: o.opset });
  const params = paramInputs(g, o.params);
  const { lr, step } = scalarInputs(g);
  const f = runForward(g, o, params);
  applyUpdates(g, o, params, f.grads, lr, step);
  return { kind: 'fused', graph: g, params: o.params, dataInputs: f.dataInputs, extraOutputs: f.extra };
}

/** Micro-batch step for gradient accumulation: acc_out = acc_in + grad_scale * grad. */
export function buildGradStep(o: TrainProgramOptions): StepProgram {
  if (o.params.length === 0) throw new Error('grad step: no trainable parameters');
  const g = new Graph(o.name ?? 'grad_step', { opset: o.opset });
  const params = paramInputs(g, o.params);
  const scale = g.input(stepNames.gradScale, 'float32', []);
  const f = runForward(g, o, params);
  g.scope('accumulate', () =>
    o.params.forEach((p, i) => {
      const dt = p.dtype ?? 'float32';
      const acc = g.input(stepNames.acc(p.name), dt, p.shape);
      const sc = dt === 'float32' ? scale : g.op1('Cast', [scale], { to: 11 });
      g.output(g.op1('Add', [acc, g.op1('Mul', [f.grads[i], sc])]), stepNames.accOut(p.name));
    }),
  );
  return { kind: 'grad', graph: g, params: o.params, dataInputs: f.dataInputs, extraOutputs: f.extra };
}

/** Apply accumulated gradients: clip + AdamW. */
export function buildApplyStep(o: Omit<TrainProgramOptions, 'forward'>): StepProgram {
  const g = new Graph(o.name ? `${o.name}_apply` : 'apply_step', { opset: o.opset });
  const params = paramInputs(g, o.params);
  const { lr, step } = scalarInputs(g);
  const grads = o.params.map((p) => g.input(stepNames.acc(p.name), p.dtype ?? 'float32', p.shape));
  applyUpdates(
    g,
    {
      ...o,
      forward: () => {
        throw new Error('unused');
      },
    },
    params,
    grads,
    lr,
    step,
  );
  return { kind: 'apply', graph: g, params: o.params, dataInputs: [], extraOutputs: [] };
}
