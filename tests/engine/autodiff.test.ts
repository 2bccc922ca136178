import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../../src-main/engine/graph/builder';
import { serializeModel } from '../../src-main/engine/graph/serialize';
import { gradients } from '../../src-main/engine/autodiff';
import { add, mul, tanh } from '../../src-main/engine/ops/elementwise';
import { matmul } from '../../src-main/engine/ops/matmul';
import { registerOp } from '../../src-main/engine/ops/registry';
import { Session } from '../../src-main/engine/runtime/session';
import { tensor, toNumbers } from '../../src-main/engine/runtime/tensor';
import { gradcheck } from './gradcheck';

test('a frozen weight gets no gradient work; the activation through it does', () => {
  const g = new Graph('frozen');
  const x = g.input('x', 'float32', [4, 3]);
  const w1 = g.initializer('w1', 'float32', [3, 3], new Float32Array(9));
  const w2 = g.initializer('w2', 'float32', [3, 2], new Float32Array(6));
  const h = tanh(matmul(x, w1)); // w1 frozen
  const y = matmul(h, w2);
  const before = g.nodes.length;
  const [gw2, gx] = gradients(y, [w2, x]);
  const back = g.nodes.slice(before);
  // dW2 = h^T dy (one Gemm); dh = dy W2^T (MatMul), through tanh, dx = dh W1^T (MatMul): no dW1 product.
  const products = back.filter((n) => n.opType === 'MatMul' || n.opType === 'Gemm');
  assert.equal(products.length, 3);
  assert.deepEqual(gw2.shape, [3, 2]);
  assert.deepEqual(gx.shape, [4, 3]);
  assert.ok(back.every((n) => n.name.startsWith('grad/')));
  // with only w2 requested, no gradient flows into x or w1 at all
  const g2 = new Graph('frozen2');
  const x2 = g2.input('x', 'float32', [4, 3]);
  const v1 = g2.initializer('w1', 'float32', [3, 3], new Float32Array(9));
  const v2 = g2.initializer('w2', 'float32', [3, 2], new Float32Array(6));
  const y2 = matmul(tanh(matmul(x2, v1)), v2);
  const n0 = g2.nodes.length;
  gradients(y2, [v2]);
  assert.deepEqual(
    g2.nodes
      .slice(n0)
      .map((n) => n.opType)
      .filter((t) => t !== 'Reshape'),
    ['Gemm'],
  );
});

test('a missing gradient rule fails with the op name', () => {
  const g = new Graph('missing');
  const x = g.input('x', 'float32', [3]);
  const y = g.op1('HardSwish', [x]);
  assert.throws(() => gradients(y, [x]), /no gradient rule for op 'HardSwish'/);
});

test('an unused wrt value is an error unless allowUnused (then zeros)', async () => {
  const g = new Graph('unused');
  const x = g.input('x', 'float32', [3]);
  const z = g.input('z', 'float32', [2]);
  const y = mul(x, x);
  assert.throws(() => gradients(y, [z]), /'z' does not influence/);
  const [gx, gz] = gradients(y, [x, z], { allowUnused: true });
  g.output(gx, 'gx');
  g.output(gz, 'gz');
  const s = await Session.create(serializeModel(g).model, { threads: 1 });
  const r = await s.run({ x: tensor('float32', [3], [1, 2, 3]), z: tensor('float32', [2], [5, 6]) });
  assert.deepEqual(toNumbers(r.gx), [2, 4, 6]);
  assert.deepEqual(toNumbers(r.gz), [0, 0]);
  await s.dispose();
});

test('integer paths (Shape -> Reshape) carry no gradient and need no rule', async () => {
  // Shape has no gradient rule: autodiff must not ask for one, while the float path through Reshape gets its gradient.
  const r = await gradcheck({
    inputs: [{ name: 'x', shape: [2, 3] }],
    build: (g, [x]) => {
      const shp = g.op1('Shape', [x]);
      const t = tanh(x);
      return g.op1('Reshape', [mul(t, t), shp]);
    },
  });
  assert.equal(r.checked, 6);
});

test('gradient of a multiply-used value across a two-layer MLP matches finite differences', async () => {
  await gradcheck({
    inputs: [
      { name: 'x', shape: [5, 3] },
      { name: 'w1', shape: [3, 4] },
      { name: 'b1', shape: [4] },
      { name: 'w2', shape: [4, 2] },
    ],
    build: (_g, [x, w1, b1, w2]) => {
      const h = tanh(add(matmul(x, w1), b1));
      return [matmul(h, w2), mul(h, h)];
    },
  });
});

test('gradcheck rejects a wrong gradient rule', async () => {
  // Softsign(x) = x / (1 + |x|); register a deliberately wrong rule (missing the square) for this test only.
  registerOp('Softsign', {
    grad: (c) => [
      c.g.op1('Div', [
        c.gradOutputs[0]!,
        c.g.op1('Add', [c.g.scalar(1, c.inputs[0]!), c.g.op1('Abs', [c.inputs[0]!])]),
      ]),
    ],
  });
  await assert.rejects(
    gradcheck({
      dtype: 'float32',
      inputs: [{ name: 'x', shape: [4], range: [0.5, 2] }],
      build: (g, [x]) => g.op1('Softsign', [x]),
    }),
    /autodiff .* vs finite difference/,
  );
});
