// Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_ semantics):
//   norm = sqrt(sum_i ||g_i||^2);  coef = min(1, maxNorm / (norm + 1e-6));  g_i <- g_i * coef

import type { Graph, Value } from '../graph/builder';

/** The global L2 norm of a list of gradients (a scalar of their dtype). */
export function globalNorm(g: Graph, grads: readonly Value[]): Value {
  if (grads.length === 0) throw new Error('globalNorm: no gradients');
  const sq = grads.map((x) => g.op1('ReduceSumSquare', [x], { keepdims: 0 }));
  const total = sq.length === 1 ? sq[0] : g.op1('Sum', sq);
  return g.op1('Sqrt', [total]);
}

/** Clip `grads` to global norm `maxNorm`. Returns the clipped gradients and the norm before clipping. */
export function clipByGlobalNorm(g: Graph, grads: readonly Value[], maxNorm: number): { grads: Value[]; norm: Value } {
  return g.scope('clip', () => {
    const norm = globalNorm(g, grads);
    const dt = norm.dtype;
    const coef = g.op1('Min', [
      g.op1('Div', [g.scalar(maxNorm, dt), g.op1('Add', [norm, g.scalar(1e-6, dt)])]),
      g.scalar(1, dt),
    ]);
    return { grads: grads.map((x) => g.op1('Mul', [x, coef])), norm };
  });
}
