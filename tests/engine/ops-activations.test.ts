import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as A from '../../src-main/engine/ops/activations';
import { gradcheck } from './gradcheck';
import { forward } from './opcheck';

const shapes = [[7], [2, 3, 4]];

for (const shape of shapes) {
  test(`Gelu (fused, tanh approximation) gradient in float64, shape [${shape}]`, async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape, range: [-3, 3] }],
      build: (_g, [x]) => A.gelu(x, { approximate: 'tanh' }),
    });
  });
  test(`Gelu (fused, exact) gradient in float32 (no double Erf kernel in ORT CPU), shape [${shape}]`, async () => {
    await gradcheck({
      dtype: 'float32',
      inputs: [{ name: 'x', shape, range: [-3, 3] }],
      build: (_g, [x]) => A.gelu(x),
    });
  });
  test(`Gelu (fused, exact) gradient in float64 on the JS reference evaluator, shape [${shape}]`, async () => {
    await gradcheck({ evaluator: 'js', inputs: [{ name: 'x', shape, range: [-3, 3] }], build: (_g, [x]) => A.gelu(x) });
    await gradcheck({
      evaluator: 'js',
      inputs: [{ name: 'x', shape, range: [-3, 3] }],
      build: (_g, [x]) => A.geluComposite(x, 'none'),
    });
  });
  test(`Gelu compositions: tanh in float64, exact in float32, shape [${shape}]`, async () => {
    await gradcheck({ inputs: [{ name: 'x', shape, range: [-3, 3] }], build: (_g, [x]) => A.geluComposite(x, 'tanh') });
    await gradcheck({
      dtype: 'float32',
      inputs: [{ name: 'x', shape, range: [-3, 3] }],
      build: (_g, [x]) => A.geluComposite(x, 'none'),
    });
  });
  test(`QuickGELU, SiLU, Relu gradients in float64, shape [${shape}]`, async () => {
    await gradcheck({ inputs: [{ name: 'x', shape, range: [-4, 4] }], build: (_g, [x]) => A.quickGelu(x) });
    await gradcheck({ inputs: [{ name: 'x', shape, range: [-4, 4] }], build: (_g, [x]) => A.silu(x) });
    await gradcheck({ inputs: [{ name: 'x', shape, range: [-2, 2] }], build: (_g, [x]) => A.relu(x) });
  });
}

test('activation forward values match their definitions (fused Gelu = composition)', async () => {
  const xs = [-3, -1.5, -0.3, 0, 0.2, 1, 2.5, 4];
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  const tanhGelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  const f64 = await forward([{ name: 'x', shape: [8], values: xs }], (_g, [x]) => [
    A.gelu(x, { approximate: 'tanh' }),
    A.geluComposite(x, 'tanh'),
    A.quickGelu(x),
    A.silu(x),
    A.relu(x),
    A.activation('gelu_pytorch_tanh', x),
  ]);
  xs.forEach((v, i) => {
    // ORT's Gelu function body carries its constants as float attributes (sqrt(2/pi) rounded to float32)
    assert.ok(Math.abs(f64[0].data[i] - tanhGelu(v)) < 1e-7);
    assert.ok(Math.abs(f64[1].data[i] - tanhGelu(v)) < 1e-12);
    assert.ok(Math.abs(f64[2].data[i] - v * sig(1.702 * v)) < 1e-12);
    assert.ok(Math.abs(f64[3].data[i] - v * sig(v)) < 1e-12);
    assert.equal(f64[4].data[i], Math.max(v, 0));
    assert.equal(f64[5].data[i], f64[0].data[i]);
  });
  const f32 = await forward([{ name: 'x', shape: [8], dtype: 'float32', values: xs }], (_g, [x]) => [
    A.gelu(x),
    A.geluComposite(x),
    A.activation('gelu', x),
  ]);
  // exact GELU reference values (x * Phi(x)) from scipy: Phi(1) = 0.8413447460685429, Phi(-1.5) = 0.0668072012688581
  assert.ok(Math.abs(f32[0].data[5] - 0.8413447460685429) < 1e-6);
  assert.ok(Math.abs(f32[0].data[1] - -1.5 * 0.0668072012688581) < 1e-6);
  xs.forEach((_, i) => {
    assert.ok(Math.abs(f32[0].data[i] - f32[1].data[i]) < 1e-6);
    assert.equal(f32[2].data[i], f32[0].data[i]);
  });
});

test('activation() names unknown activations', async () => {
  await assert.rejects(
    forward([{ name: 'x', shape: [1], values: [0] }], (_g, [x]) => A.activation('mish', x)),
    /activation 'mish' is not supported/,
  );
});

test('Gelu falls back to the composition below opset 20', async () => {
  const [o] = await forward(
    [{ name: 'x', shape: [3], dtype: 'float32', values: [-1, 0, 1] }],
    (g, [x]) => {
      const y = A.gelu(x, { approximate: 'tanh' });
      assert.ok(!g.nodes.some((n) => n.opType === 'Gelu'));
      return y;
    },
    18,
  );
  assert.ok(Math.abs(o.data[2] - 0.8411920070648193) < 1e-6);
});

test('erfSeries (float64 exact GELU) matches erf to 1e-15 and runs on ORT in float64', async () => {
  const xs = [0.1, 0.5, 1, 2, 3, -1.5, 4, 5, 5.9, 7, -30, 0];
  const want = [
    0.1124629160182849, 0.5204998778130465, 0.8427007929497149, 0.9953222650189527, 0.9999779095030014,
    -0.9661051464753108, 0.9999999845827421, 0.9999999999984626, 0.9999999999999999, 1, -1, 0,
  ];
  const { runGraph } = await import('./ops-run');
  const [out] = await runGraph([{ name: 'x', dtype: 'float64', shape: [xs.length], values: xs }], (_g, [x]) =>
    A.erfSeries(x),
  );
  for (let i = 0; i < xs.length; i++)
    assert.ok(Math.abs(out.data[i] - want[i]) < 2e-15, `erf(${xs[i]}) = ${out.data[i]}, want ${want[i]}`);
});

test('activation("gelu") in float64 (erf series) has a correct gradient on ORT (float64 check)', async () => {
  for (const shape of [[7], [2, 3, 4]])
    await gradcheck({ inputs: [{ name: 'x', shape, range: [-4, 4] }], build: (_g, [x]) => A.activation('gelu', x) });
});

test('SiLU gate x * Sigmoid(x): one folded rule, exact through SwiGLU, the Sigmoid shared, either operand order', async () => {
  const { sigmoid, mul } = await import('../../src-main/engine/ops/elementwise');
  const { gradients } = await import('../../src-main/engine/autodiff');
  const shape = [2, 3, 5];
  // SwiGLU: silu(g) * u, as the decoder MLP
  await gradcheck({
    inputs: [
      { name: 'g', shape, range: [-4, 4] },
      { name: 'u', shape },
    ],
    build: (_g, [g, u]) => mul(A.silu(g), u),
  });
  // Sigmoid(x) * x, and the Sigmoid also read by another op (its own rule adds that path)
  await gradcheck({
    inputs: [
      { name: 'x', shape, range: [-4, 4] },
      { name: 'w', shape },
    ],
    build: (_g, [x, w]) => {
      const s = sigmoid(x);
      return [mul(s, x), mul(s, w)];
    },
  });
  // the rule replaces Mul + Sigmoid chains: no Sub (1 - s) is emitted
  const [o] = await forward([{ name: 'x', shape: [4], values: [-2, -0.5, 0.5, 3] }], (g, [x]) => {
    const y = A.silu(x);
    const n0 = g.nodes.length;
    const [dx] = gradients(y, [x]);
    assert.deepEqual(
      g.nodes
        .slice(n0)
        .map((n) => n.opType)
        .filter((t) => t !== 'ConstantOfShape' && t !== 'Shape' && t !== 'Constant'),
      ['Mul', 'Sub', 'Mul', 'Add'],
    );
    return dx;
  });
  for (const [i, x] of [-2, -0.5, 0.5, 3].entries()) {
    const s = 1 / (1 + Math.exp(-x));
    assert.ok(Math.abs(o.data[i] - (s + x * s * (1 - s))) < 1e-12);
  }
  // a gradient asked for the Sigmoid's output itself keeps the two paths apart
  const [dx, ds] = await forward([{ name: 'x', shape: [3], values: [-1, 0.25, 2] }], (g, [x]) => {
    const s = sigmoid(x);
    return gradients(mul(x, s), [x, s]);
  });
  for (const [i, x] of [-1, 0.25, 2].entries()) {
    const s = 1 / (1 + Math.exp(-x));
    assert.ok(Math.abs(ds.data[i] - x) < 1e-12);
    assert.ok(Math.abs(dx.data[i] - (s + x * s * (1 - s))) < 1e-12);
  }
});
