import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../../src-main/engine/graph/builder';
import { gradients } from '../../src-main/engine/autodiff';
import * as I from '../../src-main/engine/ops/indexing';
import { matmul } from '../../src-main/engine/ops/matmul';
import { mul, square } from '../../src-main/engine/ops/elementwise';
import { gradcheck } from './gradcheck';
import { forward, iota, relabel } from './opcheck';

// ---- Gather --------------------------------------------------------------------------------------------------------

test('Gather (embedding lookup, axis 0): repeated and negative ids accumulate', async () => {
  await gradcheck({
    inputs: [
      { name: 'w', shape: [6, 4] },
      { name: 'ids', shape: [2, 3], dtype: 'int64', values: [2, 5, 2, -1, 0, 2] },
    ],
    build: (_g, [w, ids]) => I.gather(w, ids, 0),
  });
});

test('Gather gradient along inner axes, negative axis, scalar and int32 indices', async () => {
  await gradcheck({
    inputs: [
      { name: 'x', shape: [2, 5, 3] },
      { name: 'i', shape: [2, 2], dtype: 'int64', values: [4, 0, 4, 1] },
    ],
    build: (_g, [x, i]) => I.gather(x, i, 1),
  });
  await gradcheck({
    inputs: [
      { name: 'x', shape: [3, 4] },
      { name: 'i', shape: [3], dtype: 'int32', values: [3, -4, 3] },
    ],
    build: (_g, [x, i]) => I.gather(x, i, -1),
  });
  await gradcheck({
    inputs: [
      { name: 'x', shape: [3, 4] },
      { name: 'i', shape: [], dtype: 'int64', values: [2] },
    ],
    build: (_g, [x, i]) => I.gather(x, i, 0),
  });
  await gradcheck({
    inputs: [
      { name: 'x', shape: [2, 3, 4] },
      { name: 'i', shape: [], dtype: 'int64', values: [-1] },
    ],
    build: (_g, [x, i]) => I.gather(x, i, 1),
  });
});

test('Gather gradient with symbolic data dims (runtime zeros shape)', async () => {
  await gradcheck({
    inputs: [
      { name: 'w', shape: [5, 3] },
      { name: 'ids', shape: [4], dtype: 'int64', values: [1, 1, 4, 0] },
    ],
    build: (_g, [w, ids]) => I.gather(relabel(w, ['V', 3]), ids, 0),
  });
  await gradcheck({
    inputs: [
      { name: 'x', shape: [2, 5, 3] },
      { name: 'i', shape: [3], dtype: 'int64', values: [0, 4, 0] },
    ],
    build: (_g, [x, i]) => I.gather(relabel(x, ['B', 'T', 3]), i, 1),
  });
});

test('a frozen embedding table gets no gradient work; the requested projection does', () => {
  const g = new Graph('frozen');
  const table = g.initializer('embed', 'float32', [10, 4], new Float32Array(40));
  const proj = g.input('proj', 'float32', [4, 2]);
  const ids = g.input('ids', 'int64', [2, 3]);
  const y = matmul(I.gather(table, ids), proj);
  const n0 = g.nodes.length;
  const [gp] = gradients(y, [proj]);
  assert.deepEqual(gp.shape, [4, 2]);
  const back = g.nodes.slice(n0).map((n) => n.opType);
  assert.ok(
    !back.includes('ScatterND') && !back.includes('ConstantOfShape'),
    `unexpected backward ops: ${back.join(',')}`,
  );
  // requested: one ScatterND into a [10,4] buffer
  const g2 = new Graph('trained');
  const t2 = g2.input('embed', 'float32', [10, 4]);
  const ids2 = g2.input('ids', 'int64', [2, 3]);
  const y2 = I.gather(t2, ids2);
  const m0 = g2.nodes.length;
  const [gt] = gradients(y2, [t2]);
  assert.deepEqual(gt.shape, [10, 4]);
  assert.equal(g2.nodes.slice(m0).filter((n) => n.opType === 'ScatterND').length, 1);
});

test('GatherElements gradient (repeated indices), axes 0 and -1', async () => {
  await gradcheck({
    inputs: [
      { name: 'x', shape: [3, 4] },
      { name: 'i', shape: [2, 4], dtype: 'int64', values: [0, 2, 2, 1, 0, 0, 2, 1] },
    ],
    build: (_g, [x, i]) => I.gatherElements(x, i, 0),
  });
  await gradcheck({
    inputs: [
      { name: 'x', shape: [2, 5] },
      { name: 'i', shape: [2, 3], dtype: 'int64', values: [4, 4, 0, 1, 2, 1] },
    ],
    build: (_g, [x, i]) => I.gatherElements(x, i, -1),
  });
});

// ---- Where ------------------------------------------------------------------------------------------------------------

for (const [cs, as, bs] of [
  [
    [2, 3],
    [2, 3],
    [2, 3],
  ],
  [[3], [2, 3], [1]],
  [[2, 1], [3], [2, 3]],
  [[2, 1, 3], [4, 1], []],
] as [number[], number[], number[]][]) {
  test(`Where gradient, cond [${cs}], a [${as}], b [${bs}] (the condition is not differentiated)`, async () => {
    const n = cs.reduce((a, b) => a * b, 1);
    await gradcheck({
      inputs: [
        { name: 'cond', shape: cs, dtype: 'bool', values: Array.from({ length: n }, (_, i) => i % 3 !== 1) },
        { name: 'a', shape: as },
        { name: 'b', shape: bs },
      ],
      build: (_g, [c, a, b]) => I.where(c, a, b),
    });
  });
}

test('Where with one side frozen, maskedFill and a mask from a comparison', async () => {
  await gradcheck({
    inputs: [
      { name: 'cond', shape: [4], dtype: 'bool', values: [true, false, false, true] },
      { name: 'a', shape: [2, 4] },
      { name: 'b', shape: [2, 4], grad: false },
    ],
    build: (_g, [c, a, b]) => I.where(c, a, b),
  });
  await gradcheck({
    inputs: [{ name: 'x', shape: [3, 4] }],
    build: (_g, [x]) => I.maskedFill(x, I.greater(x, 0), -5),
  });
  const [o] = await forward(
    [
      { name: 'x', shape: [4], values: [1, 2, 3, 4] },
      { name: 'labels', shape: [4], dtype: 'int64', values: [5, -100, 7, -100] },
    ],
    (_g, [x, labels]) => mul(x, I.maskToFloat(I.notEqualMask(labels, -100), 'float64')),
  );
  assert.deepEqual([...o.data], [1, 0, 3, 0]);
});

// ---- Cast -------------------------------------------------------------------------------------------------------------

test('Cast gradient: float32 <-> float64 round trip; casts to int/bool carry none', async () => {
  await gradcheck({
    dtype: 'float32',
    inputs: [{ name: 'x', shape: [2, 3] }],
    build: (_g, [x]) => I.cast(square(I.cast(x, 'float64')), 'float32'),
  });
  await gradcheck({
    inputs: [{ name: 'x', shape: [2, 3] }],
    build: (_g, [x]) => mul(x, I.cast(I.cast(mul(x, 10), 'int64'), 'float64')),
  });
  await gradcheck({
    dtype: 'float32',
    inputs: [
      { name: 'x', shape: [3] },
      { name: 'y', shape: [3], dtype: 'float64', grad: false, values: [1, 2, 3] },
    ],
    build: (g, [x, y]) => g.op1('CastLike', [mul(I.castLike(x, y), y), x]),
  });
  const [o] = await forward([{ name: 'x', shape: [3], values: [1.7, -2.2, 3] }], (_g, [x]) => I.cast(x, 'int64'));
  assert.deepEqual([...o.data], [1, -2, 3]);
});

test('Cast gradient in float64: through a float32 stretch (back-cast to float64) and float64 -> float64', async () => {
  // x^2 has exact central differences, so a wide eps keeps float32 rounding (~6e-8 relative) far below the tolerance
  await gradcheck({
    eps: 0.05,
    inputs: [{ name: 'x', shape: [2, 3], range: [0.5, 2] }],
    build: (_g, [x]) => I.cast(square(I.cast(x, 'float32')), 'float64'),
  });
  await gradcheck({ inputs: [{ name: 'x', shape: [4] }], build: (_g, [x]) => mul(I.cast(square(x), 'float64'), x) });
});

test('CastLike gradient in float64: to the first input only (the target y gets its gradient through the Mul alone)', async () => {
  await gradcheck({
    inputs: [
      { name: 'x', shape: [2, 3] },
      { name: 'y', shape: [3] },
    ],
    build: (g, [x, y]) => mul(g.op1('CastLike', [mul(x, x), y]), y),
  });
});

test('comparison helpers', async () => {
  const outs = await forward([{ name: 'x', shape: [4], values: iota(4) }], (_g, [x]) =>
    [
      I.less(x, 2),
      I.lessOrEqual(x, 2),
      I.greaterOrEqual(x, 2),
      I.logicalAnd(I.greater(x, 0), I.less(x, 3)),
      I.logicalOr(I.equal(x, 0), I.equal(x, 3)),
    ].map((m) => I.cast(m, 'float64')),
  );
  assert.deepEqual(
    outs.map((o) => [...o.data]),
    [
      [1, 1, 0, 0],
      [1, 1, 1, 0],
      [0, 0, 1, 1],
      [0, 1, 1, 0],
      [1, 0, 0, 1],
    ],
  );
});
