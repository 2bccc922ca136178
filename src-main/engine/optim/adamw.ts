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
  /** lr / (1 - b1^t) */
  stepSize: Value;
  /** 1 / sqrt(1 - b2^t) */
  invSqrtBc2: Value;
  /** lr * wd */
  lrWd: Value;
}

/**
 * Scalars in `dtype` (the parameters' dtype). They are computed in float64 and cast once: in float32,
 * 1 - 0.999^t loses ~1e-5 relative accuracy, which would bias every parameter's update the same way.
 */
export function adamwScalars(
  g: Graph,
  lr: Value,
  t: Value,
  cfg: AdamWConfig = {},
  dtype: DType = lr.dtype,
): AdamWScalars {
  const c = { ...ADAMW_DEFAULTS, ...cfg };
  const F64 = ONNX_DTYPE.float64;
  return g.scope('adamw', () => {
    const k = (x: number) => g.scalar(x, 'float64');
    const t64 = t.dtype === 'float64' ? t : g.op1('Cast', [t], { to: F64 });
    const lr64 = lr.dtype === 'float64' ? lr : g.op1('Cast', [lr], { to: F64 });
    const bc1 = g.op1('Sub', [k(1), g.op1('Pow', [k(c.beta1), t64])]);
    const bc2 = g.op1('Sub', [k(1), g.op1('Pow', [k(c.beta2), t64])]);
    const out = (v: Value) => (dtype === 'float64' ? v : g.op1('Cast', [v], { to: ONNX_DTYPE[dtype] }));
    return {
      stepSize: out(g.op1('Div', [lr64, bc1])),
      invSqrtBc2: out(g.op1('Reciprocal', [g.op1('Sqrt', [bc2])])),
      lrWd: out(g.op1('Mul', [lr64, k(c.weightDecay)])),
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
  // p - lr*wd*p - upd  (same as p*(1 - lr*wd) - upd, without rounding 1 - lr*wd)
  const total = decay && c.weightDecay !== 0 ? g.op1('Add', [upd, g.op1('Mul', [p, s.lrWd])]) : upd;
  return { p: g.op1('Sub', [p, total]), m: m2, v: v2 };
}
