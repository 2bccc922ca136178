// Reverse-mode automatic differentiation over a built Graph, emitting the backward pass as standard ONNX nodes in the
// same graph. Only values on a path from a requested `wrt` value to an output get gradients: a frozen weight that is
// not requested gets none, while the activations flowing through it do. Gradients of a value used several times are
// summed. A node on the path whose op has no registered rule is an error naming the op.

import type { Graph, Node, Value } from './graph/builder';
import { ONNX_DTYPE, isFloat, typedArrayFor } from './graph/dtype';
import { numel } from './graph/shape';
import './ops';
import { getOp, type GradContext } from './ops/registry';
import { sumAll } from './ops/util';
import { zerosLike } from './ops/shape';

export interface GradientOptions {
  /** dLoss/dY for each y (default ones, i.e. the gradient of sum(y)). */
  seeds?: readonly (Value | null | undefined)[];
  /** Name scope for emitted nodes (default 'grad'). */
  scope?: string;
  /** Give zeros (instead of an error) for a wrt value that does not influence the outputs. */
  allowUnused?: boolean;
  /**
   * Gradient checkpointing: the segment a forward node belongs to (e.g. its decoder layer), or null. The backward
   * of a segment reads a recomputation of the segment's values instead of the forward's, so ORT frees the forward's
   * as soon as the forward is done with them and only the values entering segments stay alive until the backward.
   */
  recompute?: (node: Node) => string | null;
}

/** Ones shaped like `v` (a small constant when the shape is static, else ConstantOfShape(Shape(v))). */
export function onesLike(g: Graph, v: Value): Value {
  return fillLike(g, v, 1);
}
/** The one zerosLike (ops/shape.ts), re-exported where gradients are taken. */
export { zerosLike };
function fillLike(g: Graph, v: Value, x: number): Value {
  const n = numel(v.shape);
  if (n !== null && n <= 16) {
    const arr = typedArrayFor(v.dtype, n);
    (arr as Float64Array).fill(x);
    return g.constant(arr, v.dtype, v.shape as number[]);
  }
  const one = typedArrayFor(v.dtype, 1);
  (one as Float64Array).fill(x);
  return g.op1(
    'ConstantOfShape',
    [g.op1('Shape', [v])],
    { value: { dtype: v.dtype, dims: [1], data: one } },
    { outTypes: [{ dtype: v.dtype, shape: v.shape }] },
  );
}

/**
 * Emit d(sum_i seed_i . ys_i)/d(wrt_j) for each wrt value and return them, in `wrt` order.
 * Typical use: `const [gW] = gradients(loss, [W])` with a scalar `loss`.
 */
export function gradients(ys: Value | readonly Value[], wrt: readonly Value[], opts: GradientOptions = {}): Value[] {
  const outs = Array.isArray(ys) ? (ys as Value[]) : [ys as Value];
  if (outs.length === 0) throw new Error('gradients: no outputs given');
  const g = outs[0].graph;
  for (const v of [...outs, ...wrt]) {
    let ok = false;
    for (let cur: Graph | null = g; cur && !ok; cur = cur.parent) ok = cur === v.graph;
    if (!ok) throw new Error(`gradients: value '${v.name}' is not in graph '${g.name}'`);
  }
  for (const w of wrt)
    if (!isFloat(w.dtype))
      throw new Error(`gradients: cannot differentiate with respect to '${w.name}' of dtype ${w.dtype}`);
  for (const y of outs)
    if (!isFloat(y.dtype)) throw new Error(`gradients: output '${y.name}' has dtype ${y.dtype}, not a float type`);

  const nodes = g.nodes.slice(); // gradient nodes appended below are not walked

  // Values that depend (through float values) on some wrt value.
  const depends = new Set<Value>(wrt);
  for (const n of nodes) {
    if (n.inputs.some((x) => x && depends.has(x))) for (const o of n.outputs) if (isFloat(o.dtype)) depends.add(o);
  }
  // Values that some output depends on.
  const leads = new Set<Value>(outs);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    if (n.outputs.some((o) => leads.has(o))) for (const x of n.inputs) if (x) leads.add(x);
  }

  const contrib = new Map<Value, Value[]>();
  const push = (v: Value, gv: Value) => {
    let l = contrib.get(v);
    if (!l) contrib.set(v, (l = []));
    l.push(gv);
  };
  const total = (v: Value): Value | null => {
    const l = contrib.get(v);
    if (!l || l.length === 0) return null;
    if (l.length > 1) {
      const s = sumAll(g, l);
      contrib.set(v, [s]);
      return s;
    }
    return l[0];
  };

  const wrtSet = new Set(wrt);
  const isWrt = (v: Value) => wrtSet.has(v);

  // gradient checkpointing: each segment's nodes on a gradient path (and what they read inside the segment) are
  // emitted again when the backward reaches the segment's last node, from its inputs plus a run-time zero taken from
  // the incoming gradient: the copies cannot run before the backward needs them, and ORT cannot merge them with the
  // forward's nodes (common subexpressions)
  const segmentOf = new Map<Node, string>();
  if (opts.recompute)
    for (const n of nodes) {
      const sg = opts.recompute(n);
      if (sg !== null) segmentOf.set(n, sg);
    }
  const recomputed = new Set<string>();
  const clones = new Map<Value, Value>();
  const initializers = new Set(g.initializers);
  const recomputeSegment = (seg: string, live: Value) => {
    const inSeg = (v: Value | null) => !!v?.producer && segmentOf.get(v.producer) === seg;
    // the segment's nodes that get a gradient rule, and (inside the segment) everything they read
    const need = new Set<Node>();
    const stack = nodes.filter(
      (n) =>
        segmentOf.get(n) === seg &&
        n.outputs.some((o) => depends.has(o) && leads.has(o)) &&
        n.inputs.some((x) => !!x && depends.has(x) && isFloat(x.dtype)),
    );
    while (stack.length) {
      const n = stack.pop()!;
      if (need.has(n)) continue;
      need.add(n);
      for (const x of n.inputs) if (x && inSeg(x)) stack.push(x.producer!);
    }
    const zeros = new Map<string, Value>();
    const zeroOf = (dtype: Value['dtype']) => {
      let z = zeros.get(dtype);
      if (!z) {
        const shape = g.op1(
          'Shape',
          [live],
          {},
          { outTypes: [{ dtype: 'int64', shape: [live.shape?.length ?? '?'] }] },
        );
        const zi = g.op1('Mul', [
          g.op1('ReduceMin', [shape], { keepdims: 0 }, { outTypes: [{ dtype: 'int64', shape: [] }] }),
          g.constant(0, 'int64', []),
        ]);
        z = g.op1('Cast', [zi], { to: ONNX_DTYPE[dtype] }, { outTypes: [{ dtype, shape: [] }] });
        zeros.set(dtype, z);
      }
      return z;
    };
    const gated = new Map<Value, Value>();
    const gate = (x: Value): Value => {
      if (!isFloat(x.dtype) || initializers.has(x) || x.constValue) return x;
      let y = gated.get(x);
      if (!y)
        gated.set(x, (y = g.op1('Add', [x, zeroOf(x.dtype)], {}, { outTypes: [{ dtype: x.dtype, shape: x.shape }] })));
      return y;
    };
    g.scope(`recompute/${seg}`, () => {
      for (const n of nodes) {
        if (!need.has(n)) continue;
        const ins = n.inputs.map((x) => (x ? (inSeg(x) ? clones.get(x)! : gate(x)) : null));
        const outs = g.op(n.opType, ins, n.attrs, {
          domain: n.domain || undefined,
          outputs: n.outputs.length,
          outTypes: n.outputs.map((o) => ({ dtype: o.dtype, shape: o.shape })),
        });
        n.outputs.forEach((o, i) => clones.set(o, outs[i]));
      }
    });
  };

  const scope = opts.scope ?? 'grad';
  return g.scope(scope, () => {
    outs.forEach((y, i) => {
      const seed = opts.seeds?.[i];
      if (seed && seed.dtype !== y.dtype)
        throw new Error(`gradients: seed for '${y.name}' has dtype ${seed.dtype}, expected ${y.dtype}`);
      push(y, seed ?? onesLike(g, y));
    });

    for (let i = nodes.length - 1; i >= 0; i--) {
      const n = nodes[i];
      if (!n.outputs.some((o) => depends.has(o) && leads.has(o))) continue;
      const needs = n.inputs.map((x) => !!x && depends.has(x) && isFloat(x.dtype));
      if (!needs.some(Boolean)) continue;
      const gradOutputs = n.outputs.map((o) => (depends.has(o) ? total(o) : null));
      if (gradOutputs.every((x) => x === null)) continue;
      const spec = getOp(n.opType, n.domain);
      if (spec?.zeroGrad) continue;
      if (!spec?.grad)
        throw new Error(`no gradient rule for op '${n.domain ? n.domain + ':' : ''}${n.opType}' (node '${n.name}')`);
      const seg = segmentOf.get(n);
      if (seg !== undefined && !recomputed.has(seg)) {
        recomputed.add(seg);
        recomputeSegment(
          seg,
          gradOutputs.find((x) => !!x)!,
        );
      }
      const re = (v: Value | null) => (v && seg !== undefined ? (clones.get(v) ?? v) : v);
      const ctx: GradContext = {
        g,
        node: n,
        inputs: n.inputs.map(re),
        outputs: n.outputs.map((o) => re(o)!),
        gradOutputs,
        needs,
        attrs: n.attrs,
        isWrt,
      };
      let res: readonly (Value | null | undefined)[];
      try {
        res = spec.grad(ctx);
      } catch (e) {
        throw new Error(`gradient of ${n.opType} node '${n.name}': ${(e as Error).message}`);
      }
      n.inputs.forEach((x, j) => {
        const gx = res[j];
        if (x && needs[j] && gx) {
          if (gx.dtype !== x.dtype)
            throw new Error(
              `gradient rule for ${n.opType} gave dtype ${gx.dtype} for input ${j} ('${x.name}', ${x.dtype})`,
            );
          push(x, gx);
        }
      });
    }

    return wrt.map((w) => {
      const t = total(w);
      if (t) return t;
      if (opts.allowUnused) return zerosLike(g, w);
      throw new Error(`gradients: '${w.name}' does not influence ${outs.map((o) => `'${o.name}'`).join(', ')}`);
    });
  });
}
