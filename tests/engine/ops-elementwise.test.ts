import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src-main/engine/ops/elementwise';
import { gradcheck } from './gradcheck';

// Broadcasting cases: same shape, scalar, trailing vector, size-1 axes on both sides, lower rank.
const binaryShapes: [number[], number[]][] = [
  [[2, 3], [2, 3]],
  [[2, 3], []],
  [[4], [3, 1]],
  [[2, 1, 3], [4, 1]],
  [[1, 3], [2, 1]],
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
  await gradcheck({ dtype: 'float32', inputs: [{ name: 'x', shape: [2, 5], range: [-2, 2] }], build: (_g, [x]) => E.erf(x) });
});

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
