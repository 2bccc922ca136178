// Helpers shared by op families: operand lifting (numbers -> constants), the graph to emit into, and the
// broadcast-aware gradient reduction.

import type { Graph, Shape, Value } from '../graph/builder';
import type { DType } from '../graph/dtype';

export type Operand = Value | number;

/** The innermost graph among the operands (values from an outer graph may be used in a subgraph). */
export function graphOf(...xs: (Operand | null | undefined)[]): Graph {
  let best: Graph | null = null;
  let bestDepth = -1;
  for (const x of xs) {
    if (x === null || x === undefined || typeof x === 'number') continue;
    let d = 0;
    for (let p = x.graph.parent; p; p = p.parent) d++;
    if (d > bestDepth) {
      best = x.graph;
      bestDepth = d;
    }
  }
  if (!best) throw new Error('operation needs at least one Value operand');
  return best;
}

/** The dtype of the first Value operand. */
export function dtypeOf(...xs: (Operand | null | undefined)[]): DType {
  for (const x of xs) if (x !== null && x !== undefined && typeof x !== 'number') return x.dtype;
  return 'float32';
}

/** Turn numbers into scalar constants of `dtype` in `g`. */
export function lift(g: Graph, x: Operand, dtype: DType): Value {
  return typeof x === 'number' ? g.scalar(x, dtype) : x;
}

/** Require a known rank (autodiff rules need static ranks; dims may be symbolic). */
export function knownShape(v: Value | Shape | null, what: string): Shape {
  const s = v === null ? null : Array.isArray(v) ? (v as Shape) : (v as Value).shape;
  if (s === null || s === undefined) throw new Error(`${what}: rank must be known at build time`);
  return s;
}

/**
 * Reduce a gradient of shape `from` (the broadcast result) back to `to` (the operand's shape): sum over leading axes
 * (dropping them) and over axes where `to` has a literal 1 and `from` does not (keeping them).
 */
export function unbroadcast(g: Graph, grad: Value, from: Shape | null, to: Shape | null, what = 'unbroadcast'): Value {
  const f = knownShape(from, what);
  const t = knownShape(to, what);
  if (t.length > f.length) throw new Error(`${what}: target rank ${t.length} exceeds gradient rank ${f.length}`);
  let out = grad;
  const lead = f.length - t.length;
  if (lead > 0) {
    out = g.op1('ReduceSum', [out, g.ints(Array.from({ length: lead }, (_, i) => i))], { keepdims: 0 });
  }
  const axes: number[] = [];
  t.forEach((d, i) => {
    if (d === 1 && f[lead + i] !== 1) axes.push(i);
  });
  if (axes.length) out = g.op1('ReduceSum', [out, g.ints(axes)], { keepdims: 1 });
  return out;
}

/** Sum a list of gradient contributions (Add for two, Sum for more). */
export function sumAll(g: Graph, xs: Value[]): Value {
  if (xs.length === 0) throw new Error('sumAll: empty');
  if (xs.length === 1) return xs[0];
  if (xs.length === 2) return g.op1('Add', xs);
  return g.op1('Sum', xs);
}

/** Permutation swapping the last two axes of a rank-r tensor. */
export function swapLastTwo(r: number): number[] {
  const p = Array.from({ length: r }, (_, i) => i);
  [p[r - 2], p[r - 1]] = [p[r - 1], p[r - 2]];
  return p;
}
