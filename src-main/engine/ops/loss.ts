// Losses: SoftmaxCrossEntropyLoss (opset 13+), forward emitter and gradient rule side by side.
//
// Layouts: scores [N, C] with labels [N], or [N, C, D1, ...] with labels [N, D1, ...] (class axis 1). For a language
// model's logits [B, T, V] reshape to [B*T, V] and labels to [B*T] (no transpose needed).
// ignore_index (default -100): those targets add nothing, and 'mean' divides by the number of non-ignored targets.
// All targets ignored with 'mean': the loss is NaN (0/0, what ORT 1.30 and PyTorch both return) and the gradient is
// zero (what PyTorch returns), so one empty micro-batch cannot poison the weights; 'sum' gives 0 and a zero gradient.
// Labels are integers and never differentiated; per-class weights are not supported.

import type { Dim, Value } from '../graph/builder';
import type { OutType } from '../graph/shape';
import { aInt, aString, registerOp } from './registry';
import { graphOf, knownShape } from './util';

export type Reduction = 'mean' | 'sum' | 'none';

export interface CrossEntropyOptions {
  /** Default 'mean'. */
  reduction?: Reduction;
  /** Targets equal to this are ignored (default -100); null: none ignored. */
  ignoreIndex?: number | null;
}

export interface CrossEntropyResult {
  /** Scalar for 'mean'/'sum'; the labels' shape for 'none' (0 at ignored targets). */
  loss: Value;
  /** log_softmax(scores) along the class axis, scores' shape (the backward reuses it). */
  logProb: Value;
}

/** Softmax cross-entropy of `scores` (float, class axis 1) against integer `labels`. */
export function softmaxCrossEntropy(scores: Value, labels: Value, o: CrossEntropyOptions = {}): CrossEntropyResult {
  const g = graphOf(scores, labels);
  const reduction = o.reduction ?? 'mean';
  if (!['mean', 'sum', 'none'].includes(reduction))
    throw new Error(`softmaxCrossEntropy('${scores.name}'): reduction must be mean, sum or none (got '${reduction}')`);
  if (labels.dtype !== 'int64' && labels.dtype !== 'int32')
    throw new Error(
      `softmaxCrossEntropy('${scores.name}'): labels '${labels.name}' must be int64 or int32 (got ${labels.dtype})`,
    );
  const ss = scores.shape;
  const ls = labels.shape;
  if (ss && ls) {
    if (ss.length < 2 || ls.length !== ss.length - 1)
      throw new Error(
        `softmaxCrossEntropy('${scores.name}'): scores [${ss}] need rank >= 2 and labels '${labels.name}' [${ls}] rank ${ss.length - 1}`,
      );
    const expect = [ss[0], ...ss.slice(2)];
    expect.forEach((d, i) => {
      if (typeof d === 'number' && typeof ls[i] === 'number' && d !== ls[i])
        throw new Error(
          `softmaxCrossEntropy('${scores.name}'): labels '${labels.name}' [${ls}] do not match scores [${ss}] (expected [${expect}])`,
        );
    });
  }
  const ignore = o.ignoreIndex === undefined ? -100 : o.ignoreIndex;
  const [loss, logProb] = g.op(
    'SoftmaxCrossEntropyLoss',
    [scores, labels],
    { reduction, ignore_index: ignore ?? undefined },
    { outputs: 2 },
  );
  return { loss, logProb };
}

registerOp('SoftmaxCrossEntropyLoss', {
  shape: (ins, attrs, nOut) => {
    const [x, labels] = ins as Value[];
    const red = aString(attrs, 'reduction', 'mean');
    const out: OutType[] = [{ dtype: x.dtype, shape: red === 'none' ? labels.shape : [] }];
    if (nOut > 1) out.push({ dtype: x.dtype, shape: x.shape });
    return out;
  },
  grad: (c) => {
    const g = c.g;
    const [x, labels, weights] = c.inputs as [Value, Value, Value | null];
    if (weights) throw new Error('class weights are not supported');
    if (!c.needs[0]) return [];
    const [gl, glp] = c.gradOutputs;
    const xs = knownShape(x, 'SoftmaxCrossEntropyLoss grad');
    const r = xs.length;
    const dt = x.dtype;
    const red = aString(c.attrs, 'reduction', 'mean');
    const ignore = c.attrs.ignore_index ? aInt(c.attrs, 'ignore_index', -100) : null;
    const logp = c.outputs[1];
    const p = logp ? g.op1('Exp', [logp]) : g.op1('Softmax', [x], { axis: 1 });
    const parts: Value[] = [];

    if (gl) {
      // d loss_i / d x_i = softmax_i - onehot(label_i), per target; scaled by the reduction's weight.
      const classShape: number[] = Array.from({ length: r }, (_, i) => (i === 1 ? -1 : 1));
      const C: Dim = xs[1];
      let classes: Value;
      if (typeof C === 'number') {
        classes = g.constant(
          Array.from({ length: C }, (_, i) => i),
          labels.dtype,
          classShape.map((d) => (d === -1 ? C : d)),
        );
      } else {
        const n = g.op1('Squeeze', [g.op1('Shape', [x], { start: 1, end: 2 }), g.ints([0])]);
        const zero = g.constant(0, 'int64', []);
        const one = g.constant(1, 'int64', []);
        let range = g.op1('Range', [zero, n, one], {}, { outTypes: [{ dtype: 'int64', shape: [C] }] });
        if (labels.dtype !== 'int64') range = g.op1('Cast', [range], { to: 6 });
        classes = g.op1('Reshape', [range, g.ints(classShape)]);
      }
      const labU = g.op1('Unsqueeze', [labels, g.ints([1])]);
      const onehot = g.op1('Cast', [g.op1('Equal', [labU, classes])], {
        to: dt === 'float64' ? 11 : dt === 'float16' ? 10 : 1,
      });
      const d = g.op1('Sub', [p, onehot]);
      const toDt = { to: dt === 'float64' ? 11 : dt === 'float16' ? 10 : 1 };
      const valid =
        ignore === null
          ? null
          : g.op1('Cast', [g.op1('Not', [g.op1('Equal', [labels, g.constant(ignore, labels.dtype, [])])])], toDt);
      let w: Value; // per-target weight, labels' shape (or a scalar)
      if (red === 'none') {
        w = valid ? g.op1('Mul', [gl, valid]) : gl;
      } else if (red === 'sum') {
        w = valid ? g.op1('Mul', [valid, gl]) : gl;
      } else {
        // mean over non-ignored targets; an all-ignored batch gives a zero gradient (count clamped to 1)
        const count = valid
          ? g.op1('Max', [g.op1('ReduceSum', [valid], { keepdims: 0 }), g.scalar(1, dt)])
          : g.op1('Cast', [g.op1('Size', [labels])], toDt);
        const s = g.op1('Div', [gl, count]);
        w = valid ? g.op1('Mul', [valid, s]) : s;
      }
      const wU = w.shape && w.shape.length > 0 ? g.op1('Unsqueeze', [w, g.ints([1])]) : w;
      parts.push(g.op1('Mul', [d, wU]));
    }
    if (glp) {
      // d log_softmax: glp - softmax * sum_c glp
      const s = g.op1('ReduceSum', [glp, g.ints([1])], { keepdims: 1 });
      parts.push(g.op1('Sub', [glp, g.op1('Mul', [p, s])]));
    }
    if (parts.length === 0) return [];
    return [parts.length === 1 ? parts[0] : g.op1('Add', parts)];
  },
});

export interface LabelSmoothedOptions {
  /** PyTorch's CrossEntropyLoss label_smoothing in [0, 1). */
  smoothing: number;
  /** Targets equal to this are ignored (default -100); null: none ignored. */
  ignoreIndex?: number | null;
}

export interface LabelSmoothedResult {
  /** Per-target loss [N] (0 at ignored targets). */
  perTarget: Value;
  /** Sum of the per-target losses (scalar). */
  sum: Value;
  /** Number of non-ignored targets (scalar, the scores' float type). */
  count: Value;
  /** sum / max(count, 1): PyTorch's 'mean' (an all-ignored batch gives 0 and a zero gradient, not NaN). */
  mean: Value;
}

/**
 * Cross-entropy with label smoothing as PyTorch's CrossEntropyLoss(label_smoothing = e): per target
 * (1 - e) * (-log p[label]) + e * mean_c(-log p[c]), ignored targets excluded from both terms and from the count.
 * Scores [N, C], labels [N]. Built from SoftmaxCrossEntropyLoss (its loss and log_prob outputs) and elementwise ops,
 * so the gradient comes from their rules.
 */
export function labelSmoothedCrossEntropy(scores: Value, labels: Value, o: LabelSmoothedOptions): LabelSmoothedResult {
  const g = graphOf(scores, labels);
  const e = o.smoothing;
  if (!(e >= 0 && e < 1))
    throw new Error(`labelSmoothedCrossEntropy('${scores.name}'): smoothing must be in [0, 1) (got ${e})`);
  const ss = scores.shape;
  if (!ss || ss.length !== 2)
    throw new Error(`labelSmoothedCrossEntropy('${scores.name}'): scores must be [N, C] (got [${ss}])`);
  const C = ss[1];
  if (typeof C !== 'number')
    throw new Error(`labelSmoothedCrossEntropy('${scores.name}'): the class count must be static (got ${C})`);
  const ignore = o.ignoreIndex === undefined ? -100 : o.ignoreIndex;
  const { loss: nll, logProb } = softmaxCrossEntropy(scores, labels, { reduction: 'none', ignoreIndex: ignore });
  const dt = scores.dtype;
  const to = dt === 'float64' ? 11 : dt === 'float16' ? 10 : 1;
  const valid =
    ignore === null
      ? g.op1('Cast', [g.op1('Equal', [labels, labels])], { to })
      : g.op1('Cast', [g.op1('Not', [g.op1('Equal', [labels, g.constant(ignore, labels.dtype, [])])])], { to });
  let per = nll;
  if (e > 0) {
    const smooth = g.op1('Mul', [g.op1('ReduceSum', [logProb, g.ints([1])], { keepdims: 0 }), g.scalar(-1 / C, dt)]);
    per = g.op1('Add', [
      g.op1('Mul', [nll, g.scalar(1 - e, dt)]),
      g.op1('Mul', [g.op1('Mul', [smooth, g.scalar(e, dt)]), valid]),
    ]);
  }
  const sum = g.op1('ReduceSum', [per], { keepdims: 0 });
  const count = g.op1('ReduceSum', [valid], { keepdims: 0 });
  const mean = g.op1('Div', [sum, g.op1('Max', [count, g.scalar(1, dt)])]);
  return { perTarget: per, sum, count, mean };
}
