// The MatMulNBits gradient rule (frozen int4 / int8 blocks, dA only) in float64 on the JS reference evaluator (ORT has
// no double MatMulNBits; the same check in float32 runs on ORT first and must agree with the evaluator).
import { test } from 'node:test';
import { gradcheck } from './gradcheck';
import { mulberry32 } from '../../src-main/util/mulberry32';
import { nbitsGrad } from '../../src-main/engine/ops/quantized';

for (const bits of [4, 8] as const) {
  for (const [aShape, chunk] of [
    [[3, 64], 0],
    [[2, 3, 64], 0],
    [[2, 3, 64], 128],
  ] as const) {
    test(`MatMulNBits (${bits} bits) gradient for A [${aShape}] in float64${chunk ? `, the weight unpacked ${chunk} elements at a time` : ''}`, async () => {
      const saved = nbitsGrad.chunkElements;
      if (chunk) nbitsGrad.chunkElements = chunk; // 2 of the 5 rows per chunk: 3 chunks, the last one short
      const K = 64;
      const N = 5;
      const nb = K / 32;
      const r = mulberry32(bits * 7 + aShape.length);
      const bytes = Array.from({ length: (N * K * bits) / 8 }, () => Math.floor(r() * 256));
      await gradcheck({
        evaluator: 'js',
        inputs: [
          { name: 'a', shape: [...aShape] },
          { name: 'b', shape: [N, nb, (32 * bits) / 8], dtype: 'uint8', values: bytes },
          { name: 's', shape: [N * nb], range: [-0.2, 0.2], grad: false },
        ],
        build: (g, [a, b, s]) => {
          g.useDomain('com.microsoft', 1);
          return g.op1(
            'MatMulNBits',
            [a, b, s],
            { K, N, bits, block_size: 32 },
            { domain: 'com.microsoft', outTypes: [{ dtype: a.dtype, shape: [...aShape.slice(0, -1), N] }] },
          );
        },
      }).finally(() => (nbitsGrad.chunkElements = saved));
    });
  }
}
