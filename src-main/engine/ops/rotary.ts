// Rotary position embedding (LLaMA/Qwen2, HF `rotate_half` convention: the first and second halves of head_dim pair up,
// NOT interleaved): y = x * cos + rotate_half(x) * sin, rotate_half(x) = concat(-x[..., h:], x[..., :h]), h = head_dim/2,
// with cos/sin of frequency theta^(-2i/head_dim) (optionally linear/llama3-scaled) at each token's position id.
//
// Implementation choice (scratch bench, ORT 1.30 CPU, 1 thread, float32, 4 chained rotations of x [1,14,512,64], min of
// 80 interleaved runs): the fused opset-23 RotaryEmbedding op 0.96 ms, a Split/Neg/Concat composite 1.90 ms, a constant
// rotation-matrix MatMul composite 2.38 ms ([4,14,128,64]: 0.97 / 1.77 / 2.33 ms). So float32/float16 use the fused
// op, whose gradient is the same op with negated sin (rotate_half is orthogonal and both halves of a pair share the
// angle). ORT has no double RotaryEmbedding kernel, so float64 graphs (gradchecks, references) use x*cos + (x @ R)*sin
// with a constant [hd, hd] rotation matrix R, differentiated through the Mul/MatMul rules.
//
// Layout: x is [B, n_heads, S, head_dim]. The cache is cos/sin [B or 1, S, head_dim/2] (what the fused op takes
// without position_ids); positions are int64 [B or 1, S]. For KV-cache decode, positions start at the cache length.

import type { DType } from '../graph/dtype';
import type { Graph, Value } from '../graph/builder';
import { registerOp } from './registry';
import { graphOf } from './util';

/** RoPE frequency scaling; structurally compatible with models/config.ts RopeConfig. */
export interface RopeScaling {
  type: 'default' | 'linear' | 'llama3';
  factor?: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositionEmbeddings?: number;
}

/** cos/sin tables [B or 1, S, head_dim/2], in the model's float dtype. */
export interface RopeCache {
  cos: Value;
  sin: Value;
  headDim: number;
  /** Lazily built full-width [B|1, 1, S, head_dim] tables for the float64 composite (shared by all layers). */
  full?: { cos: Value; sin: Value };
}

/** Inverse frequencies [head_dim/2] as transformers computes them (default, linear, llama3 rope types). */
export function ropeInvFreq(headDim: number, theta: number, scaling: RopeScaling | null = null): Float64Array {
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0)
    throw new Error(`ropeInvFreq: head_dim must be a positive even integer (got ${headDim})`);
  if (!(theta > 0)) throw new Error(`ropeInvFreq: rope_theta must be > 0 (got ${theta})`);
  const h = headDim / 2;
  const inv = new Float64Array(h).map((_, i) => 1 / Math.pow(theta, (2 * i) / headDim));
  const type = scaling?.type ?? 'default';
  if (type === 'default') return inv;
  const factor = scaling?.factor ?? 1;
  if (!(factor > 0)) throw new Error(`ropeInvFreq: rope_scaling.factor must be > 0 (got ${factor})`);
  if (type === 'linear') return inv.map((f) => f / factor);
  if (type === 'llama3') {
    const lo = scaling?.lowFreqFactor ?? 1;
    const hi = scaling?.highFreqFactor ?? 4;
    const old = scaling?.originalMaxPositionEmbeddings ?? 8192;
    if (!(hi > lo)) throw new Error(`ropeInvFreq: llama3 high_freq_factor (${hi}) must exceed low_freq_factor (${lo})`);
    const lowWavelen = old / lo;
    const highWavelen = old / hi;
    return inv.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) return f; // high frequency: unchanged
      if (wavelen > lowWavelen) return f / factor; // low frequency: scaled like linear
      const smooth = (old / wavelen - lo) / (hi - lo);
      return (1 - smooth) * (f / factor) + smooth * f;
    });
  }
  throw new Error(`ropeInvFreq: unsupported rope_scaling type '${type}' (supported: default, linear, llama3)`);
}

/**
 * cos/sin tables for int64 `positions` [B or 1, S]: angle = position * inv_freq, computed in `dtype` (default float32,
 * as transformers does; pass 'float64' for float64 graphs).
 */
export function ropeCache(
  g: Graph,
  positions: Value,
  headDim: number,
  theta: number,
  scaling: RopeScaling | null = null,
  dtype: DType = 'float32',
): RopeCache {
  if (positions.dtype !== 'int64' && positions.dtype !== 'int32')
    throw new Error(`ropeCache: positions '${positions.name}' must be int64 (got ${positions.dtype})`);
  if (positions.shape && positions.shape.length !== 2)
    throw new Error(`ropeCache: positions '${positions.name}' must be [B, S] (got [${positions.shape}])`);
  if (dtype !== 'float32' && dtype !== 'float64' && dtype !== 'float16')
    throw new Error(`ropeCache: dtype must be float32, float64 or float16 (got ${dtype})`);
  const inv = ropeInvFreq(headDim, theta, scaling);
  const cdt = dtype === 'float64' ? 'float64' : 'float32'; // angles in float32 at least
  const invC = g.constant(cdt === 'float64' ? inv : new Float32Array(inv), cdt, [1, 1, headDim / 2]);
  const pos = g.op1('Unsqueeze', [g.op1('Cast', [positions], { to: cdt === 'float64' ? 11 : 1 }), g.ints([2])]);
  const ang = g.op1('Mul', [pos, invC]);
  let cos = g.op1('Cos', [ang], {}, { outTypes: [{ dtype: cdt, shape: ang.shape }] });
  let sin = g.op1('Sin', [ang], {}, { outTypes: [{ dtype: cdt, shape: ang.shape }] });
  if (dtype === 'float16') {
    cos = g.op1('Cast', [cos], { to: 10 });
    sin = g.op1('Cast', [sin], { to: 10 });
  }
  return { cos, sin, headDim };
}

/** Positions past + [0, S) as int64 [1, S] for token ids [B, S]; `past` is an int64 scalar Value or a number. */
export function rangePositions(ids: Value, past: Value | number = 0): Value {
  const g = ids.graph;
  const S = ids.shape?.[1] ?? '?';
  const start = typeof past === 'number' ? g.constant(past, 'int64', []) : past;
  if (start.dtype !== 'int64')
    throw new Error(`rangePositions: past '${start.name}' must be an int64 scalar (got ${start.dtype})`);
  const n = g.op1('Squeeze', [g.op1('Shape', [ids], { start: 1, end: 2 }), g.ints([0])]);
  const r = g.op1(
    'Range',
    [start, g.op1('Add', [start, n]), g.constant(1, 'int64', [])],
    {},
    { outTypes: [{ dtype: 'int64', shape: [S] }] },
  );
  return g.op1('Unsqueeze', [r, g.ints([0])]);
}

/**
 * Position ids from a [B, L] attention mask (1 keep, 0 pad) as transformers' generate() makes them for left padding:
 * cumsum(mask) - 1, with 1 at padded slots; the last S columns, S = ids' second dim (ids [B, S] are the new tokens).
 */
export function positionsFromMask(mask: Value, ids: Value): Value {
  const g = graphOf(mask, ids);
  const m = mask.dtype === 'int64' ? mask : g.op1('Cast', [mask], { to: 7 });
  const cs = g.op1(
    'CumSum',
    [m, g.constant(1, 'int64', [])],
    {},
    { outTypes: [{ dtype: 'int64', shape: mask.shape }] },
  );
  const one = g.constant(1, 'int64', []);
  const pos = g.op1('Where', [g.op1('Equal', [m, g.constant(0, 'int64', [])]), one, g.op1('Sub', [cs, one])]);
  const S = g.op1('Shape', [ids], { start: 1, end: 2 });
  const start = g.op1('Neg', [S]);
  return g.op1(
    'Slice',
    [pos, start, g.ints([Number.MAX_SAFE_INTEGER]), g.ints([1])],
    {},
    { outTypes: [{ dtype: 'int64', shape: [mask.shape?.[0] ?? '?', ids.shape?.[1] ?? '?'] }] },
  );
}

export interface RotaryOptions {
  /** 'auto' (default): fused RotaryEmbedding for float32/float16, rotation-matrix MatMul for float64. */
  impl?: 'auto' | 'fused' | 'matmul';
}

/** Rotate x [B, n_heads, S, head_dim] by the cache's angles (HF rotate_half convention). */
export function applyRotary(x: Value, cache: RopeCache, o: RotaryOptions = {}): Value {
  const g = graphOf(x, cache.cos);
  const hd = cache.headDim;
  const xs = x.shape;
  if (xs && (xs.length !== 4 || (typeof xs[3] === 'number' && xs[3] !== hd)))
    throw new Error(`applyRotary('${x.name}'): expected [B, n_heads, S, ${hd}] (got [${xs}])`);
  const impl = o.impl ?? 'auto';
  const fused = impl === 'fused' || (impl === 'auto' && x.dtype !== 'float64');
  if (fused) {
    if (x.dtype === 'float64')
      throw new Error(`applyRotary('${x.name}'): ORT has no float64 RotaryEmbedding kernel; use impl 'matmul'`);
    if (g.opset < 23)
      throw new Error(`applyRotary('${x.name}'): RotaryEmbedding needs opset >= 23 (graph has ${g.opset})`);
    let { cos, sin } = cache;
    if (cos.dtype !== x.dtype) {
      const to = { to: x.dtype === 'float16' ? 10 : 1 };
      cos = g.op1('Cast', [cos], to);
      sin = g.op1('Cast', [sin], to);
    }
    // the op wants cos/sin batch == x batch: broadcast a shared [1, S, h] table
    if (cos.shape?.[0] === 1 && xs?.[0] !== 1) {
      const target = g.op1('Concat', [g.op1('Shape', [x], { start: 0, end: 1 }), g.op1('Shape', [cos], { start: 1 })], {
        axis: 0,
      });
      const t = { dtype: cos.dtype, shape: [xs?.[0] ?? '?', ...(cos.shape?.slice(1) ?? ['?', hd / 2])] };
      cos = g.op1('Expand', [cos, target], {}, { outTypes: [t] });
      sin = g.op1('Expand', [sin, target], {}, { outTypes: [t] });
    }
    return g.op1('RotaryEmbedding', [x, cos, sin], { interleaved: 0 });
  }
  // composite: x * cos + (x @ R) * sin, R the rotate_half matrix
  if (!cache.full || cache.full.cos.dtype !== x.dtype) {
    const widen = (t: Value) => {
      let v =
        t.dtype === x.dtype
          ? t
          : g.op1('Cast', [t], { to: x.dtype === 'float64' ? 11 : x.dtype === 'float16' ? 10 : 1 });
      v = g.op1('Concat', [v, v], { axis: -1 });
      return g.op1('Unsqueeze', [v, g.ints([1])]);
    };
    cache.full = { cos: widen(cache.cos), sin: widen(cache.sin) };
  }
  const h = hd / 2;
  const R = new Float64Array(hd * hd);
  for (let i = 0; i < h; i++) {
    R[(i + h) * hd + i] = -1; // rot[i] = -x[i + h]
    R[i * hd + i + h] = 1; // rot[i + h] = x[i]
  }
  const Rc = g.constant(x.dtype === 'float64' ? R : new Float32Array(R), x.dtype, [hd, hd]);
  const rot = g.op1('MatMul', [x, Rc]);
  return g.op1('Add', [g.op1('Mul', [x, cache.full.cos]), g.op1('Mul', [rot, cache.full.sin])]);
}

// dL/dx of y = x cos + rot(x) sin is g cos + rot^T(g sin) = g cos - rot(g) sin: the same op with negated sin (a
// pair's two halves share the angle; the non-rotated tail of a partial rotation passes through unchanged).
registerOp('RotaryEmbedding', {
  grad: (c) => {
    const [, cos, sin, pos] = c.inputs;
    if (c.needs[1] || c.needs[2]) throw new Error('gradients with respect to the cos/sin caches are not supported');
    if (!c.needs[0]) return [];
    const g = c.g;
    const attrs = Object.fromEntries(Object.entries(c.attrs));
    return [g.op1('RotaryEmbedding', [c.gradOutputs[0]!, cos, g.op1('Neg', [sin!]), pos], attrs)];
  },
});
