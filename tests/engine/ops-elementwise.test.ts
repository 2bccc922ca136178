import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src-main/engine/ops/elementwise';
import type { Value } from '../../src-main/engine/graph/builder';
import { gradcheck } from './gradcheck';
import { erf64 } from './js-eval';

// Broadcasting cases: same shape, scalar, trailing vector, size-1 axes on both sides, lower rank.
const binaryShapes: [number[], number[]][] = [
  [
    [2, 3],
    [2, 3],
  ],
  [[2, 3], []],
  [[4], [3, 1]],
  [
    [2, 1, 3],
    [4, 1],
  ],
  [
    [1, 3],
    [2, 1],
  ],
];

for (const [op, fn, bRange] of [
  ['Add', E.add, undefined],
  ['Sub', E.sub, undefined],
  ['Mul', E.mul, undefined],
  ['Div', E.div, [0.5, 2] as [number, number]],
] as const) {
  for (const [sa, sb] of binaryShapes) {
    test(`${op} gradient, shapes [${sa}] and [${sb}]`, async () => {
      const r = await gradcheck({
        inputs: [
          { name: 'a', shape: sa },
          { name: 'b', shape: sb, range: bRange },
        ],
        build: (_g, [a, b]) => fn(a, b),
      });
      assert.ok(r.checked > 0);
    });
  }
}

test('Pow gradient w.r.t. base and exponent, broadcast exponent', async () => {
  await gradcheck({
    inputs: [
      { name: 'a', shape: [2, 3], range: [0.5, 2] },
      { name: 'b', shape: [3], range: [-1.5, 2.5] },
    ],
    build: (_g, [a, b]) => E.pow(a, b),
  });
});

test('Pow gradient with a constant exponent (only the base is differentiated)', async () => {
  await gradcheck({ inputs: [{ name: 'a', shape: [5], range: [-2, 2] }], build: (_g, [a]) => E.pow(a, 3) });
  await gradcheck({ inputs: [{ name: 'a', shape: [5], range: [0.3, 2] }], build: (_g, [a]) => E.pow(a, -0.5) });
});

const unary: [string, (x: any) => any, [number, number] | undefined][] = [
  ['Neg', E.neg, undefined],
  ['Sqrt', E.sqrt, [0.3, 2]],
  ['Reciprocal', E.reciprocal, [0.3, 2]],
  ['Exp', E.exp, undefined],
  ['Log', E.log, [0.3, 2]],
  ['Tanh', E.tanh, [-2, 2]],
  ['Sigmoid', E.sigmoid, [-3, 3]],
  ['Identity', E.identity, undefined],
];
for (const [name, fn, range] of unary) {
  for (const shape of [[7], [2, 3, 2]]) {
    test(`${name} gradient, shape [${shape}]`, async () => {
      await gradcheck({ inputs: [{ name: 'x', shape, range }], build: (_g, [x]) => fn(x) });
    });
  }
}

test('Erf gradient (float32: ORT CPU has no double Erf kernel)', async () => {
  await gradcheck({
    dtype: 'float32',
    inputs: [{ name: 'x', shape: [2, 5], range: [-2, 2] }],
    build: (_g, [x]) => E.erf(x),
  });
});

test('Erf gradient in float64 on the JS reference evaluator, through a product', async () => {
  await gradcheck({
    evaluator: 'js',
    inputs: [{ name: 'x', shape: [2, 5], range: [-2.5, 2.5] }],
    build: (_g, [x]) => E.erf(x),
  });
  await gradcheck({
    evaluator: 'js',
    inputs: [
      { name: 'x', shape: [3, 2], range: [-2, 2] },
      { name: 'y', shape: [2] },
    ],
    build: (_g, [x, y]) => E.mul(E.erf(E.mul(x, y)), x),
  });
});

test('the JS reference erf matches known values to 1e-15', () => {
  // erf(0.5), erf(1), erf(2), erf(3) (mpmath, 20 digits)
  for (const [x, v] of [
    [0.5, 0.5204998778130465377],
    [1, 0.8427007929497148693],
    [2, 0.9953222650189527342],
    [3, 0.9999779095030014146],
    [-1, -0.8427007929497148693],
  ])
    assert.ok(Math.abs(erf64(x) - v) <= 1e-15, `erf(${x}) = ${erf64(x)}, expected ${v}`);
  assert.equal(erf64(0), 0);
  assert.equal(erf64(7), 1);
});

// Floor, Ceil, Round and Sign are locally constant: their rule is a zero gradient. Checked against finite differences
// in float64 (zero away from the jumps), alone (allowUnused) and inside a product whose other factor carries the
// gradient: d(floor(x) x)/dx = floor(x).
for (const [name, fn] of [
  ['Floor', (x: Value) => x.graph.op1('Floor', [x])],
  ['Ceil', (x: Value) => x.graph.op1('Ceil', [x])],
  ['Round', (x: Value) => x.graph.op1('Round', [x])],
  ['Sign', (x: Value) => x.graph.op1('Sign', [x])],
] as const) {
  test(`${name} has a zero gradient (float64 finite differences away from the jumps)`, async () => {
    // values at least 0.05 from every integer and half-integer (Round's ties, Sign's 0)
    const xs = [-2.3, -1.8, -0.6, -0.15, 0.2, 0.35, 1.1, 2.7];
    const alone = await gradcheck({
      allowUnused: true,
      inputs: [{ name: 'x', shape: [8], values: xs }],
      build: (_g, [x]) => E.mul(fn(x), 3),
    });
    assert.equal(alone.maxAbsErr, 0, 'exactly zero, as the finite differences');
    await gradcheck({ inputs: [{ name: 'x', shape: [2, 4], values: xs }], build: (_g, [x]) => E.mul(fn(x), x) });
  });
}

test('composite expression: value used several times accumulates gradients', async () => {
  // f(x, y) = x*y + x/(y*y) - exp(x)*x
  await gradcheck({
    inputs: [
      { name: 'x', shape: [3, 2] },
      { name: 'y', shape: [2], range: [0.5, 1.5] },
    ],
    build: (_g, [x, y]) => E.sub(E.add(E.mul(x, y), E.div(x, E.mul(y, y))), E.mul(E.exp(x), x)),
  });
});
