// Normalization ops: LayerNormalization (opset 17+) and RMSNormalization (opset 23), forward emitters and gradient
// rules side by side.
//
// ORT 1.30 CPU facts (measured): LayerNormalization runs float32 and float64 but only with stash_type=1, so its
// optional Mean/InvStdDev outputs are float32 even for float64 inputs; the backward reuses them when their dtype is
// the input's and recomputes the statistics in the input's dtype otherwise (float64 gradchecks stay exact).
// RMSNormalization (opset 23, single output) runs float32 and float64; its backward recomputes 1/rms (one reduction).

import type { Value } from '../graph/builder';
import type { Dim } from '../graph/builder';
import { normAxis } from '../graph/shape';
import { aFloat, aInt, registerOp, type GradContext } from './registry';
import { graphOf, knownShape, unbroadcast } from './util';

export interface NormOptions {
  /** Default 1e-5 (LayerNorm, CLIP/SigLIP use 1e-5 / 1e-6); RMS norm default 1e-6 (LLaMA/Qwen2 rms_norm_eps). */
  epsilon?: number;
  /** First normalized axis; the normalized axes are axis..rank-1. Default -1. */
  axis?: number;
}

/**
 * LayerNormalization over the trailing axes: (x - mean) / sqrt(var + eps) * scale + bias (biased variance).
 * `scale`/`bias` broadcast to the normalized shape (usually [D]). Also emits the Mean/InvStdDev outputs (float32,
 * keepdims) that the backward reuses; they cost one value per row.
 */
export function layerNorm(x: Value, scale: Value, bias: Value | null = null, o: NormOptions = {}): Value {
  const g = graphOf(x, scale, bias);
  if (g.opset < 17)
    throw new Error(`layerNorm('${x.name}'): LayerNormalization needs opset >= 17 (graph has ${g.opset})`);
  if (scale.dtype !== x.dtype || (bias && bias.dtype !== x.dtype))
    throw new Error(
      `layerNorm('${x.name}'): scale/bias dtype must be ${x.dtype} (got ${scale.dtype}${bias ? '/' + bias.dtype : ''})`,
    );
  return g.op(
    'LayerNormalization',
    [x, scale, bias],
    { axis: o.axis ?? -1, epsilon: o.epsilon ?? 1e-5 },
    { outputs: 3 },
  )[0];
}

/**
 * RMS normalization as in LLaMA/Qwen2: x / sqrt(mean(x^2 over the trailing axes) + eps) * weight, emitted as the opset-23
 * RMSNormalization op (ORT computes the statistics in float32 for float16 inputs: stash_type 1).
 */
export function rmsNorm(x: Value, weight: Value, o: NormOptions = {}): Value {
  const g = graphOf(x, weight);
  if (g.opset < 23) throw new Error(`rmsNorm('${x.name}'): RMSNormalization needs opset >= 23 (graph has ${g.opset})`);
  if (weight.dtype !== x.dtype)
    throw new Error(`rmsNorm('${x.name}'): weight dtype must be ${x.dtype} (got ${weight.dtype})`);
  return g.op1('RMSNormalization', [x, weight], { axis: o.axis ?? -1, epsilon: o.epsilon ?? 1e-6 });
}

// ---- shape rule: LayerNormalization's optional outputs ------------------------------------------------------------

function lnShape(ins: readonly (Value | null)[], attrs: Parameters<typeof aInt>[0], nOut: number) {
  const x = ins[0]!;
  const stash = aInt(attrs, 'stash_type', 1);
  const statDtype = stash === 1 ? 'float32' : x.dtype;
  const out: { dtype: Value['dtype']; shape: Dim[] | null }[] = [
    { dtype: x.dtype, shape: x.shape ? [...x.shape] : null },
  ];
  if (nOut > 1) {
    let st: Dim[] | null = null;
    if (x.shape) {
      const a = normAxis(aInt(attrs, 'axis', -1), x.shape.length);
      st = x.shape.map((d, i) => (i >= a ? 1 : d));
    }
    for (let i = 1; i < nOut; i++) out.push({ dtype: statDtype, shape: st });
  }
  return out;
}

// ---- gradient rules -----------------------------------------------------------------------------------------------

/** Normalized axes [a, rank) for a node's `axis` attribute. */
function normAxes(c: GradContext, what: string): number[] {
  const r = knownShape(c.inputs[0]!, what).length;
  const a = normAxis(aInt(c.attrs, 'axis', -1), r);
  return Array.from({ length: r - a }, (_, i) => a + i);
}

function rejectStatGrads(c: GradContext, what: string) {
  for (let i = 1; i < c.gradOutputs.length; i++)
    if (c.gradOutputs[i]) throw new Error(`${what}: gradients through the Mean/InvStdDev outputs are not supported`);
}

registerOp('LayerNormalization', {
  shape: lnShape,
  grad: (c) => {
    const g = c.g;
    const [x, scale, bias] = c.inputs as [Value, Value, Value | null];
    const gy = c.gradOutputs[0];
    rejectStatGrads(c, 'LayerNormalization grad');
    if (!gy) return [];
    const axes = g.ints(normAxes(c, 'LayerNormalization grad'));
    const eps = aFloat(c.attrs, 'epsilon', 1e-5);
    const mean1 = (v: Value) => g.op1('ReduceMean', [v, axes], { keepdims: 1 });
    const needXhat = c.needs[0] || c.needs[1];
    let xhat: Value | null = null;
    let invstd: Value | null = null;
    if (needXhat) {
      const [, m, is] = c.outputs;
      if (m && is && m.dtype === x.dtype && is.dtype === x.dtype) {
        invstd = is;
        xhat = g.op1('Mul', [g.op1('Sub', [x, m]), is]);
      } else {
        // Statistics in the input's dtype (ORT's stash outputs are float32 only).
        const xc = g.op1('Sub', [x, mean1(x)]);
        const v = mean1(g.op1('Mul', [xc, xc]));
        invstd = g.op1('Reciprocal', [g.op1('Sqrt', [g.op1('Add', [v, g.scalar(eps, x)])])]);
        xhat = g.op1('Mul', [xc, invstd]);
      }
    }
    let gx: Value | null = null;
    if (c.needs[0]) {
      // dx = invstd * (gxh - mean(gxh) - xhat * mean(gxh * xhat)), gxh = gy * scale
      const gxh = g.op1('Mul', [gy, scale]);
      const t = g.op1('Sub', [
        g.op1('Sub', [gxh, mean1(gxh)]),
        g.op1('Mul', [xhat!, mean1(g.op1('Mul', [gxh, xhat!]))]),
      ]);
      gx = g.op1('Mul', [t, invstd!]);
    }
    const gs = c.needs[1]
      ? unbroadcast(g, g.op1('Mul', [gy, xhat!]), x.shape, scale.shape, 'LayerNormalization grad')
      : null;
    const gb = bias && c.needs[2] ? unbroadcast(g, gy, x.shape, bias.shape, 'LayerNormalization grad') : null;
    return [gx, gs, gb];
  },
});

registerOp('RMSNormalization', {
  grad: (c) => {
    const g = c.g;
    const [x, scale] = c.inputs as [Value, Value];
    const gy = c.gradOutputs[0]!;
    const axes = g.ints(normAxes(c, 'RMSNormalization grad'));
    const eps = aFloat(c.attrs, 'epsilon', 1e-5);
    const mean1 = (v: Value) => g.op1('ReduceMean', [v, axes], { keepdims: 1 });
    // r = 1/sqrt(mean(x^2) + eps), xhat = x r
    const r = g.op1('Reciprocal', [g.op1('Sqrt', [g.op1('Add', [mean1(g.op1('Mul', [x, x])), g.scalar(eps, x)])])]);
    const xhat = g.op1('Mul', [x, r]);
    let gx: Value | null = null;
    if (c.needs[0]) {
      // dx = r * (gxh - xhat * mean(gxh * xhat)), gxh = gy * scale
      const gxh = g.op1('Mul', [gy, scale]);
      gx = g.op1('Mul', [g.op1('Sub', [gxh, g.op1('Mul', [xhat, mean1(g.op1('Mul', [gxh, xhat]))])]), r]);
    }
    const gs = c.needs[1]
      ? unbroadcast(g, g.op1('Mul', [gy, xhat]), x.shape, scale.shape, 'RMSNormalization grad')
      : null;
    return [gx, gs];
  },
});
