// Indexing, selection and type ops: Gather (embedding lookup), GatherElements, Where, Cast/CastLike, and boolean mask
// helpers (comparisons, And/Or/Not). Forward emitters and gradient rules side by side.
//
// Gather's gradient scatters dY into zeros with ScatterND(reduction='add') (opset 16+; ORT 1.30 CPU runs it for
// float and double, repeated and negative indices included), so an embedding gradient costs one [vocab, D] buffer
// and no one-hot product. A frozen table gets no gradient work at all. Conditions, indices and masks are never
// differentiated.

import type { Graph, Value } from '../graph/builder';
import { ONNX_DTYPE, isFloat, type DType } from '../graph/dtype';
import { normAxis } from '../graph/shape';
import { aInt, registerOp } from './registry';
import { constantOfShape, shapeOf, zerosLike } from './shape';
import { type Operand, dtypeOf, graphOf, knownShape, lift, unbroadcast } from './util';

// ---- forward emitters -------------------------------------------------------------------------------------------

/** Gather `indices` (int32/int64, may be negative) along `axis` of `data`; e.g. embedding lookup with axis 0. */
export function gather(data: Value, indices: Value, axis = 0): Value {
  if (indices.dtype !== 'int64' && indices.dtype !== 'int32')
    throw new Error(`gather('${data.name}'): indices '${indices.name}' must be int32/int64, got ${indices.dtype}`);
  return graphOf(data, indices).op1('Gather', [data, indices], { axis });
}

/** out[i][j] = data[index[i][j]][j] (axis 0) etc.; `indices` has the output's shape. */
export function gatherElements(data: Value, indices: Value, axis = 0): Value {
  return graphOf(data, indices).op1(
    'GatherElements',
    [data, indices],
    { axis },
    { outTypes: [{ dtype: data.dtype, shape: indices.shape }] },
  );
}

/** cond ? a : b, broadcasting all three; numbers become constants of the other operand's dtype. */
export function where(cond: Value, a: Operand, b: Operand): Value {
  if (cond.dtype !== 'bool') throw new Error(`where: condition '${cond.name}' must be bool, got ${cond.dtype}`);
  const g = graphOf(cond, a, b);
  const dt = dtypeOf(a, b);
  return g.op1('Where', [cond, lift(g, a, dt), lift(g, b, dt)]);
}

export function cast(x: Value, to: DType): Value {
  if (x.dtype === to) return x;
  return x.graph.op1('Cast', [x], { to: ONNX_DTYPE[to] });
}

/** Cast `x` to the dtype of `like`. */
export function castLike(x: Value, like: Value): Value {
  if (x.dtype === like.dtype) return x;
  return cast(x, like.dtype);
}

function compare(op: string, a: Operand, b: Operand): Value {
  const g = graphOf(a, b);
  const dt = dtypeOf(a, b);
  return g.op1(op, [lift(g, a, dt), lift(g, b, dt)]);
}
export const equal = (a: Operand, b: Operand): Value => compare('Equal', a, b);
export const less = (a: Operand, b: Operand): Value => compare('Less', a, b);
export const lessOrEqual = (a: Operand, b: Operand): Value => compare('LessOrEqual', a, b);
export const greater = (a: Operand, b: Operand): Value => compare('Greater', a, b);
export const greaterOrEqual = (a: Operand, b: Operand): Value => compare('GreaterOrEqual', a, b);
export const logicalAnd = (a: Value, b: Value): Value => graphOf(a, b).op1('And', [a, b]);
export const logicalOr = (a: Value, b: Value): Value => graphOf(a, b).op1('Or', [a, b]);
export const logicalNot = (a: Value): Value =>
  a.graph.op1('Not', [a], {}, { outTypes: [{ dtype: 'bool', shape: a.shape }] });

/**
 * Fill `x` with `value` where `mask` is false (e.g. -inf / large negative for masked attention scores, 0 for padding):
 * Where(mask, x, value). No gradient flows to the filled positions.
 */
export function maskedFill(x: Value, mask: Value, value: number): Value {
  return where(mask, x, value);
}

/** 1.0 where `mask` is true, 0.0 elsewhere, as `dtype`. */
export function maskToFloat(mask: Value, dtype: DType = 'float32'): Value {
  return cast(mask, dtype);
}

/** Bool mask of `ids != ignoreValue` (e.g. labels != -100). */
export function notEqualMask(ids: Value, ignoreValue: number): Value {
  return logicalNot(equal(ids, ignoreValue));
}

// ---- gradient rules ---------------------------------------------------------------------------------------------

/** indices as int64 with a trailing 1 axis, ready for ScatterND. */
function ndIndices(g: Graph, indices: Value): Value {
  const i64 = indices.dtype === 'int64' ? indices : g.op1('Cast', [indices], { to: ONNX_DTYPE.int64 });
  return g.op1('Unsqueeze', [i64, g.ints([-1])]);
}

registerOp('Gather', {
  grad: (c) => {
    if (!c.needs[0]) return [null, null];
    const g = c.g;
    const [data, indices] = c.inputs as Value[];
    const ds = knownShape(data, 'Gather grad');
    const q = knownShape(indices, 'Gather grad').length;
    const r = ds.length;
    const a = normAxis(aInt(c.attrs, 'axis', 0), r);
    const gy = c.gradOutputs[0]!;
    const idx = ndIndices(g, indices);
    if (a === 0) {
      const out = g.op1(
        'ScatterND',
        [zerosLike(g, data), idx, gy],
        { reduction: 'add' },
        { outTypes: [{ dtype: data.dtype, shape: ds }] },
      );
      return [out, null];
    }
    // Move the index dims to the front: dY [D<a, I, D>a] -> [I, D<a, D>a]; scatter into [D_a, D<a, D>a]; move D_a back.
    const perm = [
      ...Array.from({ length: q }, (_, i) => a + i),
      ...Array.from({ length: a }, (_, i) => i),
      ...Array.from({ length: r - 1 - a }, (_, i) => a + q + i),
    ];
    const gyT = g.op1('Transpose', [gy], { perm });
    const zShape = [ds[a], ...ds.slice(0, a), ...ds.slice(a + 1)];
    let zdims: Value;
    if (zShape.every((d) => typeof d === 'number')) zdims = g.ints(zShape as number[]);
    else
      zdims = g.op1('Concat', [shapeOf(g, data, a, a + 1), shapeOf(g, data, 0, a), shapeOf(g, data, a + 1)], {
        axis: 0,
      });
    const zeros = constantOfShape(g, zdims, 0, data.dtype);
    zeros.shape = zShape;
    const sc = g.op1(
      'ScatterND',
      [zeros, idx, gyT],
      { reduction: 'add' },
      { outTypes: [{ dtype: data.dtype, shape: zShape }] },
    );
    const back = Array.from({ length: r }, (_, j) => (j < a ? j + 1 : j === a ? 0 : j));
    return [g.op1('Transpose', [sc], { perm: back }), null];
  },
});

registerOp('GatherElements', {
  grad: (c) => {
    if (!c.needs[0]) return [null, null];
    const g = c.g;
    const [data, indices] = c.inputs as Value[];
    const axis = aInt(c.attrs, 'axis', 0);
    const out = g.op1(
      'ScatterElements',
      [zerosLike(g, data), indices, c.gradOutputs[0]!],
      { axis, reduction: 'add' },
      { outTypes: [{ dtype: data.dtype, shape: data.shape }] },
    );
    return [out, null];
  },
});

registerOp('Where', {
  grad: (c) => {
    const g = c.g;
    const [cond, a, b] = c.inputs as Value[];
    const gy = c.gradOutputs[0]!;
    const ys = c.outputs[0].shape;
    const zero = g.scalar(0, gy);
    return [
      null,
      c.needs[1] ? unbroadcast(g, g.op1('Where', [cond, gy, zero]), ys, a.shape, 'Where grad') : null,
      c.needs[2] ? unbroadcast(g, g.op1('Where', [cond, zero, gy]), ys, b.shape, 'Where grad') : null,
    ];
  },
});

registerOp('Cast', {
  grad: (c) => {
    const x = c.inputs[0]!;
    const gy = c.gradOutputs[0]!;
    if (!isFloat(x.dtype) || !isFloat(gy.dtype)) return [null];
    return [gy.dtype === x.dtype ? gy : c.g.op1('Cast', [gy], { to: ONNX_DTYPE[x.dtype] })];
  },
});

registerOp('CastLike', {
  grad: (c) => {
    const x = c.inputs[0]!;
    const gy = c.gradOutputs[0]!;
    if (!c.needs[0] || !isFloat(x.dtype)) return [null, null];
    return [gy.dtype === x.dtype ? gy : c.g.op1('Cast', [gy], { to: ONNX_DTYPE[x.dtype] }), null];
  },
});
