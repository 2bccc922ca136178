// Learning-rate schedules with linear warmup, in JS (the executor feeds lr per step) and as a graph emitter (lr
// computed in-graph from a fed step). Same lambdas as Hugging Face's get_{constant,linear,cosine}_schedule_with_warmup
// under torch's LambdaLR: `step` is the 0-based index of the optimizer step, lr = baseLr * factor(step).

import type { Graph, Value } from '../graph/builder';

export interface Schedule {
  kind: 'constant' | 'linear' | 'cosine';
  baseLr: number;
  warmupSteps?: number;
  /** Needed for linear and cosine. */
  totalSteps?: number;
  /** Floor as a fraction of baseLr for linear/cosine decay (default 0). */
  minRatio?: number;
}

function check(s: Schedule): { w: number; T: number; minR: number } {
  const w = s.warmupSteps ?? 0;
  if (!Number.isInteger(w) || w < 0) throw new Error(`schedule: warmupSteps must be a non-negative integer, got ${w}`);
  if (s.kind !== 'constant' && (s.totalSteps === undefined || s.totalSteps <= 0))
    throw new Error(`schedule '${s.kind}': totalSteps is required`);
  return { w, T: s.totalSteps ?? 0, minR: s.minRatio ?? 0 };
}

export function lrFactor(s: Schedule, step: number): number {
  const { w, T, minR } = check(s);
  if (step < w) return step / Math.max(1, w);
  if (s.kind === 'constant') return 1;
  if (s.kind === 'linear') return Math.max(0, minR + (1 - minR) * ((T - step) / Math.max(1, T - w)));
  const progress = (step - w) / Math.max(1, T - w);
  return Math.max(0, minR + (1 - minR) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}

export function lrAt(s: Schedule, step: number): number {
  return s.baseLr * lrFactor(s, step);
}

/** The same schedule as graph nodes, from a scalar `step` value (0-based, float). */
export function lrGraph(g: Graph, s: Schedule, step: Value): Value {
  const { w, T, minR } = check(s);
  const dt = step.dtype;
  const k = (x: number) => g.scalar(x, dt);
  return g.scope('lr', () => {
    const warm = g.op1('Div', [step, k(Math.max(1, w))]);
    let after: Value;
    if (s.kind === 'constant') after = k(1);
    else if (s.kind === 'linear') {
      const frac = g.op1('Div', [g.op1('Sub', [k(T), step]), k(Math.max(1, T - w))]);
      after = g.op1('Max', [g.op1('Add', [k(minR), g.op1('Mul', [frac, k(1 - minR)])]), k(0)]);
    } else {
      const progress = g.op1('Div', [g.op1('Sub', [step, k(w)]), k(Math.max(1, T - w))]);
      const cos = g.op1('Cos', [g.op1('Mul', [progress, k(Math.PI)])]);
      const f = g.op1('Mul', [g.op1('Add', [cos, k(1)]), k(0.5 * (1 - minR))]);
      after = g.op1('Max', [g.op1('Add', [f, k(minR)]), k(0)]);
    }
    const factor = g.op1('Where', [g.op1('Less', [step, k(w)]), warm, after]);
    return g.op1('Mul', [factor, k(s.baseLr)]);
  });
}
