// Plain-JS (float64) references of AdamW and clipping, for tests and for checking the graphs.

import { ADAMW_DEFAULTS, type AdamWConfig } from './adamw';

export interface AdamWState {
  m: Float64Array;
  v: Float64Array;
}

/** In-place PyTorch AdamW step on `p` (t is 1-based). */
export function adamwReference(
  p: Float64Array,
  grad: ArrayLike<number>,
  st: AdamWState,
  lr: number,
  t: number,
  cfg: AdamWConfig = {},
): void {
  const c = { ...ADAMW_DEFAULTS, ...cfg };
  const bc1 = 1 - c.beta1 ** t;
  const bc2 = 1 - c.beta2 ** t;
  const stepSize = lr / bc1;
  const sbc2 = Math.sqrt(bc2);
  for (let i = 0; i < p.length; i++) {
    p[i] *= 1 - lr * c.weightDecay;
    st.m[i] = c.beta1 * st.m[i] + (1 - c.beta1) * grad[i];
    st.v[i] = c.beta2 * st.v[i] + (1 - c.beta2) * grad[i] * grad[i];
    p[i] -= (stepSize * st.m[i]) / (Math.sqrt(st.v[i]) / sbc2 + c.eps);
  }
}

/** torch.nn.utils.clip_grad_norm_: scales in place, returns the norm before clipping. */
export function clipReference(grads: Float64Array[], maxNorm: number): number {
  let s = 0;
  for (const g of grads) for (const x of g) s += x * x;
  const norm = Math.sqrt(s);
  const coef = Math.min(1, maxNorm / (norm + 1e-6));
  for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= coef;
  return norm;
}
