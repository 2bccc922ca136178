import { test } from 'node:test';
import assert from 'node:assert/strict';
import { softmax, logSoftmax } from '../../src-main/engine/ops/softmax';
import { gradcheck } from './gradcheck';
import { forward } from './opcheck';

for (const [shape, axis] of [
  [[5], -1],
  [[2, 3, 4], -1],
  [[2, 3, 4], 0],
  [[2, 3, 4], 1],
  [[3, 4], -2],
] as [number[], number][]) {
  test(`Softmax gradient, shape [${shape}], axis ${axis}`, async () => {
    await gradcheck({ inputs: [{ name: 'x', shape, range: [-3, 3] }], build: (_g, [x]) => softmax(x, axis) });
  });
  test(`LogSoftmax gradient, shape [${shape}], axis ${axis}`, async () => {
    await gradcheck({ inputs: [{ name: 'x', shape, range: [-3, 3] }], build: (_g, [x]) => logSoftmax(x, axis) });
  });
}

test('Softmax/LogSoftmax forward along a middle axis', async () => {
  const vals = [0, 1, 2, 3, 4, 5];
  const [s, l] = await forward([{ name: 'x', shape: [1, 2, 3], values: vals }], (_g, [x]) => [
    softmax(x, 1),
    logSoftmax(x, 1),
  ]);
  // along axis 1 pairs (0,3), (1,4), (2,5): softmax = [1/(1+e^3), e^3/(1+e^3)]
  const p = 1 / (1 + Math.exp(3));
  for (let j = 0; j < 3; j++) {
    assert.ok(Math.abs(s.data[j] - p) < 1e-12 && Math.abs(s.data[3 + j] - (1 - p)) < 1e-12);
    assert.ok(Math.abs(l.data[j] - Math.log(p)) < 1e-12);
  }
});

test('a chain through Softmax and LogSoftmax (the value is reused)', async () => {
  await gradcheck({
    inputs: [{ name: 'x', shape: [2, 5], range: [-2, 2] }],
    build: (_g, [x]) => [softmax(x), logSoftmax(softmax(x, 0))],
  });
});
