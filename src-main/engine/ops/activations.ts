// Activations: Gelu (exact and tanh approximation; the fused opset-20 op or a composition of elementwise ops), QuickGELU
// (CLIP), SiLU (LLaMA/Qwen2 MLP), Relu. Forward emitters and gradient rules side by side.
//
// ORT 1.30 CPU (measured): the Gelu op runs in float32; in float64 only approximate='tanh' runs (ORT expands the op
// into its function body, and there is no double Erf kernel). The exact-Gelu gradient uses Erf, so it is float32-only
// too. QuickGELU and SiLU are compositions (x * Sigmoid(a x)) whose gradients come from the Mul/Sigmoid rules.

import type { Value } from '../graph/builder';
import { add, erf, exp, mul, sigmoid, square, sub, tanh } from './elementwise';
import { aString, registerOp } from './registry';

export type GeluApproximation = 'none' | 'tanh';

export interface GeluOptions {
  /** 'none' (exact, erf) or 'tanh' (the GPT-2 / gelu_pytorch_tanh approximation). Default 'none'. */
  approximate?: GeluApproximation;
  /** Emit the fused ONNX Gelu op (opset >= 20; default) or the elementwise composition. */
  fused?: boolean;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_TANH_K = 0.044715;

/** GELU(x) = x * Phi(x), or its tanh approximation. */
export function gelu(x: Value, o: GeluOptions = {}): Value {
  const approx = o.approximate ?? 'none';
  if (approx !== 'none' && approx !== 'tanh')
    throw new Error(`gelu('${x.name}'): approximate must be 'none' or 'tanh' (got '${approx}')`);
  if ((o.fused ?? true) && x.graph.opset >= 20)
    return x.graph.op1('Gelu', [x], approx === 'tanh' ? { approximate: 'tanh' } : {});
  return geluComposite(x, approx);
}

/** GELU from elementwise ops: 0.5 x (1 + erf(x / sqrt 2)), or 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function geluComposite(x: Value, approximate: GeluApproximation = 'none'): Value {
  const half = mul(x, 0.5);
  if (approximate === 'tanh') {
    const inner = mul(add(x, mul(mul(x, square(x)), GELU_TANH_K)), SQRT_2_OVER_PI);
    return mul(half, add(tanh(inner), 1));
  }
  return mul(half, add(erf(mul(x, Math.SQRT1_2)), 1));
}

/**
 * erf(x) from elementwise ops that ORT runs in float64 (it has no double Erf kernel), for float64 graphs (gradient
 * checks of whole models): erf(x) = 2/sqrt(pi) exp(-x^2) x sum_n (2x^2)^n / (2n+1)!!, a series of positive terms
 * (no cancellation) in Horner form, 100 terms, the input clamped to [-6, 6] (erf(6) = 1 - 2e-17). Within 1e-15 of
 * erf everywhere; the gradient comes from the Mul/Add/Exp/Where rules (0 beyond the clamp).
 */
export function erfSeries(x: Value): Value {
  const g = x.graph;
  const lim = 6;
  const xc = g.op1('Where', [
    g.op1('Greater', [x, g.scalar(lim, x)]),
    g.scalar(lim, x),
    g.op1('Where', [g.op1('Less', [x, g.scalar(-lim, x)]), g.scalar(-lim, x), x]),
  ]);
  const y = square(xc);
  let r: Value = add(mul(y, 2 / 201), 1);
  for (let n = 99; n >= 1; n--) r = add(mul(mul(y, r), 2 / (2 * n + 1)), 1);
  return mul(mul(mul(exp(mul(y, -1)), xc), r), 2 / Math.sqrt(Math.PI));
}

/** Exact GELU for float64 graphs: 0.5 x (1 + erfSeries(x / sqrt 2)). */
export function geluFloat64(x: Value): Value {
  return mul(mul(x, 0.5), add(erfSeries(mul(x, Math.SQRT1_2)), 1));
}

/** QuickGELU (CLIP's "quick_gelu"): x * sigmoid(1.702 x). */
export function quickGelu(x: Value): Value {
  return mul(x, sigmoid(mul(x, 1.702)));
}

/** SiLU / Swish: x * sigmoid(x). */
export function silu(x: Value): Value {
  return mul(x, sigmoid(x));
}

export function relu(x: Value): Value {
  return x.graph.op1('Relu', [x]);
}

/** Apply an activation by its Hugging Face `hidden_act` name (exact GELU through erfSeries in float64 graphs). */
export function activation(name: string, x: Value): Value {
  switch (name) {
    case 'gelu':
      return x.dtype === 'float64' ? geluFloat64(x) : gelu(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast':
      return gelu(x, { approximate: 'tanh' });
    case 'quick_gelu':
      return quickGelu(x);
    case 'silu':
    case 'swish':
      return silu(x);
    case 'relu':
      return relu(x);
    default:
      throw new Error(
        `activation '${name}' is not supported (gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, quick_gelu, silu, swish, relu)`,
      );
  }
}

// ---- gradient rules -----------------------------------------------------------------------------------------------

registerOp('Gelu', {
  grad: (c) => {
    const x = c.inputs[0]!;
    const gy = c.gradOutputs[0]!;
    if (aString(c.attrs, 'approximate', 'none') === 'tanh') {
      // y = 0.5 x (1 + t), t = tanh(u), u = s (x + k x^3)
      // dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) s (1 + 3 k x^2)
      const x2 = square(x);
      const t = tanh(mul(add(x, mul(mul(x, x2), GELU_TANH_K)), SQRT_2_OVER_PI));
      const du = mul(add(mul(x2, 3 * GELU_TANH_K), 1), SQRT_2_OVER_PI);
      const d = add(mul(add(t, 1), 0.5), mul(mul(mul(x, 0.5), sub(1, square(t))), du));
      return [mul(gy, d)];
    }
    // dy/dx = Phi(x) + x phi(x) = 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi)
    const cdf = mul(add(erf(mul(x, Math.SQRT1_2)), 1), 0.5);
    const pdf = mul(exp(mul(square(x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
    return [mul(gy, add(cdf, mul(x, pdf)))];
  },
});

// dy/dx = 1 where x > 0, else 0 (0 at x = 0, as PyTorch).
registerOp('Relu', {
  grad: (c) => {
    const g = c.g;
    const y = c.outputs[0];
    const gy = c.gradOutputs[0]!;
    return [g.op1('Where', [g.op1('Greater', [y, g.scalar(0, y)]), gy, g.scalar(0, gy)])];
  },
});
