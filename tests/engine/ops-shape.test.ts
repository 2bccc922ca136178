import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../../src-main/engine/graph/builder';
import { gradients } from '../../src-main/engine/autodiff';
import * as S from '../../src-main/engine/ops/shape';
import { mul } from '../../src-main/engine/ops/elementwise';
import { gradcheck } from './gradcheck';
import { forward, iota, relabel } from './opcheck';

const MAX = S.INT64_MAX;
const MIN = S.INT64_MIN;

// ---- Reshape / Flatten / Transpose / (Un)Squeeze -----------------------------------------------------------------

for (const [from, to, expect] of [
  [
    [2, 3, 4],
    [0, -1],
    [2, 12],
  ],
  [
    [2, 3, 4],
    [4, -1],
    [4, 6],
  ],
  [[2, 3, 4], [24], [24]],
  [[6], [1, 2, 1, 3], [1, 2, 1, 3]],
] as [number[], number[], number[]][]) {
  test(`Reshape [${from}] -> [${to}]: shape and gradient`, async () => {
    const [o] = await forward([{ name: 'x', shape: from, values: iota(from.reduce((a, b) => a * b, 1)) }], (_g, [x]) =>
      S.reshape(x, to),
    );
    assert.deepEqual(o.dims, expect);
    assert.deepEqual(o.data, Float64Array.from(iota(o.data.length)));
    await gradcheck({ inputs: [{ name: 'x', shape: from }], build: (_g, [x]) => S.reshape(x, to) });
  });
}

test('Reshape gradient with symbolic dims: 0-copy target when dims line up, runtime shape otherwise', async () => {
  // [B,T,6] -> [B,T,2,3]: gradient reshapes back with [0,0,6], no Shape node
  const g = new Graph('sym');
  const x = g.input('x', 'float32', ['B', 'T', 6]);
  const y = S.reshape(x, [0, 0, 2, 3]);
  assert.deepEqual(y.shape, ['B', 'T', 2, 3]);
  const n0 = g.nodes.length;
  const [gx] = gradients(y, [x]);
  assert.deepEqual(gx.shape, ['B', 'T', 6]);
  assert.ok(!g.nodes.slice(n0).some((n) => n.opType === 'Shape' && n.inputs[0] === x), 'no runtime Shape of x needed');
  await gradcheck({
    inputs: [{ name: 'x', shape: [2, 3, 6] }],
    build: (_g, [x]) => S.reshape(relabel(x, ['B', 'T', 6]), [0, 0, 2, 3]),
  });
  await gradcheck({
    inputs: [{ name: 'x', shape: [2, 3, 6] }],
    build: (_g, [x]) => S.reshape(relabel(x, ['B', 'T', 6]), [-1, 6]),
  });
  await gradcheck({
    inputs: [{ name: 'x', shape: [2, 3, 6] }],
    build: (_g, [x]) => S.reshape(relabel(x, ['B', 'T', 6]), [0, -1]),
  });
});

test('Flatten gradient, axis 1 and -1', async () => {
  await gradcheck({ inputs: [{ name: 'x', shape: [2, 3, 2] }], build: (_g, [x]) => S.flatten(x, 1) });
  await gradcheck({ inputs: [{ name: 'x', shape: [2, 3, 2] }], build: (_g, [x]) => S.flatten(x, -1) });
});

test('Transpose gradient: explicit perm and default (reversed) perm', async () => {
  const [o] = await forward([{ name: 'x', shape: [2, 3, 4], values: iota(24) }], (_g, [x]) =>
    S.transpose(x, [2, 0, 1]),
  );
  assert.deepEqual(o.dims, [4, 2, 3]);
  assert.equal(o.data[1], 4); // y[0,0,1] = x[0,1,0]
  await gradcheck({ inputs: [{ name: 'x', shape: [2, 3, 4] }], build: (_g, [x]) => S.transpose(x, [2, 0, 1]) });
  await gradcheck({ inputs: [{ name: 'x', shape: [2, 3, 4] }], build: (_g, [x]) => S.transpose(x) });
  await gradcheck({ inputs: [{ name: 'x', shape: [2, 3, 4, 2] }], build: (_g, [x]) => S.transpose(x, [0, 2, 1, 3]) });
});

test('Squeeze / Unsqueeze gradients with positive, negative and default axes', async () => {
  await gradcheck({ inputs: [{ name: 'x', shape: [2, 1, 3] }], build: (_g, [x]) => S.squeeze(x, [1]) });
  await gradcheck({ inputs: [{ name: 'x', shape: [2, 3, 1] }], build: (_g, [x]) => S.squeeze(x, [-1]) });
  await gradcheck({ inputs: [{ name: 'x', shape: [1, 3, 1] }], build: (_g, [x]) => S.squeeze(x) });
  await gradcheck({ inputs: [{ name: 'x', shape: [2, 3] }], build: (_g, [x]) => S.unsqueeze(x, [0, -1]) });
  await gradcheck({ inputs: [{ name: 'x', shape: [2, 3] }], build: (_g, [x]) => S.unsqueeze(x, [1]) });
});

// ---- Expand ----------------------------------------------------------------------------------------------------------

for (const [xs, target] of [
  [
    [3, 1],
    [2, 3, 4],
  ],
  [[1], [2, 3]],
  [
    [1, 4],
    [3, 1, 1],
  ],
  [
    [2, 3],
    [1, 3],
  ],
  [
    [2, 1, 3],
    [2, 4, 3],
  ],
] as [number[], number[]][]) {
  test(`Expand [${xs}] to [${target}] gradient`, async () => {
    await gradcheck({ inputs: [{ name: 'x', shape: xs }], build: (_g, [x]) => S.expand(x, target) });
  });
}

test('Expand with a runtime target shape sums over the broadcast axes', async () => {
  await gradcheck({
    inputs: [
      { name: 'x', shape: [3, 1] },
      { name: 'like', shape: [2, 3, 4], grad: false },
    ],
    build: (g, [x, like]) => S.expand(x, g.op1('Shape', [like])),
  });
});

// ---- Concat / Split ----------------------------------------------------------------------------------------------------

test('Concat gradient, static sizes, axis 1 and -1, one input frozen', async () => {
  await gradcheck({
    inputs: [
      { name: 'a', shape: [2, 1, 3] },
      { name: 'b', shape: [2, 2, 3] },
      { name: 'c', shape: [2, 3, 3] },
    ],
    build: (_g, [a, b, c]) => S.concat([a, b, c], 1),
  });
  await gradcheck({
    inputs: [
      { name: 'a', shape: [2, 2] },
      { name: 'b', shape: [2, 3], grad: false },
      { name: 'c', shape: [2, 1] },
    ],
    build: (_g, [a, b, c]) => S.concat([a, b, c], -1),
  });
});

test('Concat gradient with one symbolic size (static offsets) and with several (runtime offsets)', async () => {
  const build1 = (_g: Graph, [a, b, c]: any[]) => S.concat([a, relabel(b, [2, 'T', 3]), c], 1);
  await gradcheck({
    inputs: [
      { name: 'a', shape: [2, 1, 3] },
      { name: 'b', shape: [2, 2, 3] },
      { name: 'c', shape: [2, 3, 3] },
    ],
    build: build1,
  });
  await gradcheck({
    inputs: [
      { name: 'a', shape: [2, 3] },
      { name: 'b', shape: [1, 3] },
    ],
    build: (_g, [a, b]) => S.concat([a, relabel(b, ['T', 3])], 0),
  });
  await gradcheck({
    inputs: [
      { name: 'a', shape: [2, 1, 3] },
      { name: 'b', shape: [2, 2, 3] },
      { name: 'c', shape: [2, 3, 3] },
    ],
    build: (_g, [a, b, c]) => S.concat([relabel(a, [2, 'P', 3]), relabel(b, [2, 'T', 3]), c], -2),
  });
});

test('Split gradient: given sizes with an unused output (null gradient), equal parts, uneven parts', async () => {
  await gradcheck({
    inputs: [{ name: 'x', shape: [2, 6] }],
    build: (_g, [x]) => {
      const [p, , r] = S.split(x, [1, 2, 3], -1);
      return [p, r];
    },
  });
  const outs = await forward([{ name: 'x', shape: [7, 2], values: iota(14) }], (_g, [x]) => S.split(x, 3, 0));
  assert.deepEqual(
    outs.map((o) => o.dims),
    [
      [3, 2],
      [3, 2],
      [1, 2],
    ],
  );
  await gradcheck({ inputs: [{ name: 'x', shape: [7, 2] }], build: (_g, [x]) => S.split(x, 3, 0) });
  await gradcheck({ inputs: [{ name: 'x', shape: [2, 4] }], build: (_g, [x]) => S.split(x, 2, 1)[1] });
});

// ---- Slice / Pad ---------------------------------------------------------------------------------------------------------

const sliceCases: [
  string,
  number[],
  (number | bigint)[],
  (number | bigint)[],
  number[] | undefined,
  number[] | undefined,
][] = [
  ['basic two axes', [5, 6], [1, -4], [4, MAX], [0, 1], undefined],
  ['negative axis, end past the dim', [3, 5], [2], [100], [-1], undefined],
  ['reverse', [4, 3], [-1], [MIN], [0], [-1]],
  ['step 2', [3, 7], [1], [MAX], [1], [2]],
  ['step 3 from the start', [8, 2], [0], [8], [0], [3]],
  ['step -2 from the end', [2, 7], [-1], [MIN], [1], [-2]],
  ['step -3 with bounds', [9], [7], [1], [0], [-3]],
  ['empty', [3, 4], [2], [1], [1], undefined],
  ['last element', [3, 4], [-1], [MAX], [0], undefined],
  ['all but last (shifted logits)', [2, 5, 3], [0], [-1], [1], undefined],
  ['two axes with mixed steps', [4, 6, 2], [3, 1], [0, 6], [0, 1], [-1, 2]],
];

/** numpy-style reference slice of a row-major tensor. */
function refSlice(
  shape: number[],
  starts: (number | bigint)[],
  ends: (number | bigint)[],
  axes: number[],
  steps: number[],
): { dims: number[]; data: number[] } {
  const r = shape.length;
  const idx: number[][] = shape.map((n) => Array.from({ length: n }, (_, i) => i));
  axes.forEach((a, i) => {
    const k = a < 0 ? a + r : a;
    const { start, len } = S.sliceLen(shape[k], Number(starts[i]), Number(ends[i]), steps[i]);
    idx[k] = Array.from({ length: len }, (_, j) => start + j * steps[i]);
  });
  const dims = idx.map((l) => l.length);
  const data: number[] = [];
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const rec = (k: number, off: number) => {
    if (k === r) return void data.push(off);
    for (const i of idx[k]) rec(k + 1, off + i * strides[k]);
  };
  rec(0, 0);
  return { dims, data };
}

for (const [name, shape, starts, ends, axes, steps] of sliceCases) {
  test(`Slice ${name}: shape rule, values and gradient`, async () => {
    const n = shape.reduce((a, b) => a * b, 1);
    const ax = axes ?? starts.map((_, i) => i);
    const st = steps ?? starts.map(() => 1);
    const [o] = await forward([{ name: 'x', shape, values: iota(n) }], (_g, [x]) =>
      S.slice(x, starts, ends, axes, steps),
    );
    const ref = refSlice(shape, starts, ends, ax, st);
    assert.deepEqual(o.dims, ref.dims);
    assert.deepEqual([...o.data], ref.data);
    await gradcheck({ inputs: [{ name: 'x', shape }], build: (_g, [x]) => S.slice(x, starts, ends, axes, steps) });
  });
}

test('Slice gradient on symbolic dims (runtime clamping), steps 1 and -1', async () => {
  for (const [starts, ends, steps] of [
    [[0], [-1], [1]],
    [[1], [MAX], [1]],
    [[-2], [MAX], [1]],
    [[1], [100], [1]],
    [[-1], [MIN], [-1]],
    [[3], [0], [-1]],
    [[2], [1], [1]], // empty
  ] as [(number | bigint)[], (number | bigint)[], number[]][]) {
    await gradcheck({
      inputs: [{ name: 'x', shape: [2, 5] }],
      build: (_g, [x]) => S.slice(relabel(x, [2, 'T']), starts, ends, [1], steps),
    });
  }
});

test('Slice with a symbolic dim: build-time length when both bounds count from the same end', () => {
  const g = new Graph('symslice');
  const x = g.input('x', 'float32', ['B', 'T', 8]);
  assert.deepEqual(S.slice(x, [0], [-1], [1]).shape, ['B', '?', 8]);
  assert.deepEqual(S.slice(x, [-1], [MAX], [1]).shape, ['B', 1, 8]);
  assert.deepEqual(S.slice(x, [0], [1], [1]).shape, ['B', 1, 8]);
  assert.deepEqual(S.slice(x, [-3], [MAX], [1]).shape, ['B', '?', 8]); // min(3, T)
  assert.deepEqual(S.slice(x, [0], [4], [1]).shape, ['B', '?', 8]);
  assert.deepEqual(S.slice(x, [3], [2], [1]).shape, ['B', 0, 8]);
  assert.deepEqual(S.slice(x, [0], [MAX], [1]).shape, ['B', 'T', 8]);
  assert.deepEqual(S.slice(x, [-1], [MIN], [1], [-1]).shape, ['B', 'T', 8]);
  assert.throws(() => gradients(S.slice(x, [0], [MAX], [1], [2]), [x]), /step 2 along axis 1 needs a static dim/);
});

test('Pad gradient (constant mode): positive pads, negative (cropping) pads, axes input', async () => {
  await gradcheck({ inputs: [{ name: 'x', shape: [2, 3] }], build: (_g, [x]) => S.pad(x, [1, 0, 0, 2]) });
  await gradcheck({ inputs: [{ name: 'x', shape: [3, 4] }], build: (_g, [x]) => S.pad(x, [-1, 2, 1, -1], 0.5) });
  await gradcheck({
    inputs: [{ name: 'x', shape: [2, 3, 2] }],
    build: (g, [x]) => g.op1('Pad', [x, g.ints([1, 2]), null, g.ints([-2])]),
  });
});

test('shape ops on a frozen input emit no gradient nodes', () => {
  const g = new Graph('frozen');
  const w = g.input('w', 'float32', [4, 3]);
  const x = g.input('x', 'float32', [2, 3]);
  const c = S.concat([S.transpose(S.reshape(S.slice(w, [1], [3], [0]), [3, 2])), x], 0);
  const y = mul(c, c);
  const n0 = g.nodes.length;
  gradients(y, [x]);
  const back = g.nodes.slice(n0).map((n) => n.opType);
  assert.ok(!back.includes('Pad') && !back.includes('Transpose') && !back.includes('Reshape'), `got ${back.join(',')}`);
});
