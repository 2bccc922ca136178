// Shape ops: Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Expand, Concat, Slice, Split, Pad (constant mode), plus
// Shape/ConstantOfShape helpers. Forward emitters and gradient rules side by side; shape rules for Slice, Split and Pad
// (the other ops have built-in rules in graph/shape.ts).
//
// Backward nodes avoid depending on the forward input's data where they can (constant shapes, `0`/-1 in Reshape
// targets, constant axes), so the memory planner does not keep activations alive for their shape alone; a runtime
// Shape() is emitted only when a needed dim is symbolic.

import type { Dim, Graph, Shape, Value } from '../graph/builder';
import { typedArrayFor, type DType } from '../graph/dtype';
import { attrInt, constInts, normAxis, registerShapeRule } from '../graph/shape';
import { aInt, aInts, registerOp, type GradContext } from './registry';
import { graphOf, knownShape, unbroadcast } from './util';

/** Largest int64, as ONNX uses for "to the end" in Slice. */
export const INT64_MAX = 9223372036854775807n;
export const INT64_MIN = -9223372036854775808n;

type IntsOrValue = readonly (number | bigint)[] | Value;

function intsInput(g: Graph, v: IntsOrValue): Value {
  return Array.isArray(v) ? g.ints(v as (number | bigint)[]) : (v as Value);
}

// ---- helpers ---------------------------------------------------------------------------------------------------------

/** A 1-D int64 value holding `x`'s shape: a constant when every dim is static, else a Shape node. */
export function shapeOf(g: Graph, x: Value, start?: number, end?: number): Value {
  const s = x.shape;
  if (s !== null) {
    const r = s.length;
    const a = start === undefined ? 0 : start < 0 ? Math.max(0, start + r) : Math.min(start, r);
    const b = end === undefined ? r : end < 0 ? Math.max(0, end + r) : Math.min(end, r);
    const part = s.slice(a, Math.max(a, b));
    if (part.every((d) => typeof d === 'number')) return g.ints(part as number[]);
  }
  return g.op1('Shape', [x], { start: start || undefined, end });
}

/** Shape(x)[start:end] as an int64 value (always a node; see shapeOf for the constant-folding version). */
export function shape(x: Value, start?: number, end?: number): Value {
  return x.graph.op1('Shape', [x], { start: start || undefined, end });
}

/** A tensor of `dtype` filled with `value`, of the shape held by the 1-D int64 `dims` (or given statically). */
export function constantOfShape(g: Graph, dims: Value | readonly number[], value: number, dtype: DType): Value {
  const one = typedArrayFor(dtype, 1);
  if (dtype === 'int64' || dtype === 'uint64') (one as BigInt64Array)[0] = BigInt(value);
  else (one as Float64Array)[0] = value;
  const dv = Array.isArray(dims) ? g.ints(dims as number[]) : (dims as Value);
  const st = Array.isArray(dims) ? (dims as number[]) : constInts(dv);
  return g.op1(
    'ConstantOfShape',
    [dv],
    { value: { dtype, dims: [1], data: one } },
    { outTypes: [{ dtype, shape: st ?? null }] },
  );
}

/** Zeros with `like`'s dtype and shape (static dims: no dependency on `like`'s data). */
export function zerosLike(g: Graph, like: Value): Value {
  const z = constantOfShape(g, shapeOf(g, like), 0, like.dtype);
  if (like.shape) z.shape = like.shape;
  return z;
}

/**
 * Reshape `v` to `target` (static or symbolic dims). Symbolic dims that `v` has at the same position become 0 (copy),
 * one remaining symbolic dim becomes -1; otherwise `fallback()` provides the runtime shape.
 */
export function reshapeTo(g: Graph, v: Value, target: Shape, fallback: () => Value): Value {
  const src = v.shape;
  const dims: number[] = [];
  let unknown = 0;
  let ok = true;
  const hasZero = target.some((d) => d === 0);
  target.forEach((d, i) => {
    if (typeof d === 'number') dims.push(d);
    else if (!hasZero && d !== '?' && src && src[i] === d) dims.push(0);
    else {
      unknown++;
      dims.push(-1);
    }
  });
  if (unknown > 1 || (hasZero && unknown > 0)) ok = false;
  const out = ok
    ? g.op1('Reshape', [v, g.ints(dims)], hasZero ? { allowzero: 1 } : {}, {
        outTypes: [{ dtype: v.dtype, shape: target }],
      })
    : g.op1('Reshape', [v, fallback()], {}, { outTypes: [{ dtype: v.dtype, shape: target }] });
  return out;
}

// ---- forward emitters -----------------------------------------------------------------------------------------------

/** Reshape; `shape` may contain 0 (copy the input dim, unless allowzero) and one -1. */
export function reshape(x: Value, shape: IntsOrValue, allowzero = false): Value {
  const g = graphOf(x, Array.isArray(shape) ? null : (shape as Value));
  return g.op1('Reshape', [x, intsInput(g, shape)], allowzero ? { allowzero: 1 } : {});
}

/** Flatten to 2-D at `axis`. */
export function flatten(x: Value, axis = 1): Value {
  return x.graph.op1('Flatten', [x], { axis });
}

/** Transpose; default perm reverses the axes. */
export function transpose(x: Value, perm?: readonly number[]): Value {
  return x.graph.op1('Transpose', [x], perm ? { perm: [...perm] } : {});
}

/** Squeeze the given axes (default: every static size-1 axis). */
export function squeeze(x: Value, axes?: readonly number[]): Value {
  const g = x.graph;
  return g.op1('Squeeze', [x, axes ? g.ints(axes) : null]);
}

export function unsqueeze(x: Value, axes: readonly number[]): Value {
  const g = x.graph;
  return g.op1('Unsqueeze', [x, g.ints(axes)]);
}

/** Broadcast `x` to `shape` (numpy rules; a 1 in `shape` keeps x's dim). */
export function expand(x: Value, shape: IntsOrValue): Value {
  const g = graphOf(x, Array.isArray(shape) ? null : (shape as Value));
  return g.op1('Expand', [x, intsInput(g, shape)]);
}

export function concat(xs: readonly Value[], axis: number): Value {
  if (xs.length === 0) throw new Error('concat: no inputs');
  return graphOf(...xs).op1('Concat', xs, { axis });
}

/** x[starts:ends:steps] along `axes` (default 0..n-1); bounds may be negative and are clamped as in ONNX. */
export function slice(
  x: Value,
  starts: IntsOrValue,
  ends: IntsOrValue,
  axes?: IntsOrValue,
  steps?: IntsOrValue,
): Value {
  const g = x.graph;
  return g.op1('Slice', [
    x,
    intsInput(g, starts),
    intsInput(g, ends),
    axes ? intsInput(g, axes) : null,
    steps ? intsInput(g, steps) : null,
  ]);
}

/**
 * Split along `axis` into pieces of the given sizes, or into `parts` near-equal pieces (the last one smaller when the
 * dim is not divisible, as in opset 18+).
 */
export function split(x: Value, sizesOrParts: readonly number[] | number, axis = 0): Value[] {
  const g = x.graph;
  if (typeof sizesOrParts === 'number') {
    return g.op('Split', [x], { axis, num_outputs: sizesOrParts }, { outputs: sizesOrParts });
  }
  return g.op('Split', [x, g.ints(sizesOrParts)], { axis }, { outputs: sizesOrParts.length });
}

/** Constant-mode Pad; `pads` = [begin_0 .. begin_{r-1}, end_0 .. end_{r-1}] (negative values crop). */
export function pad(x: Value, pads: IntsOrValue, value = 0): Value {
  const g = x.graph;
  return g.op1('Pad', [x, intsInput(g, pads), value !== 0 ? g.scalar(value, x) : null]);
}

// ---- shape rules ----------------------------------------------------------------------------------------------------

const BIG = 2 ** 62;

/** Output length of a slice of a static dim n (ONNX clamping). Returns the clamped start too. */
export function sliceLen(n: number, start: number, end: number, step: number): { start: number; len: number } {
  if (step === 0) throw new Error('Slice: step 0');
  let s = start < 0 ? start + n : start;
  let e = end < 0 ? end + n : end;
  if (step > 0) {
    s = Math.min(Math.max(s, 0), n);
    e = Math.min(Math.max(e, 0), n);
    return { start: s, len: Math.max(0, Math.ceil((e - s) / step)) };
  }
  s = Math.min(Math.max(s, 0), n - 1);
  e = Math.min(Math.max(e, -1), n - 1);
  return { start: s, len: Math.max(0, Math.ceil((s - e) / -step)) };
}

/**
 * Length of a slice of a symbolic dim n >= 1, where it does not depend on n: the full range (`n`), an empty range, or
 * one element at an edge ([0:1], [-1:]); '?' otherwise (e.g. [:K] is min(K, n)).
 */
function symbolicSliceLen(d: Dim, start: number, end: number, step: number): Dim {
  // bound = a*n + c
  const aff = (b: number, isEnd: boolean): [number, number] => {
    if (b >= BIG) return [1, 0];
    if (b <= -BIG) return [0, isEnd && step < 0 ? -1 : 0];
    return b < 0 ? [1, b] : [0, b];
  };
  const [as, cs] = aff(start, false);
  const [ae, ce] = aff(end, true);
  const [a, c] = step > 0 ? [ae - as, ce - cs] : [as - ae, cs - ce];
  if (a === 0 && c <= 0) return 0;
  if (a === 1 && c === 0 && Math.abs(step) === 1) return d;
  if (step === 1 && ((as === 0 && cs === 0 && ae === 0 && ce === 1) || (as === 1 && cs === -1 && ae === 1 && ce === 0)))
    return 1;
  return '?';
}

registerShapeRule('Slice', (ins) => {
  const x = ins[0]!;
  if (x.shape === null) return [{ dtype: x.dtype, shape: null }];
  const r = x.shape.length;
  const starts = constInts(ins[1]);
  const ends = constInts(ins[2]);
  const axes = ins[3] ? constInts(ins[3]) : starts ? starts.map((_, i) => i) : null;
  const steps = ins[4] ? constInts(ins[4]) : starts ? starts.map(() => 1) : null;
  const out: Dim[] = [...x.shape];
  if (axes === null) return [{ dtype: x.dtype, shape: x.shape.map(() => '?') }];
  axes.forEach((ax, i) => {
    const k = normAxis(ax, r);
    if (starts === null || ends === null || steps === null) {
      out[k] = '?';
      return;
    }
    const d = x.shape![k];
    out[k] =
      typeof d === 'number'
        ? sliceLen(d, starts[i], ends[i], steps[i]).len
        : symbolicSliceLen(d, starts[i], ends[i], steps[i]);
  });
  return [{ dtype: x.dtype, shape: out }];
});

registerShapeRule('Split', (ins, attrs, nOut) => {
  const x = ins[0]!;
  if (x.shape === null) return Array.from({ length: nOut }, () => ({ dtype: x.dtype, shape: null }));
  const axis = normAxis(attrInt(attrs, 'axis', 0), x.shape.length);
  const d = x.shape[axis];
  let sizes: Dim[];
  if (ins[1]) {
    const s = constInts(ins[1]);
    sizes = s ?? Array.from({ length: nOut }, () => '?');
    if (s && s.length !== nOut) throw new Error(`Split: ${s.length} sizes for ${nOut} outputs`);
    if (s && typeof d === 'number' && s.reduce((a, b) => a + b, 0) !== d)
      throw new Error(`Split: sizes [${s}] do not sum to dim ${d}`);
  } else if (typeof d === 'number') {
    const parts = attrInt(attrs, 'num_outputs', nOut);
    const chunk = Math.ceil(d / parts);
    sizes = Array.from({ length: nOut }, (_, i) => Math.max(0, Math.min(chunk, d - i * chunk)));
  } else sizes = Array.from({ length: nOut }, () => '?');
  return sizes.map((sz) => ({ dtype: x.dtype, shape: x.shape!.map((dd, i) => (i === axis ? sz : dd)) }));
});

registerShapeRule('Pad', (ins) => {
  const x = ins[0]!;
  if (x.shape === null) return [{ dtype: x.dtype, shape: null }];
  const r = x.shape.length;
  const pads = constInts(ins[1]);
  const axes = ins[3] ? constInts(ins[3]) : x.shape.map((_, i) => i);
  if (pads === null || axes === null) return [{ dtype: x.dtype, shape: x.shape.map(() => '?') }];
  const out: Dim[] = [...x.shape];
  axes.forEach((ax, i) => {
    const k = normAxis(ax, r);
    const add = pads[i] + pads[i + axes.length];
    const d = out[k];
    out[k] = typeof d === 'number' ? d + add : add === 0 ? d : '?';
  });
  return [{ dtype: x.dtype, shape: out }];
});

// ---- gradient rules --------------------------------------------------------------------------------------------------

/** Gradient of an op that only re-views its input's elements in the same order: reshape dY back to X's shape. */
function reshapeBack(c: GradContext): Value[] {
  const x = c.inputs[0]!;
  const gy = c.gradOutputs[0]!;
  const target = knownShape(x, `${c.node.opType} grad`);
  return [reshapeTo(c.g, gy, target, () => c.g.op1('Shape', [x]))];
}

registerOp('Reshape', { grad: reshapeBack });
registerOp('Flatten', { grad: reshapeBack });

registerOp('Squeeze', {
  grad: (c) => {
    const x = c.inputs[0]!;
    const s = knownShape(x, 'Squeeze grad');
    let axes = c.inputs[1] ? constInts(c.inputs[1]) : s.flatMap((d, i) => (d === 1 ? [i] : []));
    if (axes === null) return reshapeBack(c);
    axes = axes.map((a) => normAxis(a, s.length)).sort((a, b) => a - b);
    if (axes.length === 0) return [c.gradOutputs[0]!];
    return [
      c.g.op1('Unsqueeze', [c.gradOutputs[0]!, c.g.ints(axes)], {}, { outTypes: [{ dtype: x.dtype, shape: s }] }),
    ];
  },
});

registerOp('Unsqueeze', {
  grad: (c) => {
    const x = c.inputs[0]!;
    const axes = constInts(c.inputs[1]);
    if (axes === null) return reshapeBack(c);
    return [c.g.op1('Squeeze', [c.gradOutputs[0]!, c.g.ints(axes)])];
  },
});

registerOp('Transpose', {
  grad: (c) => {
    const r = knownShape(c.inputs[0]!, 'Transpose grad').length;
    const perm = aInts(c.attrs, 'perm') ?? Array.from({ length: r }, (_, i) => r - 1 - i);
    const inv = new Array<number>(r);
    perm.forEach((p, i) => (inv[p] = i));
    return [c.g.op1('Transpose', [c.gradOutputs[0]!], { perm: inv })];
  },
});

registerOp('Expand', {
  grad: (c) => {
    const x = c.inputs[0]!;
    const xs = knownShape(x, 'Expand grad');
    let ys = c.outputs[0].shape;
    if (ys === null) {
      // Non-constant target: its length gives the output rank; unknown dims are summed over where x has a 1
      // (harmless when the output dim is 1 too).
      const n = c.inputs[1]!.shape?.[0];
      if (typeof n !== 'number') throw new Error('Expand grad: the target shape must have a static length');
      ys = Array.from({ length: Math.max(n, xs.length) }, () => '?');
    }
    return [unbroadcast(c.g, c.gradOutputs[0]!, ys, xs, 'Expand grad')];
  },
});

registerOp('Concat', {
  grad: (c) => {
    const g = c.g;
    const xs = c.inputs as Value[];
    const gy = c.gradOutputs[0]!;
    const r = knownShape(xs[0], 'Concat grad').length;
    const axis = normAxis(aInt(c.attrs, 'axis', 0), r);
    const sizes = xs.map((x) => knownShape(x, 'Concat grad')[axis]);
    const nSym = sizes.filter((d) => typeof d !== 'number').length;
    const res: (Value | null)[] = xs.map(() => null);
    if (nSym === 0) {
      const parts = g.op('Split', [gy, g.ints(sizes as number[])], { axis }, { outputs: xs.length });
      xs.forEach((_, i) => (res[i] = c.needs[i] ? parts[i] : null));
      return res;
    }
    if (nSym === 1) {
      // Static offsets from the front up to the symbolic piece, from the back after it.
      const j = sizes.findIndex((d) => typeof d !== 'number');
      xs.forEach((_, i) => {
        if (!c.needs[i]) return;
        let start: number | bigint;
        let end: number | bigint;
        if (i <= j) {
          start = (sizes.slice(0, i) as number[]).reduce((a, b) => a + b, 0);
          end =
            i < j
              ? start + (sizes[i] as number)
              : -(sizes.slice(j + 1) as number[]).reduce((a, b) => a + b, 0) || INT64_MAX;
        } else {
          const after = (sizes.slice(i) as number[]).reduce((a, b) => a + b, 0);
          start = -after;
          end = -after + (sizes[i] as number) || INT64_MAX;
        }
        res[i] = g.op1(
          'Slice',
          [gy, g.ints([start]), g.ints([end]), g.ints([axis])],
          {},
          { outTypes: [{ dtype: gy.dtype, shape: xs[i].shape }] },
        );
      });
      return res;
    }
    // Several symbolic sizes: offsets from runtime shapes.
    let offset: Value = g.ints([0]);
    xs.forEach((x, i) => {
      const len = shapeOf(g, x, axis, axis + 1);
      const end = g.op1('Add', [offset, len]);
      if (c.needs[i])
        res[i] = g.op1(
          'Slice',
          [gy, offset, end, g.ints([axis])],
          {},
          { outTypes: [{ dtype: gy.dtype, shape: x.shape }] },
        );
      offset = end;
    });
    return res;
  },
});

registerOp('Split', {
  grad: (c) => {
    const g = c.g;
    const x = c.inputs[0]!;
    const r = knownShape(x, 'Split grad').length;
    const axis = normAxis(aInt(c.attrs, 'axis', 0), r);
    const parts = c.outputs.map((o, i) => c.gradOutputs[i] ?? zerosLike(g, o));
    return [
      parts.length === 1
        ? parts[0]
        : g.op1('Concat', parts, { axis }, { outTypes: [{ dtype: x.dtype, shape: x.shape }] }),
    ];
  },
});

/** int64 [1]-shaped helpers for runtime pad arithmetic. */
function i64(g: Graph, v: number | bigint): Value {
  return g.ints([v]);
}

registerOp('Slice', {
  grad: (c) => {
    const g = c.g;
    const x = c.inputs[0]!;
    const xs = knownShape(x, 'Slice grad');
    const r = xs.length;
    const starts = constInts(c.inputs[1]);
    const ends = constInts(c.inputs[2]);
    const axesIn = c.inputs[3] ? constInts(c.inputs[3]) : (starts?.map((_, i) => i) ?? null);
    const steps = c.inputs[4] ? constInts(c.inputs[4]) : (starts?.map(() => 1) ?? null);
    if (!starts || !ends || !axesIn || !steps) throw new Error('Slice grad: starts/ends/axes/steps must be constants');
    let gy = c.gradOutputs[0]!;
    const ys = c.outputs[0].shape ? [...c.outputs[0].shape] : xs.map(() => '?' as Dim);
    // Per axis: [padBegin, padEnd] as numbers or runtime [1]-shaped int64 values.
    const begin: (number | Value)[] = new Array(r).fill(0);
    const endp: (number | Value)[] = new Array(r).fill(0);
    const reverse: number[] = [];
    const strided: { axis: number; stride: number; len: number }[] = [];
    axesIn.forEach((ax, i) => {
      const k = normAxis(ax, r);
      const n = xs[k];
      const step = steps[i];
      if (typeof n === 'number') {
        const { start, len } = sliceLen(n, starts[i], ends[i], step);
        if (len === 0) {
          begin[k] = n;
          endp[k] = 0;
          ys[k] = 0;
          return;
        }
        // ascending positions p0, p0 + |step|, ..., p0 + |step| (len-1)
        const stride = Math.abs(step);
        const p0 = step > 0 ? start : start + step * (len - 1);
        if (step < 0) reverse.push(k);
        const span = stride * (len - 1) + 1;
        if (stride > 1) strided.push({ axis: k, stride, len });
        begin[k] = p0;
        endp[k] = n - p0 - span;
        return;
      }
      if (Math.abs(step) !== 1)
        throw new Error(`Slice grad: step ${step} along axis ${k} needs a static dim (got '${n}')`);
      // Runtime clamping for a symbolic dim.
      const nv = g.op1('Shape', [x], { start: k || undefined, end: k + 1 });
      const norm = (b: number, lo: Value, hi: Value): Value => {
        const bb = b >= BIG ? INT64_MAX : b <= -BIG ? INT64_MIN : b;
        const raw = bb < 0 && b > -BIG ? g.op1('Add', [nv, i64(g, bb)]) : i64(g, bb);
        return g.op1('Min', [g.op1('Max', [raw, lo]), hi]);
      };
      const zero = i64(g, 0);
      if (step > 0) {
        const s = norm(starts[i], zero, nv);
        const e = g.op1('Max', [norm(ends[i], zero, nv), s]);
        begin[k] = s;
        endp[k] = g.op1('Sub', [nv, e]);
      } else {
        const nm1 = g.op1('Sub', [nv, i64(g, 1)]);
        const s = norm(starts[i], zero, nm1);
        const e = g.op1('Min', [norm(ends[i], i64(g, -1), nm1), s]);
        reverse.push(k);
        begin[k] = g.op1('Add', [e, i64(g, 1)]);
        endp[k] = g.op1('Sub', [nm1, s]);
      }
    });
    if (reverse.length) {
      gy = g.op1(
        'Slice',
        [
          gy,
          g.ints(reverse.map(() => -1)),
          g.ints(reverse.map(() => INT64_MIN)),
          g.ints(reverse),
          g.ints(reverse.map(() => -1)),
        ],
        {},
        { outTypes: [{ dtype: gy.dtype, shape: ys }] },
      );
    }
    for (const { axis: k, stride, len } of strided) {
      // Interleave stride-1 zeros after every element along k, then drop the trailing ones.
      const u = g.op1('Unsqueeze', [gy, g.ints([k + 1])]);
      const p = new Array<number>(2 * (r + 1)).fill(0);
      p[r + 1 + k + 1] = stride - 1;
      const padded = g.op1('Pad', [u, g.ints(p)]);
      const merged: Dim[] = [...ys];
      merged[k] = len * stride;
      const flat = reshapeTo(g, padded, merged, () =>
        g.op1('Concat', [shapeOf(g, padded, 0, k), g.ints([len * stride]), shapeOf(g, padded, k + 2)], { axis: 0 }),
      );
      const span = stride * (len - 1) + 1;
      ys[k] = span;
      gy = g.op1(
        'Slice',
        [flat, g.ints([0]), g.ints([span]), g.ints([k])],
        {},
        { outTypes: [{ dtype: gy.dtype, shape: [...ys] }] },
      );
    }
    const all = [...begin, ...endp];
    const pads = all.every((p) => typeof p === 'number')
      ? g.ints(all as number[])
      : g.op1(
          'Concat',
          all.map((p) => (typeof p === 'number' ? i64(g, p) : p)),
          { axis: 0 },
        );
    return [g.op1('Pad', [gy, pads], {}, { outTypes: [{ dtype: x.dtype, shape: xs }] })];
  },
});

registerOp('Pad', {
  grad: (c) => {
    const g = c.g;
    const x = c.inputs[0]!;
    const xs = knownShape(x, 'Pad grad');
    const mode = c.attrs.mode;
    if (mode && mode.type === 'string' && mode.value !== 'constant')
      throw new Error(`Pad grad: mode '${mode.value}' is not supported (constant only)`);
    const pads = constInts(c.inputs[1]);
    const axes = c.inputs[3] ? constInts(c.inputs[3]) : xs.map((_, i) => i);
    if (!pads || !axes) throw new Error('Pad grad: pads/axes must be constants');
    // dX = dY[begin : begin + n] along each padded axis (a negative pad cropped X: pad dY back with zeros there).
    const na = axes.length;
    const ks = axes.map((a) => normAxis(a, xs.length));
    const sliceAxes: number[] = [];
    const sStarts: (number | bigint)[] = [];
    const sEnds: (number | bigint)[] = [];
    const back = new Array<number>(2 * xs.length).fill(0);
    ks.forEach((k, i) => {
      const b = pads[i];
      const e = pads[i + na];
      if (b > 0 || e > 0) {
        sliceAxes.push(k);
        sStarts.push(Math.max(b, 0));
        sEnds.push(e > 0 ? -e : INT64_MAX);
      }
      if (b < 0) back[k] = -b;
      if (e < 0) back[xs.length + k] = -e;
    });
    let gx = c.gradOutputs[0]!;
    if (sliceAxes.length) gx = g.op1('Slice', [gx, g.ints(sStarts), g.ints(sEnds), g.ints(sliceAxes)]);
    if (back.some((v) => v !== 0))
      gx = g.op1('Pad', [gx, g.ints(back)], {}, { outTypes: [{ dtype: x.dtype, shape: xs }] });
    return [gx];
  },
});
