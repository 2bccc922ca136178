// Shape inference: a registry of per-op rules plus the structural rules every graph needs.
// Rules see input Values (dtype, shape, and constValue for constant initializers) and normalized attributes.
// Only type imports from builder.ts here, so the registry exists before builder.ts evaluates.

import type { Attr, Dim, Shape, Value } from './builder';
import type { DType } from './dtype';
import { DTYPE_FROM_ONNX } from './dtype';

export interface OutType {
  dtype: DType;
  shape: Shape | null;
}
export type ShapeRule = (
  inputs: readonly (Value | null)[],
  attrs: Readonly<Record<string, Attr>>,
  nOutputs: number,
) => (OutType | null)[];

const rules = new Map<string, ShapeRule>();

/** Register how an op's output types follow from its inputs. Key is `opType` (default domain) or `domain:opType`. */
export function registerShapeRule(opType: string, rule: ShapeRule, domain = ''): void {
  rules.set(domain ? `${domain}:${opType}` : opType, rule);
}
export function getShapeRule(opType: string, domain = ''): ShapeRule | undefined {
  return rules.get(domain ? `${domain}:${opType}` : opType);
}

// ---- helpers ----------------------------------------------------------------------------------------------------

export function broadcastDim(a: Dim, b: Dim): Dim {
  if (a === b) return a;
  if (a === 1) return b;
  if (b === 1) return a;
  if (typeof a === 'number' && typeof b === 'number') throw new Error(`cannot broadcast dims ${a} and ${b}`);
  if (typeof a === 'number') return a;
  if (typeof b === 'number') return b;
  return a === '?' ? b : a;
}

/** Numpy broadcasting of shapes; null if any rank is unknown. */
export function broadcastShapes(...shapes: (Shape | null)[]): Shape | null {
  if (shapes.some((s) => s === null)) return null;
  const rank = Math.max(...shapes.map((s) => s!.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const j = i - (rank - s!.length);
      if (j >= 0) d = broadcastDim(d, s![j]);
    }
    out.push(d);
  }
  return out;
}

/** Static element count, or null when a dim is symbolic or the rank unknown. */
export function numel(shape: Shape | null): number | null {
  if (shape === null) return null;
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number') return null;
    n *= d;
  }
  return n;
}

/** The integer contents of a constant int tensor input, or null when not a build-time constant. */
export function constInts(v: Value | null | undefined): number[] | null {
  if (!v || !v.constValue) return null;
  const d = v.constValue.data;
  if ('external' in d || 'lazy' in d) return null;
  return Array.from(d as ArrayLike<number | bigint>, (x) => Number(x));
}

export function attrInt(attrs: Readonly<Record<string, Attr>>, name: string, dflt: number): number {
  const a = attrs[name];
  if (!a) return dflt;
  if (a.type !== 'int') throw new Error(`attribute ${name} must be an int`);
  return Number(a.value);
}
export function attrInts(attrs: Readonly<Record<string, Attr>>, name: string): number[] | null {
  const a = attrs[name];
  if (!a) return null;
  if (a.type !== 'ints') throw new Error(`attribute ${name} must be ints`);
  return a.value.map(Number);
}

export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

const same: ShapeRule = (ins) => [ins[0] ? { dtype: ins[0].dtype, shape: ins[0].shape } : null];
const broadcastRule: ShapeRule = (ins) => [
  { dtype: ins[0]!.dtype, shape: broadcastShapes(...ins.map((x) => x!.shape)) },
];
const compareRule: ShapeRule = (ins) => [{ dtype: 'bool', shape: broadcastShapes(...ins.map((x) => x!.shape)) }];

// ---- structural and elementwise rules -----------------------------------------------------------------------------

for (const op of [
  'Identity',
  'Neg',
  'Sqrt',
  'Reciprocal',
  'Exp',
  'Log',
  'Tanh',
  'Sigmoid',
  'Erf',
  'Abs',
  'Relu',
  'Sign',
  'Floor',
  'Ceil',
  'Round',
  'Sin',
  'Cos',
  'Softmax',
  'LogSoftmax',
  'Gelu',
  'Elu',
  'LeakyRelu',
  'Softplus',
  'Not',
  'HardSigmoid',
  'Clip',
  'Dropout',
  'Trilu',
  'LayerNormalization',
  'RMSNormalization',
  'RotaryEmbedding',
])
  registerShapeRule(op, same);
for (const op of ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'And', 'Or', 'Xor', 'Mod'])
  registerShapeRule(op, broadcastRule);
for (const op of ['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual']) registerShapeRule(op, compareRule);
registerShapeRule('IsNaN', (ins) => [{ dtype: 'bool', shape: ins[0]!.shape }]);
registerShapeRule('IsInf', (ins) => [{ dtype: 'bool', shape: ins[0]!.shape }]);

registerShapeRule('Where', (ins) => [
  { dtype: ins[1]!.dtype, shape: broadcastShapes(ins[0]!.shape, ins[1]!.shape, ins[2]!.shape) },
]);

registerShapeRule('Cast', (ins, attrs) => {
  const to = attrInt(attrs, 'to', 0);
  const dtype = DTYPE_FROM_ONNX[to];
  if (!dtype) throw new Error(`Cast: unsupported 'to' ${to}`);
  return [{ dtype, shape: ins[0]!.shape }];
});
registerShapeRule('CastLike', (ins) => [{ dtype: ins[1]!.dtype, shape: ins[0]!.shape }]);

registerShapeRule('Shape', (ins, attrs) => {
  const s = ins[0]!.shape;
  if (s === null) return [{ dtype: 'int64', shape: ['?'] }];
  const r = s.length;
  let start = attrInt(attrs, 'start', 0);
  let end = attrInt(attrs, 'end', r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = Math.max(0, Math.min(r, start));
  end = Math.max(start, Math.min(r, end));
  return [{ dtype: 'int64', shape: [end - start] }];
});
registerShapeRule('Size', () => [{ dtype: 'int64', shape: [] }]);

registerShapeRule('MatMul', (ins) => {
  const [a, b] = ins as Value[];
  if (a.shape === null || b.shape === null) return [{ dtype: a.dtype, shape: null }];
  const as = a.shape.length === 1 ? [1, a.shape[0]] : a.shape;
  const bs = b.shape.length === 1 ? [b.shape[0], 1] : b.shape;
  const k1 = as[as.length - 1];
  const k2 = bs[bs.length - 2];
  if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2)
    throw new Error(`MatMul inner dims differ: ${k1} vs ${k2}`);
  const batch = broadcastShapes(as.slice(0, -2), bs.slice(0, -2))!;
  const out: Dim[] = [...batch];
  if (a.shape.length !== 1) out.push(as[as.length - 2]);
  if (b.shape.length !== 1) out.push(bs[bs.length - 1]);
  return [{ dtype: a.dtype, shape: out }];
});

registerShapeRule('Gemm', (ins, attrs) => {
  const [a, b] = ins as Value[];
  if (a.shape === null || b.shape === null) return [{ dtype: a.dtype, shape: null }];
  const ta = attrInt(attrs, 'transA', 0);
  const tb = attrInt(attrs, 'transB', 0);
  const m = ta ? a.shape[1] : a.shape[0];
  const n = tb ? b.shape[0] : b.shape[1];
  return [{ dtype: a.dtype, shape: [m, n] }];
});

function reduceRule(axesFromInput: boolean): ShapeRule {
  return (ins, attrs) => {
    const x = ins[0]!;
    if (x.shape === null) return [{ dtype: x.dtype, shape: null }];
    const keep = attrInt(attrs, 'keepdims', 1);
    let axes: number[] | null;
    if (axesFromInput) {
      if (ins[1]) {
        axes = constInts(ins[1]);
        if (axes === null) return [{ dtype: x.dtype, shape: keep ? x.shape.map(() => '?') : null }];
      } else axes = [];
    } else axes = attrInts(attrs, 'axes') ?? [];
    const r = x.shape.length;
    const noop = attrInt(attrs, 'noop_with_empty_axes', 0);
    if (axes.length === 0 && noop) return [{ dtype: x.dtype, shape: x.shape }];
    const set = new Set(axes.length ? axes.map((a) => normAxis(a, r)) : x.shape.map((_, i) => i));
    const out: Dim[] = [];
    x.shape.forEach((d, i) => {
      if (!set.has(i)) out.push(d);
      else if (keep) out.push(1);
    });
    return [{ dtype: x.dtype, shape: out }];
  };
}
for (const op of [
  'ReduceSum',
  'ReduceMean',
  'ReduceMax',
  'ReduceMin',
  'ReduceProd',
  'ReduceL2',
  'ReduceSumSquare',
  'ReduceLogSumExp',
])
  registerShapeRule(op, reduceRule(true));
registerShapeRule('ArgMax', (ins, attrs) => {
  const [r] = reduceRule(false)(ins, { ...attrs, axes: { type: 'ints', value: [attrInt(attrs, 'axis', 0)] } }, 1);
  return [{ dtype: 'int64', shape: r!.shape }];
});

registerShapeRule('Reshape', (ins, attrs) => {
  const x = ins[0]!;
  const target = constInts(ins[1]);
  if (target === null) {
    const n = ins[1]?.shape?.[0];
    return [{ dtype: x.dtype, shape: typeof n === 'number' ? Array.from({ length: n }, () => '?') : null }];
  }
  const allowZero = attrInt(attrs, 'allowzero', 0);
  const out: Dim[] = target.map((d, i) => (d === 0 && !allowZero ? (x.shape?.[i] ?? '?') : d));
  const neg = out.indexOf(-1);
  if (neg >= 0) {
    const total = numel(x.shape);
    const rest = numel(out.filter((_, i) => i !== neg));
    if (total !== null && rest !== null && rest > 0) {
      if (total % rest !== 0) throw new Error(`Reshape: cannot reshape ${total} elements to [${target.join(',')}]`);
      out[neg] = total / rest;
    } else out[neg] = inferSymbolicRest(x.shape, out, neg);
  } else {
    const a = numel(x.shape);
    const b = numel(out);
    if (a !== null && b !== null && a !== b)
      throw new Error(`Reshape: ${a} elements cannot become [${target.join(',')}]`);
  }
  return [{ dtype: x.dtype, shape: out }];
});

/** For a -1 with symbolic dims: cancel equal factors (e.g. [B,T,D] -> [B*T? no] [-1, D] gives '?', [B,T,H,d]->[B,T,-1] gives H*d when static). */
function inferSymbolicRest(src: Shape | null, out: Dim[], neg: number): Dim {
  if (src === null) return '?';
  const num: Dim[] = [...src];
  const den: Dim[] = out.filter((_, i) => i !== neg);
  for (let i = den.length - 1; i >= 0; i--) {
    const j = num.indexOf(den[i]);
    if (j >= 0) {
      num.splice(j, 1);
      den.splice(i, 1);
    }
  }
  const nNum = numel(num);
  const nDen = numel(den);
  if (nNum !== null && nDen !== null && nDen > 0 && nNum % nDen === 0) return nNum / nDen;
  if (num.length === 1 && den.length === 0) return num[0];
  return '?';
}

registerShapeRule('Flatten', (ins, attrs) => {
  const x = ins[0]!;
  if (x.shape === null) return [{ dtype: x.dtype, shape: ['?', '?'] }];
  let axis = attrInt(attrs, 'axis', 1);
  if (axis < 0) axis += x.shape.length;
  const a = numel(x.shape.slice(0, axis));
  const b = numel(x.shape.slice(axis));
  return [
    {
      dtype: x.dtype,
      shape: [a ?? (axis === 1 ? x.shape[0] : '?'), b ?? (axis === x.shape.length - 1 ? x.shape[axis] : '?')],
    },
  ];
});

registerShapeRule('Transpose', (ins, attrs) => {
  const x = ins[0]!;
  if (x.shape === null) return [{ dtype: x.dtype, shape: null }];
  const perm = attrInts(attrs, 'perm') ?? x.shape.map((_, i) => x.shape!.length - 1 - i);
  if (perm.length !== x.shape.length)
    throw new Error(`Transpose: perm [${perm}] does not match rank ${x.shape.length}`);
  return [{ dtype: x.dtype, shape: perm.map((p) => x.shape![p]) }];
});

registerShapeRule('Unsqueeze', (ins) => {
  const x = ins[0]!;
  const axes = constInts(ins[1]);
  if (x.shape === null || axes === null) return [{ dtype: x.dtype, shape: null }];
  const r = x.shape.length + axes.length;
  const set = new Set(axes.map((a) => normAxis(a, r)));
  const out: Dim[] = [];
  let j = 0;
  for (let i = 0; i < r; i++) out.push(set.has(i) ? 1 : x.shape[j++]);
  return [{ dtype: x.dtype, shape: out }];
});

registerShapeRule('Squeeze', (ins) => {
  const x = ins[0]!;
  if (x.shape === null) return [{ dtype: x.dtype, shape: null }];
  let axes = ins[1] ? constInts(ins[1]) : x.shape.flatMap((d, i) => (d === 1 ? [i] : []));
  if (axes === null) return [{ dtype: x.dtype, shape: null }];
  const set = new Set(axes.map((a) => normAxis(a, x.shape!.length)));
  return [{ dtype: x.dtype, shape: x.shape.filter((_, i) => !set.has(i)) }];
});

registerShapeRule('Expand', (ins) => {
  const x = ins[0]!;
  const target = constInts(ins[1]);
  if (target === null) return [{ dtype: x.dtype, shape: null }];
  return [{ dtype: x.dtype, shape: broadcastShapes(x.shape, target) }];
});

registerShapeRule('Concat', (ins, attrs) => {
  const xs = ins as Value[];
  if (xs.some((x) => x.shape === null)) return [{ dtype: xs[0].dtype, shape: null }];
  const r = xs[0].shape!.length;
  const axis = normAxis(attrInt(attrs, 'axis', 0), r);
  const out: Dim[] = [...xs[0].shape!];
  const parts = xs.map((x) => x.shape![axis]);
  out[axis] = parts.every((p) => typeof p === 'number')
    ? (parts as number[]).reduce((a, b) => a + b, 0)
    : parts.length === 1
      ? parts[0]
      : '?';
  return [{ dtype: xs[0].dtype, shape: out }];
});

registerShapeRule('Gather', (ins, attrs) => {
  const [x, idx] = ins as Value[];
  if (x.shape === null || idx.shape === null) return [{ dtype: x.dtype, shape: null }];
  const axis = normAxis(attrInt(attrs, 'axis', 0), x.shape.length);
  return [{ dtype: x.dtype, shape: [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)] }];
});

registerShapeRule('ConstantOfShape', (ins, attrs) => {
  const target = constInts(ins[0]);
  const v = attrs.value;
  const dtype: DType = v && v.type === 'tensor' ? v.value.dtype : 'float32';
  const n = ins[0]?.shape?.[0];
  return [{ dtype, shape: target ?? (typeof n === 'number' ? Array.from({ length: n }, () => '?') : null) }];
});

registerShapeRule('Constant', (_ins, attrs) => {
  const v = attrs.value;
  if (v && v.type === 'tensor') return [{ dtype: v.value.dtype, shape: v.value.dims }];
  if (attrs.value_float) return [{ dtype: 'float32', shape: [] }];
  if (attrs.value_int) return [{ dtype: 'int64', shape: [] }];
  if (attrs.value_ints && attrs.value_ints.type === 'ints')
    return [{ dtype: 'int64', shape: [attrs.value_ints.value.length] }];
  if (attrs.value_floats && attrs.value_floats.type === 'floats')
    return [{ dtype: 'float32', shape: [attrs.value_floats.value.length] }];
  return [null];
});
