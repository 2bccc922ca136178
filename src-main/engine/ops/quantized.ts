// Gradient of com.microsoft MatMulNBits (Y = A W^T with W [N, K] stored as blocks of `block_size` along K): the
// inference kernel runs the forward of a frozen quantized weight in training graphs (models/quantize.ts
// frozenMatMulNBits), and this rule gives dA = dY W through standard ops on the same packed bytes, so the weight is
// stored once. The weight itself is frozen (uint8, never differentiated); a gradient for the scales is not emitted.
//   bits 4: B [N, K/bs, bs/2] bytes, element 2j in the low nibble, 2j+1 in the high one, zero point 8
//   bits 8: B [N, K/bs, bs] bytes, zero point 128
// W = (unpacked - zero point) * scale of its block; no zero_points or g_idx inputs (the form quantize.ts writes).

import type { Graph, Value } from '../graph/builder';
import { ONNX_DTYPE } from '../graph/dtype';
import { aInt, registerOp } from './registry';

/**
 * An int64 zero that ORT cannot know before the run: derived from the shape of `live` (the incoming gradient, whose
 * batch and sequence axes are symbolic). The unpacking below starts from it, so constant folding cannot precompute
 * the chain from the initializers, which would store a float32 copy of every weight in the session (the very memory
 * a quantized base saves).
 */
export function runtimeZero(g: Graph, live: Value): Value {
  const shape = g.op1('Shape', [live], {}, { outTypes: [{ dtype: 'int64', shape: [live.shape?.length ?? '?'] }] });
  return g.op1('Mul', [
    g.op1('ReduceMin', [shape], { keepdims: 0 }, { outTypes: [{ dtype: 'int64', shape: [] }] }),
    g.constant(0, 'int64', []),
  ]);
}

/**
 * Elements of the float32 weight the backward unpacks at a time (4M: 16 MiB): a larger weight (an LM head of a big
 * vocabulary) goes in row chunks. Read when a gradient is built; tests lower it to check the chunked form.
 */
export const nbitsGrad = { chunkElements: 1 << 22 };

/** The float weight [N, K] (the scales' type) that a MatMulNBits node's B and scales stand for (`zero64`: runtimeZero). */
export function dequantizeNBitsGraph(
  g: Graph,
  b: Value,
  scales: Value,
  n: number,
  k: number,
  bits: number,
  blockSize: number,
  zero64: Value,
): Value {
  const nb = k / blockSize;
  const dt = scales.dtype;
  const zero = g.op1('Cast', [zero64], { to: ONNX_DTYPE.uint8 }, { outTypes: [{ dtype: 'uint8', shape: [] }] });
  const u8 = (v: number) =>
    g.op1(
      'BitwiseOr',
      [g.constant(new Uint8Array([v]), 'uint8', []), zero],
      {},
      { outTypes: [{ dtype: 'uint8', shape: [] }] },
    );
  // the codes: [n, nb, blockSize] (int8) or nibble pairs [n, nb, blockSize / 2, 2] (int4), read per block below
  let q: Value;
  if (bits === 4) {
    const t = { outTypes: [{ dtype: 'uint8' as const, shape: [n, nb, blockSize / 2, 1] }] };
    const lo = g.op1('Unsqueeze', [g.op1('BitwiseAnd', [b, u8(0x0f)]), g.ints([-1])], {}, t);
    const hi = g.op1('Unsqueeze', [g.op1('BitShift', [b, u8(4)], { direction: 'RIGHT' }), g.ints([-1])], {}, t);
    q = g.op1('Concat', [lo, hi], { axis: -1 }, { outTypes: [{ dtype: 'uint8', shape: [n, nb, blockSize / 2, 2] }] });
  } else if (bits === 8)
    // through a run-time zero: read as is, the initializer took 491 against 424-451 MiB peak RSS on an 80M decoder
    q = g.op1('BitwiseOr', [b, zero], {}, { outTypes: [{ dtype: 'uint8', shape: [n, nb, blockSize] }] });
  else throw new Error(`MatMulNBits gradient: ${bits} bits is not supported (4 or 8)`);
  // one DequantizeLinear writes the only float buffer of the chain: per axis over the [blocks, block_size] view (a
  // scale and zero point per row) rather than blocked (block_size attribute), which ORT 1.30 runs three times slower
  // (6.2 vs 2.1 ms for a 4864x896 matrix on 2 cores); the scales are reshaped and the zero point expanded at run time,
  // so neither becomes a folded initializer copy
  const rows = g.op1(
    'Add',
    [g.ints([n * nb]), g.op1('Unsqueeze', [zero64, g.ints([0])])],
    {},
    { outTypes: [{ dtype: 'int64', shape: [1] }] },
  );
  const flat = g.op1(
    'Reshape',
    [q, g.op1('Concat', [rows, g.ints([blockSize])], { axis: 0 }, { outTypes: [{ dtype: 'int64', shape: [2] }] })],
    {},
    { outTypes: [{ dtype: 'uint8', shape: [n * nb, blockSize] }] },
  );
  const sc = g.op1('Reshape', [scales, rows], {}, { outTypes: [{ dtype: dt, shape: [n * nb] }] });
  const zp = g.op1('Expand', [u8(bits === 4 ? 8 : 128), rows], {}, { outTypes: [{ dtype: 'uint8', shape: [n * nb] }] });
  const w = g.op1(
    'DequantizeLinear',
    [flat, sc, zp],
    { axis: 0 },
    { outTypes: [{ dtype: dt, shape: [n * nb, blockSize] }] },
  );
  return g.op1('Reshape', [w, g.ints([n, k])], {}, { outTypes: [{ dtype: dt, shape: [n, k] }] });
}

registerOp(
  'MatMulNBits',
  {
    grad: (c) => {
      const g = c.g;
      if (c.inputs.length > 3 && c.inputs.slice(3).some(Boolean))
        throw new Error('MatMulNBits gradient: zero_points / g_idx / bias inputs are not supported');
      if (c.needs.slice(1).some(Boolean))
        throw new Error(
          'MatMulNBits gradient: only the activation input A can be differentiated (the weight is frozen)',
        );
      if (!c.needs[0]) return [];
      const [, b, scales] = c.inputs as Value[];
      const n = aInt(c.attrs, 'N', 0);
      const k = aInt(c.attrs, 'K', 0);
      const bits = aInt(c.attrs, 'bits', 4);
      const bs = aInt(c.attrs, 'block_size', 32);
      const nb = k / bs;
      const gy = c.gradOutputs[0]!;
      const zero64 = runtimeZero(g, gy);
      const outShape = gy.shape ? [...gy.shape.slice(0, -1), k] : null;
      const mm = (gyc: Value, w: Value) =>
        g.op1('MatMul', [gyc, w], {}, { outTypes: [{ dtype: gy.dtype, shape: outShape }] });
      const chunk = nbitsGrad.chunkElements;
      if (n * k <= chunk) return [mm(gy, dequantizeNBitsGraph(g, b, scales, n, k, bits, bs, zero64))];
      // dX = sum over row chunks of dY[..., rows] W[rows, :]: one chunk's float32 rows live at a time (the slices of
      // the initializers start at a run-time offset, so they are not folded into copies either)
      const rows = Math.max(1, Math.floor(chunk / k));
      const at = (v: number) =>
        g.op1(
          'Add',
          [g.ints([v]), g.op1('Unsqueeze', [zero64, g.ints([0])])],
          {},
          { outTypes: [{ dtype: 'int64', shape: [1] }] },
        );
      let acc: Value | null = null;
      for (let r0 = 0; r0 < n; r0 += rows) {
        const r1 = Math.min(n, r0 + rows);
        const bc = g.op1(
          'Slice',
          [b, at(r0), at(r1), g.ints([0])],
          {},
          { outTypes: [{ dtype: b.dtype, shape: [r1 - r0, ...(b.shape ?? []).slice(1)] }] },
        );
        const sc = g.op1(
          'Slice',
          [scales, at(r0 * nb), at(r1 * nb), g.ints([0])],
          {},
          { outTypes: [{ dtype: scales.dtype, shape: [(r1 - r0) * nb] }] },
        );
        const gyc = g.op1(
          'Slice',
          [gy, g.ints([r0]), g.ints([r1]), g.ints([-1])],
          {},
          { outTypes: [{ dtype: gy.dtype, shape: gy.shape ? [...gy.shape.slice(0, -1), r1 - r0] : null }] },
        );
        const part = mm(gyc, dequantizeNBitsGraph(g, bc, sc, r1 - r0, k, bits, bs, zero64));
        acc = acc ? g.op1('Add', [acc, part]) : part;
      }
      return [acc];
    },
  },
  'com.microsoft',
);
