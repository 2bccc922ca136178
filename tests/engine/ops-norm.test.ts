import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../../src-main/engine/graph/builder';
import { layerNorm, rmsNorm } from '../../src-main/engine/ops/norm';
import { add, mul } from '../../src-main/engine/ops/elementwise';
import { gradcheck } from './gradcheck';
import { assertAllClose, randomValues, runGraph } from './ops-run';

function refNorm(
  x: Float64Array,
  D: number,
  w: Float64Array,
  b: Float64Array | null,
  eps: number,
  rms: boolean,
): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    const row = x.subarray(r * D, r * D + D);
    const mean = rms ? 0 : row.reduce((s, v) => s + v, 0) / D;
    const v = row.reduce((s, u) => s + (u - mean) ** 2, 0) / D;
    const inv = 1 / Math.sqrt(v + eps);
    for (let i = 0; i < D; i++) y[r * D + i] = (row[i] - mean) * inv * w[i] + (b ? b[i] : 0);
  }
  return y;
}

for (const dtype of ['float64', 'float32'] as const) {
  test(`layerNorm and rmsNorm forward match a direct computation (${dtype})`, async () => {
    const shape = [2, 3, 8];
    const x = randomValues(48, 1, -2, 3);
    const w = randomValues(8, 2, 0.5, 1.5);
    const b = randomValues(8, 3);
    const [ln, rms] = await runGraph(
      [
        { name: 'x', dtype, shape, values: x },
        { name: 'w', dtype, shape: [8], values: w },
        { name: 'b', dtype, shape: [8], values: b },
      ],
      (_g, [X, W, B]) => [layerNorm(X, W, B, { epsilon: 1e-5 }), rmsNorm(X, W, { epsilon: 1e-6 })],
    );
    assert.deepEqual(ln.dims, shape);
    const tol = dtype === 'float64' ? 1e-12 : 2e-6;
    assertAllClose(ln.data, refNorm(x, 8, w, b, 1e-5, false), tol, tol, 'layerNorm');
    assertAllClose(rms.data, refNorm(x, 8, w, null, 1e-6, true), tol, tol, 'rmsNorm');
  });
}

for (const shape of [
  [2, 3, 8],
  [4, 16],
]) {
  const D = shape[shape.length - 1];
  test(`LayerNormalization gradient wrt x, scale, bias, [${shape}]`, async () => {
    await gradcheck({
      inputs: [
        { name: 'x', shape, range: [-2, 2] },
        { name: 'scale', shape: [D], range: [0.5, 1.5] },
        { name: 'bias', shape: [D] },
      ],
      build: (_g, [x, s, b]) => layerNorm(x, s, b, { epsilon: 1e-5 }),
    });
  });
  test(`RMSNormalization gradient wrt x and weight, [${shape}]`, async () => {
    await gradcheck({
      inputs: [
        { name: 'x', shape, range: [-2, 2] },
        { name: 'weight', shape: [D], range: [0.5, 1.5] },
      ],
      build: (_g, [x, w]) => rmsNorm(x, w, { epsilon: 1e-6 }),
    });
  });
}

test('LayerNormalization gradient in float32 reuses the Mean/InvStdDev outputs', async () => {
  await gradcheck({
    dtype: 'float32',
    inputs: [
      { name: 'x', shape: [3, 8], range: [-2, 2] },
      { name: 'scale', shape: [8], range: [0.5, 1.5] },
      { name: 'bias', shape: [8] },
    ],
    build: (_g, [x, s, b]) => layerNorm(x, s, b),
  });
});

test('norm gradients over two trailing axes (axis -2) and without bias', async () => {
  await gradcheck({
    inputs: [
      { name: 'x', shape: [2, 3, 4], range: [-2, 2] },
      { name: 'scale', shape: [3, 4], range: [0.5, 1.5] },
    ],
    build: (_g, [x, s]) => [layerNorm(x, s, null, { axis: -2 }), rmsNorm(x, s, { axis: -2 })],
  });
});

test('frozen scale: only x is differentiated, norm output used twice', async () => {
  await gradcheck({
    inputs: [
      { name: 'x', shape: [4, 16], range: [-2, 2] },
      { name: 'scale', shape: [16], range: [0.5, 1.5], grad: false },
      { name: 'bias', shape: [16], grad: false },
    ],
    build: (_g, [x, s, b]) => {
      const y = rmsNorm(layerNorm(x, s, b), s);
      return add(mul(y, y), y);
    },
  });
});

test('norm emitters reject mismatched dtypes with the tensor name', () => {
  const g = new Graph('t');
  const x = g.input('x', 'float32', [2, 4]);
  assert.throws(() => rmsNorm(x, g.constant([1, 1, 1, 1], 'float64', [4])), /rmsNorm\('x'\).*float32/);
  assert.throws(
    () => layerNorm(x, g.constant([1, 1, 1, 1], 'float32', [4]), g.constant([0, 0, 0, 0], 'float64', [4])),
    /layerNorm\('x'\)/,
  );
  assert.throws(() => rmsNorm(new Graph('old', { opset: 17 }).input('y', 'float32', [4]), x), /opset >= 23/);
});
