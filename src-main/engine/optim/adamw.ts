// AdamW as graph emitters, with PyTorch's formula (torch.optim.AdamW, amsgrad=False):
//   p <- p * (1 - lr * wd)                       (decoupled weight decay)
//   m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2
//   p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// `t` is the 1-based optimizer step, `lr` the learning rate of this step; both are scalar graph values (fed per step).

import type { Graph, Value } from '../graph/builder';
import { ONNX_DTYPE, type DType } from '../graph/dtype';

export interface AdamWConfig {
  beta1?: number; // default 0.9
  beta2?: number; // default 0.999
  eps?: number; // default 1e-8
  weightDecay?: number; // default 0.01 (PyTorch's AdamW default)
}

export const ADAMW_DEFAULTS: Required<AdamWConfig> = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

/** Per-step scalars shared by all parameters (computed once per graph). */
export interface AdamWScalars {
  lr: Value;
  /** lr / (1 - b1^t) */
  stepSize: Value;
  /** 1 / sqrt(1 - b2^t) */
  invSqrtBc2: Value;
  /** 1 - lr * wd (for decayed params) */
  decay: Value;
}

/** Scalars in `dtype` (the parameters' dtype; lr and t are cast when they differ). */
export function adamwScalars(g: Graph, lr: Value, t: Value, cfg: AdamWConfig = {}, dtype: DType = lr.dtype): AdamWScalars {
  const c = { ...ADAMW_DEFAULTS, ...cfg };
  const dt = dtype;
  const to = ONNX_DTYPE[dt];
  return g.scope('adamw', () => {
    const tt = t.dtype === dt ? t : g.op1('Cast', [t], { to });
    lr = lr.dtype === dt ? lr : g.op1('Cast', [lr], { to });
    const bc1 = g.op1('Sub', [g.scalar(1, dt), g.op1('Pow', [g.scalar(c.beta1, dt), tt])]);
    const bc2 = g.op1('Sub', [g.scalar(1, dt), g.op1('Pow', [g.scalar(c.beta2, dt), tt])]);
    return {
      lr,
      stepSize: g.op1('Div', [lr, bc1]),
      invSqrtBc2: g.op1('Reciprocal', [g.op1('Sqrt', [bc2])]),
      decay: g.op1('Sub', [g.scalar(1, dt), g.op1('Mul', [lr, g.scalar(c.weightDecay, dt)])]),
    };
  });
}

/**
 * One AdamW update of parameter `p` with gradient `grad` and moments `m`, `v`. Returns the new p, m, v.
 * `decay: false` skips weight decay for this parameter (e.g. norms and biases, when the caller wants that).
 */
export function adamwUpdate(
  g: Graph,
  s: AdamWScalars,
  p: Value,
  grad: Value,
  m: Value,
  v: Value,
  cfg: AdamWConfig = {},
  decay = true,
): { p: Value; m: Value; v: Value } {
  const c = { ...ADAMW_DEFAULTS, ...cfg };
  const dt = p.dtype;
  const k = (x: number) => g.scalar(x, dt);
  const m2 = g.op1('Add', [g.op1('Mul', [m, k(c.beta1)]), g.op1('Mul', [grad, k(1 - c.beta1)])]);
  const v2 = g.op1('Add', [g.op1('Mul', [v, k(c.beta2)]), g.op1('Mul', [g.op1('Mul', [grad, grad]), k(1 - c.beta2)])]);
  const denom = g.op1('Add', [g.op1('Mul', [g.op1('Sqrt', [v2]), s.invSqrtBc2]), k(c.eps)]);
  const upd = g.op1('Mul', [g.op1('Div', [m2, denom]), s.stepSize]);
  const pd = decay && c.weightDecay !== 0 ? g.op1('Mul', [p, s.decay]) : p;
  return { p: g.op1('Sub', [pd, upd]), m: m2, v: v2 };
}
