// MatMul (batched, broadcast, 1-D operands) and Gemm: forward emitters and gradient rules.

import type { Dim, Graph, Value } from '../graph/builder';
import { broadcastShapes } from '../graph/shape';
import { aFloat, aInt, registerOp } from './registry';
import { graphOf, knownShape, swapLastTwo, unbroadcast } from './util';

export function matmul(a: Value, b: Value): Value {
  return graphOf(a, b).op1('MatMul', [a, b]);
}

export interface GemmOptions {
  alpha?: number;
  beta?: number;
  transA?: boolean;
  transB?: boolean;
}

/** Y = alpha * op(A) op(B) + beta * C (2-D). */
export function gemm(a: Value, b: Value, c: Value | null = null, o: GemmOptions = {}): Value {
  return graphOf(a, b, c).op1('Gemm', [a, b, c], {
    alpha: o.alpha !== undefined && o.alpha !== 1 ? o.alpha : undefined,
    beta: o.beta !== undefined && o.beta !== 1 ? o.beta : undefined,
    transA: o.transA ? 1 : undefined,
    transB: o.transB ? 1 : undefined,
  });
}

/** Swap the last two axes. */
export function transposeLast(g: Graph, x: Value): Value {
  return g.op1('Transpose', [x], { perm: swapLastTwo(knownShape(x, 'transposeLast').length) });
}

registerOp('MatMul', {
  grad: (c) => {
    const g = c.g;
    const [A, B] = c.inputs as Value[];
    let gy = c.gradOutputs[0]!;
    const as0 = knownShape(A, 'MatMul grad');
    const bs0 = knownShape(B, 'MatMul grad');
    const a1 = as0.length === 1;
    const b1 = bs0.length === 1;
    // Promote 1-D operands to matrices (and the gradient to match), then squeeze back at the end.
    const A2 = a1 ? g.op1('Unsqueeze', [A, g.ints([0])]) : A;
    const B2 = b1 ? g.op1('Unsqueeze', [B, g.ints([1])]) : B;
    if (b1) gy = g.op1('Unsqueeze', [gy, g.ints([-1])]);
    if (a1) gy = g.op1('Unsqueeze', [gy, g.ints([-2])]);
    const as = A2.shape!;
    const bs = B2.shape!;
    const batch = broadcastShapes(as.slice(0, -2), bs.slice(0, -2))!;
    const M = as[as.length - 2];
    const K = as[as.length - 1];
    const N = bs[bs.length - 1];
    let gA: Value | null = null;
    let gB: Value | null = null;
    if (c.needs[0]) {
      // dA = dY @ B^T, summed over batch axes A was broadcast along
      let r =
        as.length === 2 && bs.length === 2
          ? g.op1('Gemm', [gy, B2], { transB: 1 })
          : g.op1('MatMul', [gy, transposeLast(g, B2)]);
      r = unbroadcast(g, r, [...batch, M, K], as, 'MatMul grad');
      gA = a1 ? g.op1('Squeeze', [r, g.ints([0])]) : r;
    }
    if (c.needs[1]) {
      if (bs.length === 2 && as.length === 2) {
        gB = g.op1('Gemm', [A2, gy], { transA: 1 });
      } else if (bs.length === 2 && as.length > 2 && typeof K === 'number' && typeof N === 'number') {
        // Common case x[..., K] @ W[K, N]: one GEMM over all rows, dW = X2^T dY2.
        const x2 = g.op1('Reshape', [A2, g.ints([-1, K])]);
        const gy2 = g.op1('Reshape', [gy, g.ints([-1, N])]);
        gB = g.op1('Gemm', [x2, gy2], { transA: 1 });
      } else {
        let r = g.op1('MatMul', [transposeLast(g, A2), gy]);
        r = unbroadcast(g, r, [...batch, K, N] as Dim[], bs, 'MatMul grad');
        gB = r;
      }
      if (b1) gB = g.op1('Squeeze', [gB, g.ints([1])]);
    }
    return [gA, gB];
  },
});

registerOp('Gemm', {
  grad: (c) => {
    const g = c.g;
    const [A, B, C] = c.inputs;
    const gy = c.gradOutputs[0]!;
    const alpha = aFloat(c.attrs, 'alpha', 1);
    const beta = aFloat(c.attrs, 'beta', 1);
    const ta = aInt(c.attrs, 'transA', 0);
    const tb = aInt(c.attrs, 'transB', 0);
    const G = (x: Value, y: Value, tx: number, ty: number) =>
      g.op1('Gemm', [x, y], {
        alpha: alpha !== 1 ? alpha : undefined,
        transA: tx || undefined,
        transB: ty || undefined,
      });
    let gA: Value | null = null;
    let gB: Value | null = null;
    let gC: Value | null = null;
    if (c.needs[0]) gA = ta ? G(B!, gy, tb, 1) : G(gy, B!, 0, tb ? 0 : 1);
    if (c.needs[1]) gB = tb ? G(gy, A!, 1, ta) : G(A!, gy, ta ? 0 : 1, 0);
    if (C && c.needs[2]) {
      const scaled = beta === 1 ? gy : g.op1('Mul', [gy, g.scalar(beta, gy.dtype)]);
      gC = unbroadcast(g, scaled, c.outputs[0].shape, C.shape, 'Gemm grad');
    }
    return [gA, gB, gC];
  },
});
