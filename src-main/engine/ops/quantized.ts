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

/** The float weight [N, K] (the scales' type) that a MatMulNBits node's B and scales stand for. */
export function dequantizeNBitsGraph(g: Graph, b: Value, scales: Value, n: number, k: number, bits: number, blockSize: number): Value {
  const nb = k / blockSize;
  const u8 = (v: number) => g.constant(new Uint8Array([v]), 'uint8', []);
  let q: Value;
  if (bits === 4) {
    const t = { outTypes: [{ dtype: 'uint8' as const, shape: [n, nb, blockSize / 2, 1] }] };
    const lo = g.op1('Unsqueeze', [g.op1('BitwiseAnd', [b, u8(0x0f)]), g.ints([-1])], {}, t);
    const hi = g.op1('Unsqueeze', [g.op1('BitShift', [b, u8(4)], { direction: 'RIGHT' }), g.ints([-1])], {}, t);
    q = g.op1('Concat', [lo, hi], { axis: -1 }, { outTypes: [{ dtype: 'uint8', shape: [n, nb, blockSize / 2, 2] }] });
  } else if (bits === 8) q = b;
  else throw new Error(`MatMulNBits gradient: ${bits} bits is not supported (4 or 8)`);
  const dt = scales.dtype;
  const f = g.op1('Cast', [q], { to: ONNX_DTYPE[dt] }, { outTypes: [{ dtype: dt, shape: bits === 4 ? [n, nb, blockSize / 2, 2] : [n, nb, blockSize] }] });
  const centred = g.op1('Sub', [g.op1('Reshape', [f, g.ints([n, nb, blockSize])]), g.scalar(bits === 4 ? 8 : 128, dt)]);
  const w = g.op1('Mul', [centred, g.op1('Reshape', [scales, g.ints([n, nb, 1])])]);
  return g.op1('Reshape', [w, g.ints([n, k])], {}, { outTypes: [{ dtype: dt, shape: [n, k] }] });
}

registerOp(
  'MatMulNBits',
  {
    grad: (c) => {
      const g = c.g;
      if (c.inputs.length > 3 && c.inputs.slice(3).some(Boolean)) throw new Error('MatMulNBits gradient: zero_points / g_idx / bias inputs are not supported');
      if (c.needs.slice(1).some(Boolean)) throw new Error('MatMulNBits gradient: only the activation input A can be differentiated (the weight is frozen)');
      if (!c.needs[0]) return [];
      const [, b, scales] = c.inputs as Value[];
      const n = aInt(c.attrs, 'N', 0);
      const k = aInt(c.attrs, 'K', 0);
      const w = dequantizeNBitsGraph(g, b, scales, n, k, aInt(c.attrs, 'bits', 4), aInt(c.attrs, 'block_size', 32));
      const gy = c.gradOutputs[0]!;
      const outShape = gy.shape ? [...gy.shape.slice(0, -1), k] : null;
      return [g.op1('MatMul', [gy, w], {}, { outTypes: [{ dtype: gy.dtype, shape: outShape }] })];
    },
  },
  'com.microsoft',
);
