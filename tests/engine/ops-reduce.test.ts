import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../../src-main/engine/graph/builder';
import { gradients } from '../../src-main/engine/autodiff';
import { serializeModel } from '../../src-main/engine/graph/serialize';
import { Session } from '../../src-main/engine/runtime/session';
import { tensor, toNumbers } from '../../src-main/engine/runtime/tensor';
import * as R from '../../src-main/engine/ops/reduce';
import { gradcheck } from './gradcheck';
import { relabel } from './opcheck';

const cases: [string, number[], number[] | null, boolean][] = [
  ['all axes, keepdims', [2, 3], null, true],
  ['all axes, no keepdims', [2, 3, 2], null, false],
  ['last axis, keepdims', [2, 3, 4], [-1], true],
  ['last axis, no keepdims', [2, 3, 4], [-1], false],
  ['two axes (one negative), no keepdims', [2, 3, 4], [0, -1], false],
  ['middle axis, keepdims', [2, 3, 4], [1], true],
  ['1-D, no keepdims', [5], [0], false],
];

for (const [op, fn] of [
  ['ReduceSum', R.reduceSum],
  ['ReduceMean', R.reduceMean],
  ['ReduceMax', R.reduceMax],
  ['ReduceMin', R.reduceMin],
] as const) {
  for (const [name, shape, axes, keepdims] of cases) {
    test(`${op} gradient, ${name}, [${shape}]`, async () => {
      await gradcheck({ inputs: [{ name: 'x', shape }], build: (_g, [x]) => fn(x, axes, { keepdims }) });
    });
  }
  test(`${op}: empty axes with noop_with_empty_axes is the identity (gradient too)`, async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [2, 3] }],
      build: (_g, [x]) => fn(x, [], { noopWithEmptyAxes: true }),
    });
  });
  test(`${op} gradient on symbolic dims (runtime shapes/counts)`, async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [3, 4] }],
      build: (_g, [x]) => fn(relabel(x, ['B', 4]), [0], { keepdims: false }),
    });
    await gradcheck({
      inputs: [{ name: 'x', shape: [3, 4] }],
      build: (_g, [x]) => fn(relabel(x, ['B', 'T']), [-1], { keepdims: true }),
    });
  });
}

test('ReduceSum/ReduceMean with runtime axes and keepdims=1', async () => {
  for (const fn of [R.reduceSum, R.reduceMean]) {
    await gradcheck({
      inputs: [
        { name: 'x', shape: [2, 3, 2] },
        { name: 'axes', shape: [1], dtype: 'int64', values: [1] },
      ],
      build: (_g, [x, axes]) => fn(x, axes, { keepdims: true }),
    });
  }
  const g = new Graph('rt');
  const x = g.input('x', 'float32', [2, 3]);
  const axes = g.input('axes', 'int64', [1]);
  assert.throws(() => gradients(R.reduceSum(x, axes, { keepdims: false }), [x]), /axes must be a build-time constant/);
});

test('ReduceMax splits the gradient among ties; ReduceMin picks the minimum', async () => {
  const g = new Graph('ties');
  const x = g.input('x', 'float64', [2, 4]);
  const mx = R.reduceMax(x, [1], { keepdims: false });
  const mn = R.reduceMin(x, [1], { keepdims: false });
  const [gmax] = gradients(mx, [x]);
  const [gmin] = gradients(mn, [x]);
  g.output(gmax, 'gmax');
  g.output(gmin, 'gmin');
  const s = await Session.create(serializeModel(g).model, { threads: 1 });
  const r = await s.run({ x: tensor('float64', [2, 4], [1, 3, 3, 2, 5, 0, 0, 0]) });
  await s.dispose();
  assert.deepEqual(toNumbers(r.gmax), [0, 0.5, 0.5, 0, 1, 0, 0, 0]);
  assert.deepEqual(toNumbers(r.gmin), [1, 0, 0, 0, 0, 1 / 3, 1 / 3, 1 / 3]);
});

test('ReduceSum backward with static reduced dims does not read the input (constant Expand target)', () => {
  const g = new Graph('static');
  const x = g.input('x', 'float32', ['B', 'T', 8]);
  const y = R.reduceMean(x, [-1], { keepdims: false });
  const n0 = g.nodes.length;
  const [gx] = gradients(y, [x]);
  assert.deepEqual(gx.shape, ['B', 'T', 8]);
  const back = g.nodes.slice(n0);
  assert.ok(
    !back.some((n) => n.inputs.includes(x)),
    `backward nodes reading x: ${back.filter((n) => n.inputs.includes(x)).map((n) => n.opType)}`,
  );
});
