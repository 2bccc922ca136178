import { test } from 'node:test';
import assert from 'node:assert/strict';
import { conv1d, conv1dChannelsLast } from '../../src-main/engine/ops/conv';
import { gradcheck } from './gradcheck';
import { relabel } from './opcheck';
import { assertAllClose, runGraph } from './ops-run';
import { mulberry32 } from '../../src-main/util/mulberry32';

// torch.nn.functional.conv1d by its definition: y[b, o, t] = bias[o] + sum_{c,k} w[o, c, k] x[b, c, t*stride + k - pad]
function conv1dRef(
  x: Float64Array,
  [B, C, T]: number[],
  w: Float64Array,
  [O, , K]: number[],
  bias: Float64Array | null,
  stride: number,
  pad: number,
) {
  const To = Math.floor((T + 2 * pad - K) / stride) + 1;
  const y = new Float64Array(B * O * To);
  for (let b = 0; b < B; b++)
    for (let o = 0; o < O; o++)
      for (let t = 0; t < To; t++) {
        let s = bias ? bias[o] : 0;
        for (let c = 0; c < C; c++)
          for (let k = 0; k < K; k++) {
            const i = t * stride + k - pad;
            if (i >= 0 && i < T) s += w[(o * C + c) * K + k] * x[(b * C + c) * T + i];
          }
        y[(b * O + o) * To + t] = s;
      }
  return { y, To };
}

const rand = (n: number, seed: number) => {
  const r = mulberry32(seed);
  return Float64Array.from({ length: n }, () => 2 * r() - 1);
};

for (const [B, C, T, O, K, stride, pad] of [
  [2, 3, 7, 4, 3, 1, 1],
  [2, 3, 8, 4, 3, 2, 1],
  [1, 2, 9, 3, 3, 2, 0],
  [1, 4, 5, 2, 1, 1, 0],
  [2, 2, 10, 3, 5, 3, 2],
]) {
  test(`Conv1d [${B},${C},${T}] * [${O},${C},${K}] stride ${stride} pad ${pad}: forward = definition, float64 gradients`, async () => {
    const x = rand(B * C * T, 1);
    const w = rand(O * C * K, 2);
    const bias = rand(O, 3);
    const ref = conv1dRef(x, [B, C, T], w, [O, C, K], bias, stride, pad);
    const [out] = await runGraph(
      [
        { name: 'x', dtype: 'float64', shape: [B, C, T], values: x },
        { name: 'w', dtype: 'float64', shape: [O, C, K], values: w },
        { name: 'b', dtype: 'float64', shape: [O], values: bias },
      ],
      (_g, [xv, wv, bv]) => conv1d(xv, wv, bv, { stride, padding: pad }),
    );
    assert.deepEqual(out.dims, [B, O, ref.To]);
    assertAllClose(out.data, ref.y, 1e-12, 1e-12, 'conv1d');
    await gradcheck({
      inputs: [
        { name: 'x', shape: [B, C, T] },
        { name: 'w', shape: [O, C, K] },
        { name: 'b', shape: [O] },
      ],
      build: (_g, [xv, wv, bv]) => conv1d(xv, wv, bv, { stride, padding: pad }),
      maxElems: 64,
    });
  });
}

test('Conv1d channels-last with a symbolic time length (stride 1), no bias: forward and float64 gradients', async () => {
  const [B, C, T, O, K] = [2, 3, 6, 2, 3];
  const x = rand(B * C * T, 4);
  const w = rand(O * C * K, 5);
  const ref = conv1dRef(x, [B, C, T], w, [O, C, K], null, 1, 1);
  // channels-last input = transpose of x
  const xl = new Float64Array(B * T * C);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++) for (let t = 0; t < T; t++) xl[(b * T + t) * C + c] = x[(b * C + c) * T + t];
  const [out] = await runGraph(
    [
      { name: 'x', dtype: 'float64', shape: [B, T, C], values: xl },
      { name: 'w', dtype: 'float64', shape: [O, C, K], values: w },
    ],
    (_g, [xv, wv]) => conv1dChannelsLast(relabel(xv, ['B', 'T', C]), wv, null, { padding: 1 }),
  );
  assert.deepEqual(out.dims, [B, T, O]);
  const want = new Float64Array(B * T * O);
  for (let b = 0; b < B; b++)
    for (let o = 0; o < O; o++) for (let t = 0; t < T; t++) want[(b * T + t) * O + o] = ref.y[(b * O + o) * T + t];
  assertAllClose(out.data, want, 1e-12, 1e-12, 'conv1d channels-last');
  await gradcheck({
    inputs: [
      { name: 'x', shape: [B, T, C] },
      { name: 'w', shape: [O, C, K] },
    ],
    build: (_g, [xv, wv]) => conv1dChannelsLast(relabel(xv, ['B', 'T', C]), wv, null, { padding: 1 }),
    maxElems: 64,
  });
});

test('Conv1d refuses what it cannot compute, naming the input', async () => {
  await assert.rejects(
    () =>
      runGraph(
        [
          { name: 'x', dtype: 'float32', shape: [1, 2, 2], values: [0, 0, 0, 0] },
          { name: 'w', dtype: 'float32', shape: [1, 2, 5], values: new Array(10).fill(0) },
        ],
        (_g, [x, w]) => conv1d(x, w, null),
      ),
    /shorter than the kernel/,
  );
  await assert.rejects(
    () =>
      runGraph(
        [
          { name: 'x', dtype: 'float32', shape: [1, 3, 4], values: new Array(12).fill(0) },
          { name: 'w', dtype: 'float32', shape: [1, 2, 1], values: [0, 0] },
        ],
        (_g, [x, w]) => conv1d(x, w, null),
      ),
    /'x' has 3 channels, the weight 2/,
  );
  await assert.rejects(
    () =>
      runGraph(
        [
          { name: 'x', dtype: 'float32', shape: [1, 4, 2], values: new Array(8).fill(0) },
          { name: 'w', dtype: 'float32', shape: [1, 2, 1], values: [0, 0] },
        ],
        (_g, [x, w]) => conv1dChannelsLast(relabel(x, [1, 'T', 2]), w, null, { stride: 2 }),
      ),
    /static time length/,
  );
});
