// Finite-difference gradient check for op gradient rules.
//
// Builds the op graph (float64 by default), reduces its outputs to a scalar with a fixed random projection
// L = sum_i <out_i, R_i>, asks autodiff for dL/dx of every differentiable input, and compares each element with the
// central difference (L(x + eps e_k) - L(x - eps e_k)) / 2 eps evaluated by ORT on the same graph.

import assert from 'node:assert/strict';
import { Graph, Value } from '../../src-main/engine/graph/builder';
import type { DType } from '../../src-main/engine/graph/dtype';
import { isFloat } from '../../src-main/engine/graph/dtype';
import { serializeModel } from '../../src-main/engine/graph/serialize';
import { gradients } from '../../src-main/engine/autodiff';
import { Session } from '../../src-main/engine/runtime/session';
import { tensor, toFloat64, ort } from '../../src-main/engine/runtime/tensor';
import { mulberry32 } from '../../src-main/util/mulberry32';

export interface GradcheckInput {
  name: string;
  shape: number[];
  /** Default: the check's float dtype. Integer/bool inputs are never differentiated. */
  dtype?: DType;
  /** Fixed values (e.g. indices, masks); default uniform random in `range`. */
  values?: ArrayLike<number | bigint | boolean>;
  /** Range for random values (default [-1, 1]). */
  range?: [number, number];
  /** Differentiate with respect to this input (default: true for float inputs). */
  grad?: boolean;
}

export interface GradcheckSpec {
  inputs: GradcheckInput[];
  /** Build the op(s) under test from the graph inputs; return the output(s). */
  build: (g: Graph, xs: Value[]) => Value | Value[];
  /** Float dtype of float inputs (default float64; use float32 where ORT has no double kernel). */
  dtype?: 'float64' | 'float32';
  eps?: number;
  rtol?: number;
  atol?: number;
  seed?: number;
  /** Check at most this many elements per input (random subset beyond it). Default 48. */
  maxElems?: number;
  opset?: number;
}

export interface GradcheckResult {
  checked: number;
  maxAbsErr: number;
  maxRelErr: number;
}

/** Deterministic PRNG (mulberry32). */
export const rng = mulberry32;

export async function gradcheck(spec: GradcheckSpec): Promise<GradcheckResult> {
  const fdt: DType = spec.dtype ?? 'float64';
  const is64 = fdt === 'float64';
  const eps = spec.eps ?? (is64 ? 1e-6 : 1e-2);
  const rtol = spec.rtol ?? (is64 ? 1e-5 : 2e-2);
  const atol = spec.atol ?? (is64 ? 1e-7 : 2e-3);
  const rand = rng(spec.seed ?? 1234);

  // Input values.
  const feeds: Record<string, ort.Tensor> = {};
  const host: Record<string, Float64Array | null> = {};
  const dtypes = spec.inputs.map((i) => i.dtype ?? fdt);
  spec.inputs.forEach((inp, k) => {
    const n = inp.shape.reduce((a, b) => a * b, 1);
    const dt = dtypes[k];
    if (inp.values) {
      feeds[inp.name] = tensor(dt, inp.shape, inp.values);
      host[inp.name] = isFloat(dt) ? Float64Array.from(inp.values as ArrayLike<number>, Number) : null;
    } else {
      const [lo, hi] = inp.range ?? [-1, 1];
      const v = new Float64Array(n).map(() => lo + (hi - lo) * rand());
      if (!isFloat(dt)) throw new Error(`gradcheck: integer input '${inp.name}' needs explicit values`);
      // round to the float dtype so the perturbation base is exact
      const vv = is64 ? v : Float64Array.from(new Float32Array(v));
      host[inp.name] = vv;
      feeds[inp.name] = tensor(dt, inp.shape, is64 ? vv : new Float32Array(vv));
    }
  });

  const buildBase = () => {
    const g = new Graph('gradcheck', { opset: spec.opset });
    const xs = spec.inputs.map((inp, k) => g.input(inp.name, dtypes[k], inp.shape));
    const outs = spec.build(g, xs);
    return { g, xs, outs: Array.isArray(outs) ? outs : [outs] };
  };

  // Pass 1: learn the output shapes by running the forward graph.
  const shapes: number[][] = [];
  {
    const { g, outs } = buildBase();
    outs.forEach((o, i) => g.output(o, `out${i}`));
    const s = await Session.create(serializeModel(g).model, { threads: 1, optimization: 'disabled' });
    const r = await s.run(feeds);
    outs.forEach((_, i) => shapes.push([...r[`out${i}`].dims]));
    await s.dispose();
  }

  // Pass 2: scalar projection + gradients.
  const { g, xs, outs } = buildBase();
  // L = sum_i <out_i, R_i>, so dL/dout_i = R_i: the projections are the seeds (the check does not depend on the
  // ReduceSum rule).
  const Rs = outs.map((o, i) => {
    const n = shapes[i].reduce((a, b) => a * b, 1);
    const r = new Float64Array(n).map(() => rand() * 2 - 1);
    return o.dtype === 'float64' ? g.constant(r, 'float64', shapes[i]) : g.constant(new Float32Array(r), 'float32', shapes[i]);
  });
  const terms = outs.map((o, i) => {
    const p = g.op1('ReduceSum', [g.op1('Mul', [o, Rs[i]])], { keepdims: 0 });
    return o.dtype === 'float64' ? p : g.op1('Cast', [p], { to: 11 });
  });
  const L = terms.length === 1 ? terms[0] : g.op1('Sum', terms);
  g.output(L, 'loss');
  const wrtIdx = spec.inputs.map((inp, k) => (inp.grad ?? isFloat(dtypes[k]) ? k : -1)).filter((k) => k >= 0);
  const grads = gradients(outs, wrtIdx.map((k) => xs[k]), { seeds: Rs });
  grads.forEach((gv, j) => g.output(gv, `grad_${spec.inputs[wrtIdx[j]].name}`));
  const sess = await Session.create(serializeModel(g).model, { threads: 1, optimization: 'disabled' });
  const res = await sess.run(feeds);

  const evalLoss = async (name: string, k: number, delta: number): Promise<number> => {
    const base = host[name]!;
    const v = Float64Array.from(base);
    v[k] += delta;
    const dt = dtypes[spec.inputs.findIndex((i) => i.name === name)];
    const f = { ...feeds, [name]: tensor(dt, feeds[name].dims as number[], dt === 'float64' ? v : new Float32Array(v)) };
    const r = await sess.run(f, ['loss']);
    return toFloat64(r.loss)[0];
  };

  let checked = 0;
  let maxAbsErr = 0;
  let maxRelErr = 0;
  const maxElems = spec.maxElems ?? 48;
  for (const k of wrtIdx) {
    const inp = spec.inputs[k];
    const ana = toFloat64(res[`grad_${inp.name}`]);
    const n = host[inp.name]!.length;
    assert.equal(ana.length, n, `gradient of '${inp.name}' has ${ana.length} elements, input has ${n}`);
    assert.deepEqual([...res[`grad_${inp.name}`].dims], inp.shape, `gradient of '${inp.name}' has the input's shape`);
    let idx = Array.from({ length: n }, (_, i) => i);
    if (n > maxElems) {
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [idx[i], idx[j]] = [idx[j], idx[i]];
      }
      idx = idx.slice(0, maxElems).sort((a, b) => a - b);
    }
    for (const e of idx) {
      const num = ((await evalLoss(inp.name, e, eps)) - (await evalLoss(inp.name, e, -eps))) / (2 * eps);
      const a = ana[e];
      const err = Math.abs(num - a);
      const scale = Math.max(Math.abs(num), Math.abs(a));
      maxAbsErr = Math.max(maxAbsErr, err);
      if (scale > 0) maxRelErr = Math.max(maxRelErr, err / scale);
      checked++;
      if (!(err <= atol + rtol * scale))
        assert.fail(`d/d${inp.name}[${e}]: autodiff ${a} vs finite difference ${num} (|err| ${err.toExponential(2)}, tolerance ${(atol + rtol * scale).toExponential(2)})`);
    }
  }
  await sess.dispose();
  return { checked, maxAbsErr, maxRelErr };
}
