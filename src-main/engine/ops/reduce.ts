// Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin (opset 18+: axes as an int64 input; keepdims;
// noop_with_empty_axes). Forward emitters and gradient rules side by side.
//
// Backward: dY is brought back to keepdims form (Unsqueeze at the reduced axes when keepdims=0) and broadcast to X's
// shape. Expand targets hold only the reduced dims (1 elsewhere), so a static reduced dim needs no runtime Shape(X).
// ReduceMax/Min split the gradient equally among tied extrema (as torch.amax/amin).

import type { Dim, Graph, Value } from '../graph/builder';
import { ONNX_DTYPE } from '../graph/dtype';
import { constInts, normAxis } from '../graph/shape';
import { div, mul } from './elementwise';
import { aInt, registerOp, type GradContext } from './registry';
import { knownShape } from './util';

export interface ReduceOptions {
  /** Keep reduced axes as size 1 (default true, as ONNX). */
  keepdims?: boolean;
  /** With no axes: return the input unchanged instead of reducing every axis. */
  noopWithEmptyAxes?: boolean;
}

/** `axes` null/undefined: every axis (unless noopWithEmptyAxes). Axes may be negative, or a runtime int64 value. */
function reduce(op: string, x: Value, axes: readonly number[] | Value | null | undefined, o: ReduceOptions): Value {
  const g = x.graph;
  const ax =
    axes === null || axes === undefined ? null : Array.isArray(axes) ? g.ints(axes as number[]) : (axes as Value);
  return g.op1(op, [x, ax], {
    keepdims: (o.keepdims ?? true) ? 1 : 0,
    noop_with_empty_axes: o.noopWithEmptyAxes ? 1 : undefined,
  });
}

export const reduceSum = (x: Value, axes?: readonly number[] | Value | null, o: ReduceOptions = {}): Value =>
  reduce('ReduceSum', x, axes, o);
export const reduceMean = (x: Value, axes?: readonly number[] | Value | null, o: ReduceOptions = {}): Value =>
  reduce('ReduceMean', x, axes, o);
export const reduceMax = (x: Value, axes?: readonly number[] | Value | null, o: ReduceOptions = {}): Value =>
  reduce('ReduceMax', x, axes, o);
export const reduceMin = (x: Value, axes?: readonly number[] | Value | null, o: ReduceOptions = {}): Value =>
  reduce('ReduceMin', x, axes, o);

// ---- gradient rules -------------------------------------------------------------------------------------------------

interface ReduceInfo {
  /** The reduction is the identity (empty axes with noop_with_empty_axes=1). */
  identity: boolean;
  /** Normalized reduced axes, or null when the axes input is not a build-time constant. */
  axes: number[] | null;
  keep: boolean;
  rank: number;
}

function reduceInfo(c: GradContext): ReduceInfo {
  const x = c.inputs[0]!;
  const rank = knownShape(x, `${c.node.opType} grad`).length;
  const keep = aInt(c.attrs, 'keepdims', 1) === 1;
  const noop = aInt(c.attrs, 'noop_with_empty_axes', 0) === 1;
  const raw = c.inputs[1] ? constInts(c.inputs[1]) : [];
  if (raw === null) return { identity: false, axes: null, keep, rank };
  if (raw.length === 0 && noop) return { identity: true, axes: [], keep, rank };
  const axes =
    raw.length === 0
      ? Array.from({ length: rank }, (_, i) => i)
      : [...new Set(raw.map((a) => normAxis(a, rank)))].sort((a, b) => a - b);
  return { identity: false, axes, keep, rank };
}

/** A tensor in keepdims form (size-1 reduced axes) from an output-shaped one. */
function keepForm(c: GradContext, info: ReduceInfo, v: Value): Value {
  if (info.keep) return v;
  if (info.axes === null)
    throw new Error(`${c.node.opType} grad: with keepdims=0 the axes must be a build-time constant`);
  return c.g.op1('Unsqueeze', [v, c.g.ints(info.axes)]);
}

/** Broadcast a keepdims-form tensor to X's shape. */
function expandToInput(g: Graph, v: Value, x: Value, info: ReduceInfo): Value {
  const xs = x.shape!;
  let target: Value;
  if (info.axes !== null && info.axes.every((a) => typeof xs[a] === 'number')) {
    target = g.ints(xs.map((d, i) => (info.axes!.includes(i) ? (d as number) : 1)));
  } else if (xs.every((d) => typeof d === 'number')) target = g.ints(xs as number[]);
  else target = g.op1('Shape', [x]);
  return g.op1('Expand', [v, target], {}, { outTypes: [{ dtype: x.dtype, shape: xs }] });
}

/** Number of reduced elements, as a scalar of X's dtype. */
function reducedCount(c: GradContext, info: ReduceInfo): Value {
  const g = c.g;
  const x = c.inputs[0]!;
  const xs = x.shape!;
  if (info.axes !== null) {
    const dims: Dim[] = info.axes.map((a) => xs[a]);
    if (dims.every((d) => typeof d === 'number'))
      return g.scalar(
        (dims as number[]).reduce((a, b) => a * b, 1),
        x,
      );
  }
  // size(X) / size(Y), at run time
  const sx = g.op1('Cast', [g.op1('Size', [x])], { to: ONNX_DTYPE[x.dtype] });
  const sy = g.op1('Cast', [g.op1('Size', [c.outputs[0]])], { to: ONNX_DTYPE[x.dtype] });
  return div(sx, sy);
}

registerOp('ReduceSum', {
  grad: (c) => {
    const info = reduceInfo(c);
    const gy = c.gradOutputs[0]!;
    if (info.identity) return [gy];
    return [expandToInput(c.g, keepForm(c, info, gy), c.inputs[0]!, info)];
  },
});

registerOp('ReduceMean', {
  grad: (c) => {
    const info = reduceInfo(c);
    const gy = c.gradOutputs[0]!;
    if (info.identity) return [gy];
    const scaled = div(keepForm(c, info, gy), reducedCount(c, info));
    return [expandToInput(c.g, scaled, c.inputs[0]!, info)];
  },
});

function extremumGrad(c: GradContext): Value[] {
  const g = c.g;
  const info = reduceInfo(c);
  const gy = c.gradOutputs[0]!;
  if (info.identity) return [gy];
  const x = c.inputs[0]!;
  const y = keepForm(c, info, c.outputs[0]);
  // mask of the extrema, each weighted 1/(number of ties)
  const mask = g.op1('Cast', [g.op1('Equal', [x, y])], { to: ONNX_DTYPE[x.dtype] });
  const ties = g.op1('ReduceSum', [mask, c.inputs[1]], {
    keepdims: 1,
    noop_with_empty_axes: aInt(c.attrs, 'noop_with_empty_axes', 0) || undefined,
  });
  return [mul(mask, div(keepForm(c, info, gy), ties))];
}

registerOp('ReduceMax', { grad: extremumGrad });
registerOp('ReduceMin', { grad: extremumGrad });
