// Finite-difference gradient check for op gradient rules.
//
// Builds the op graph (float64 by default), reduces its outputs to a scalar with a fixed random projection
// L = sum_i <out_i, R_i>, asks autodiff for dL/dx of every differentiable input, and compares each element with the
// central difference (L(x + eps e_k) - L(x - eps e_k)) / 2 eps evaluated by ORT on the same graph (or, for ops ORT
// has no double kernel for, by the float64 JS evaluator in js-eval.ts). Each passing float64 check records the op
// types it differentiated through in `float64Checked`; ops-registry.test.ts fails for a registered rule without one.

import assert from 'node:assert/strict';
import { Graph, Value, type Node } from '../../src-main/engine/graph/builder';
import type { DType } from '../../src-main/engine/graph/dtype';
import { isFloat } from '../../src-main/engine/graph/dtype';
import { serializeModel } from '../../src-main/engine/graph/serialize';
import { gradients } from '../../src-main/engine/autodiff';
import { Session } from '../../src-main/engine/runtime/session';
import { tensor, toFloat64, ort } from '../../src-main/engine/runtime/tensor';
import { mulberry32 } from '../../src-main/util/mulberry32';
import { evalGraph, type HostTensor } from './js-eval';

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
  /**
   * 'ort' (default) runs the graphs on ORT CPU; 'js' runs them in float64 on the JS evaluator (js-eval.ts), for ops
   * ORT has no double kernel for, after checking that ORT and the evaluator agree on the same graph in float32.
   */
  evaluator?: 'ort' | 'js';
  /** Inputs the outputs do not depend on (e.g. only through Floor) get a zero gradient instead of an error. */
  allowUnused?: boolean;
}

export interface GradcheckResult {
  checked: number;
  maxAbsErr: number;
  maxRelErr: number;
}

/** Deterministic PRNG (mulberry32). */
export const rng = mulberry32;

/** Op types (domain:op for non-default domains) some passing float64 gradcheck in this process differentiated through. */
export const float64Checked = new Set<string>();

interface Runner {
  run(feeds: Record<string, ort.Tensor>, fetch?: string[]): Promise<Record<string, HostTensor>>;
  dispose(): Promise<void>;
}

const host = (t: ort.Tensor): HostTensor => ({ dims: [...t.dims].map(Number), data: toFloat64(t) });

async function makeRunner(g: Graph, evaluator: 'ort' | 'js'): Promise<Runner> {
  if (evaluator === 'js') {
    return {
      run: async (feeds, fetch) =>
        evalGraph(g, Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, host(t)])), fetch),
      dispose: async () => {},
    };
  }
  const s = await Session.create(serializeModel(g).model, { threads: 1, optimization: 'disabled' });
  return {
    run: async (feeds, fetch) =>
      Object.fromEntries(Object.entries(await s.run(feeds, fetch)).map(([k, t]) => [k, host(t)])),
    dispose: () => s.dispose(),
  };
}

/** The forward nodes on a differentiated path (an input depends on a wrt value, an output reaches an output). */
function differentiatedNodes(nodes: readonly Node[], wrt: readonly Value[], outs: readonly Value[]): Node[] {
  const depends = new Set<Value>(wrt);
  for (const n of nodes)
    if (n.inputs.some((x) => x && depends.has(x))) for (const o of n.outputs) if (isFloat(o.dtype)) depends.add(o);
  const leads = new Set<Value>(outs);
  for (let i = nodes.length - 1; i >= 0; i--)
    if (nodes[i].outputs.some((o) => leads.has(o))) for (const x of nodes[i].inputs) if (x) leads.add(x);
  return nodes.filter(
    (n) => n.outputs.some((o) => depends.has(o) && leads.has(o)) && n.inputs.some((x) => x && depends.has(x)),
  );
}

export async function gradcheck(spec: GradcheckSpec): Promise<GradcheckResult> {
  const fdt: DType = spec.dtype ?? 'float64';
  const is64 = fdt === 'float64';
  const evaluator = spec.evaluator ?? 'ort';
  if (evaluator === 'js' && !is64)
    throw new Error("gradcheck: evaluator 'js' is a float64 reference (ORT checks float32 itself)");
  const eps = spec.eps ?? (is64 ? 1e-6 : 1e-2);
  const rtol = spec.rtol ?? (is64 ? 1e-5 : 2e-2);
  const atol = spec.atol ?? (is64 ? 1e-7 : 2e-3);
  const rand = rng(spec.seed ?? 1234);

  // Input values.
  const feeds: Record<string, ort.Tensor> = {};
  const hostIn: Record<string, Float64Array | null> = {};
  const dtypes = spec.inputs.map((i) => i.dtype ?? fdt);
  spec.inputs.forEach((inp, k) => {
    const n = inp.shape.reduce((a, b) => a * b, 1);
    const dt = dtypes[k];
    if (inp.values) {
      feeds[inp.name] = tensor(dt, inp.shape, inp.values);
      hostIn[inp.name] = isFloat(dt) ? Float64Array.from(inp.values as ArrayLike<number>, Number) : null;
    } else {
      const [lo, hi] = inp.range ?? [-1, 1];
      const v = new Float64Array(n).map(() => lo + (hi - lo) * rand());
      if (!isFloat(dt)) throw new Error(`gradcheck: integer input '${inp.name}' needs explicit values`);
      // round to the float dtype so the perturbation base is exact
      const vv = is64 ? v : Float64Array.from(new Float32Array(v));
      hostIn[inp.name] = vv;
      feeds[inp.name] = tensor(dt, inp.shape, is64 ? vv : new Float32Array(vv));
    }
  });

  const buildBase = (types: DType[]) => {
    const g = new Graph('gradcheck', { opset: spec.opset });
    const xs = spec.inputs.map((inp, k) => g.input(inp.name, types[k], inp.shape));
    const outs = spec.build(g, xs);
    return { g, xs, outs: Array.isArray(outs) ? outs : [outs] };
  };

  // Pass 1: learn the output shapes by running the forward graph.
  const shapes: number[][] = [];
  {
    const { g, outs } = buildBase(dtypes);
    outs.forEach((o, i) => g.output(o, `out${i}`));
    const r = await makeRunner(g, evaluator);
    const res = await r.run(feeds);
    outs.forEach((_, i) => shapes.push(res[`out${i}`].dims));
    await r.dispose();
  }

  // Pass 2: scalar projection + gradients. The projections use their own stream so that a float32 rebuild of the
  // same check (below) gets the same ones.
  const wrtIdx = spec.inputs.map((inp, k) => ((inp.grad ?? isFloat(dtypes[k])) ? k : -1)).filter((k) => k >= 0);
  const projections = shapes.map((s) => {
    const pr = rng((spec.seed ?? 1234) ^ 0x5bd1e995);
    return new Float64Array(s.reduce((a, b) => a * b, 1)).map(() => pr() * 2 - 1);
  });
  const buildChecked = (types: DType[]) => {
    const { g, xs, outs } = buildBase(types);
    const fwdNodes = g.nodes.slice();
    // L = sum_i <out_i, R_i>, so dL/dout_i = R_i: the projections are the seeds (the check does not depend on the
    // ReduceSum rule).
    const Rs = outs.map((o, i) =>
      o.dtype === 'float64'
        ? g.constant(projections[i], 'float64', shapes[i])
        : g.constant(new Float32Array(projections[i]), 'float32', shapes[i]),
    );
    const terms = outs.map((o, i) => {
      const p = g.op1('ReduceSum', [g.op1('Mul', [o, Rs[i]])], { keepdims: 0 });
      return o.dtype === 'float64' ? p : g.op1('Cast', [p], { to: 11 });
    });
    const L = terms.length === 1 ? terms[0] : g.op1('Sum', terms);
    g.output(L, 'loss');
    const wrt = wrtIdx.map((k) => xs[k]);
    const grads = gradients(outs, wrt, { seeds: Rs, allowUnused: spec.allowUnused });
    grads.forEach((gv, j) => g.output(gv, `grad_${spec.inputs[wrtIdx[j]].name}`));
    outs.forEach((o, i) => g.output(o, `out${i}`));
    return { g, path: differentiatedNodes(fwdNodes, wrt, outs) };
  };
  const { g, path } = buildChecked(dtypes);

  if (evaluator === 'js') {
    // The JS kernels must agree with ORT's: the same check built in float32 runs on both.
    const types32 = dtypes.map((d) => (d === 'float64' ? 'float32' : d));
    const g32 = buildChecked(types32).g;
    const feeds32 = Object.fromEntries(
      spec.inputs.map((inp, k) => [
        inp.name,
        types32[k] === dtypes[k] ? feeds[inp.name] : tensor('float32', inp.shape, new Float32Array(hostIn[inp.name]!)),
      ]),
    );
    const [ortRes, jsRes] = await Promise.all(
      [makeRunner(g32, 'ort'), makeRunner(g32, 'js')].map(async (mk) => {
        const r = await mk;
        const out = await r.run(feeds32);
        await r.dispose();
        return out;
      }),
    );
    for (const name of Object.keys(ortRes)) {
      const a = ortRes[name].data;
      const b = jsRes[name].data;
      assert.deepEqual(jsRes[name].dims, ortRes[name].dims, `js-eval '${name}' dims`);
      a.forEach((v, i) => {
        if (!(Math.abs(v - b[i]) <= 1e-5 + 1e-4 * Math.abs(v)))
          assert.fail(`js-eval disagrees with ORT (float32) on '${name}'[${i}]: ${b[i]} vs ${v}`);
      });
    }
  }

  const runner = await makeRunner(g, evaluator);
  const res = await runner.run(feeds);

  const evalLoss = async (name: string, k: number, delta: number): Promise<number> => {
    const base = hostIn[name]!;
    const v = Float64Array.from(base);
    v[k] += delta;
    const dt = dtypes[spec.inputs.findIndex((i) => i.name === name)];
    const f = {
      ...feeds,
      [name]: tensor(dt, feeds[name].dims as number[], dt === 'float64' ? v : new Float32Array(v)),
    };
    const r = await runner.run(f, ['loss']);
    return r.loss.data[0];
  };

  let checked = 0;
  let maxAbsErr = 0;
  let maxRelErr = 0;
  const maxElems = spec.maxElems ?? 48;
  for (const k of wrtIdx) {
    const inp = spec.inputs[k];
    const ana = res[`grad_${inp.name}`].data;
    const n = hostIn[inp.name]!.length;
    assert.equal(ana.length, n, `gradient of '${inp.name}' has ${ana.length} elements, input has ${n}`);
    assert.deepEqual(res[`grad_${inp.name}`].dims, inp.shape, `gradient of '${inp.name}' has the input's shape`);
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
        assert.fail(
          `d/d${inp.name}[${e}]: autodiff ${a} vs finite difference ${num} (|err| ${err.toExponential(2)}, tolerance ${(atol + rtol * scale).toExponential(2)})`,
        );
    }
  }
  await runner.dispose();
  // Count an op as float64-checked only in a float64 check that compared something, where the op ran in float64.
  if (is64 && checked > 0)
    for (const n of path)
      if (n.inputs.some((x) => x && x.dtype === 'float64') || n.outputs.some((o) => o.dtype === 'float64'))
        float64Checked.add(n.domain ? `${n.domain}:${n.opType}` : n.opType);
  return { checked, maxAbsErr, maxRelErr };
}
