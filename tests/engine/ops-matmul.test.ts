import { test } from 'node:test';
import { gemm, matmul } from '../../src-main/engine/ops/matmul';
import { gradcheck } from './gradcheck';

const cases: [number[], number[]][] = [
  [
    [3, 4],
    [4, 2],
  ], // plain
  [
    [2, 3, 4],
    [4, 5],
  ], // x @ W (the linear-layer path: dW as one GEMM)
  [
    [2, 3, 4],
    [2, 4, 5],
  ], // batched
  [
    [2, 1, 3, 4],
    [3, 4, 2],
  ], // batch broadcast on both sides
  [
    [1, 3, 4],
    [2, 4, 2],
  ], // size-1 batch broadcast
  [[4], [4, 3]], // 1-D left
  [[2, 3, 4], [4]], // 1-D right
  [[4], [4]], // dot
];
for (const [sa, sb] of cases) {
  test(`MatMul gradient, [${sa}] @ [${sb}]`, async () => {
    await gradcheck({
      inputs: [
        { name: 'a', shape: sa },
        { name: 'b', shape: sb },
      ],
      build: (_g, [a, b]) => matmul(a, b),
    });
  });
}

for (const transA of [false, true])
  for (const transB of [false, true]) {
    test(`Gemm gradient, transA=${transA} transB=${transB}, alpha/beta, broadcast bias`, async () => {
      const M = 3,
        K = 4,
        N = 2;
      await gradcheck({
        inputs: [
          { name: 'a', shape: transA ? [K, M] : [M, K] },
          { name: 'b', shape: transB ? [N, K] : [K, N] },
          { name: 'c', shape: [N] },
        ],
        build: (_g, [a, b, c]) => gemm(a, b, c, { alpha: 0.7, beta: 1.3, transA, transB }),
      });
    });
  }

test('Gemm gradient with a column bias [M,1] and no alpha/beta', async () => {
  await gradcheck({
    inputs: [
      { name: 'a', shape: [3, 4] },
      { name: 'b', shape: [4, 5] },
      { name: 'c', shape: [3, 1] },
    ],
    build: (_g, [a, b, c]) => gemm(a, b, c),
  });
});
