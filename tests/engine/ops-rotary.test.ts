import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../../src-main/engine/graph/builder';
import {
  applyRotary,
  positionsFromMask,
  rangePositions,
  ropeCache,
  ropeInvFreq,
  type RopeScaling,
} from '../../src-main/engine/ops/rotary';
import { matmul } from '../../src-main/engine/ops/matmul';
import { gradcheck } from './gradcheck';
import { assertAllClose, randomValues, runGraph } from './ops-run';

/** transformers' _compute_llama3_parameters / linear / default inverse frequencies, written out directly. */
function hfInvFreq(dim: number, base: number, s: RopeScaling | null): number[] {
  const inv: number[] = [];
  for (let i = 0; i < dim; i += 2) inv.push(1 / base ** (i / dim));
  if (!s || s.type === 'default') return inv;
  if (s.type === 'linear') return inv.map((f) => f / s.factor!);
  const {
    factor,
    lowFreqFactor: lo,
    highFreqFactor: hi,
    originalMaxPositionEmbeddings: old,
  } = s as Required<RopeScaling>;
  return inv.map((f) => {
    const wl = (2 * Math.PI) / f;
    const scaled = wl > old / lo ? f / factor : f;
    const smooth = (old / wl - lo) / (hi - lo);
    const medium = !(wl < old / hi) && !(wl > old / lo);
    return medium ? ((1 - smooth) * scaled) / factor + smooth * scaled : scaled;
  });
}

/** HF apply_rotary_pos_emb with rotate_half, x [B, H, S, D], positions [B or 1, S]. */
function refRotary(x: Float64Array, [B, H, S, D]: number[], pos: number[], pb: number, inv: number[]): Float64Array {
  const y = new Float64Array(x.length);
  const h = D / 2;
  for (let b = 0; b < B; b++)
    for (let n = 0; n < H; n++)
      for (let s = 0; s < S; s++) {
        const p = pos[(pb === 1 ? 0 : b) * S + s];
        const o = ((b * H + n) * S + s) * D;
        for (let i = 0; i < D; i++) {
          const a = p * inv[i % h];
          const rot = i < h ? -x[o + i + h] : x[o + i - h];
          y[o + i] = x[o + i] * Math.cos(a) + rot * Math.sin(a);
        }
      }
  return y;
}

const scalings: [string, RopeScaling | null][] = [
  ['default', null],
  ['linear x2', { type: 'linear', factor: 2 }],
  // small original context so that head_dim 16 covers the high, medium and low frequency bands
  ['llama3', { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 }],
];

test('ropeInvFreq matches the transformers formulas (default, linear, llama3 with all three bands)', () => {
  for (const [name, s] of scalings) assertAllClose(ropeInvFreq(16, 10000, s), hfInvFreq(16, 10000, s), 1e-14, 0, name);
  const inv = ropeInvFreq(16, 10000, null);
  const ll = ropeInvFreq(16, 10000, scalings[2][1]);
  assert.ok(ll[0] === inv[0] && ll[7] === inv[7] / 8 && ll.some((f, i) => f !== inv[i] && f !== inv[i] / 8), 'bands');
  assert.throws(() => ropeInvFreq(15, 10000), /even/);
  assert.throws(
    () => ropeInvFreq(16, 10000, { type: 'yarn' as 'linear', factor: 2 }),
    /unsupported rope_scaling type 'yarn'/,
  );
});

for (const [impl, dtype] of [
  ['fused', 'float32'],
  ['matmul', 'float64'],
  ['matmul', 'float32'],
] as const)
  for (const [name, scaling] of scalings) {
    test(`applyRotary ${impl} ${dtype} (${name}) matches HF rotate_half, per-batch positions from a cache offset`, async () => {
      const dims = [2, 3, 4, 16];
      const x = randomValues(2 * 3 * 4 * 16, 11);
      const pos = [5, 6, 7, 8, 0, 1, 2, 3]; // batch 0 decodes after a 5-token cache
      const [y] = await runGraph(
        [
          { name: 'x', dtype, shape: dims, values: x },
          { name: 'pos', dtype: 'int64', shape: [2, 4], values: pos },
        ],
        (g, [X, P]) => applyRotary(X, ropeCache(g, P, 16, 10000, scaling, dtype), { impl }),
      );
      const tol = dtype === 'float64' ? 1e-12 : 3e-6;
      assertAllClose(y.data, refRotary(x, dims, pos, 2, hfInvFreq(16, 10000, scaling)), tol, tol, `rotary ${impl}`);
    });
  }

test('applyRotary: a shared [1, S] position row broadcasts over the batch (fused and matmul), rangePositions with a past offset', async () => {
  const dims = [3, 2, 5, 8];
  const x = randomValues(3 * 2 * 5 * 8, 3);
  const outs = await runGraph(
    [
      { name: 'x', dtype: 'float32', shape: dims, values: x },
      { name: 'ids', dtype: 'int64', shape: [3, 5], values: new Array(15).fill(0) },
      { name: 'past', dtype: 'int64', shape: [], values: [7] },
    ],
    (g, [X, ids, past]) => {
      const cache = ropeCache(g, rangePositions(ids, past), 8, 500);
      return [applyRotary(X, cache, { impl: 'fused' }), applyRotary(X, cache, { impl: 'matmul' })];
    },
  );
  const ref = refRotary(x, dims, [7, 8, 9, 10, 11], 1, hfInvFreq(8, 500, null));
  assertAllClose(outs[0].data, ref, 3e-6, 3e-6, 'fused');
  assertAllClose(outs[1].data, ref, 3e-6, 3e-6, 'matmul');
});

test('positionsFromMask gives left-padded position ids (cumsum - 1, 1 at pads), last S columns', async () => {
  const [p] = await runGraph(
    [
      { name: 'mask', dtype: 'int64', shape: [2, 5], values: [0, 0, 1, 1, 1, 1, 1, 1, 1, 1] },
      { name: 'ids', dtype: 'int64', shape: [2, 3], values: [0, 0, 0, 0, 0, 0] },
    ],
    (_g, [m, ids]) => positionsFromMask(m, ids),
  );
  assert.deepEqual(p.dims, [2, 3]);
  assert.deepEqual([...p.data], [0, 1, 2, 2, 3, 4]);
});

for (const shape of [
  [1, 2, 3, 8],
  [2, 1, 4, 4],
])
  test(`rotary gradient wrt x, float64 rotation-matrix path, [${shape}]`, async () => {
    await gradcheck({
      inputs: [
        { name: 'x', shape },
        {
          name: 'pos',
          shape: [shape[0], shape[2]],
          dtype: 'int64',
          values: Array.from({ length: shape[0] * shape[2] }, (_, i) => 3 + 2 * i),
        },
      ],
      build: (g, [x, pos]) => applyRotary(x, ropeCache(g, pos, shape[3], 10000, scalings[2][1], 'float64')),
    });
  });

test('RotaryEmbedding (fused) gradient rule wrt x, float32, with a projection before it', async () => {
  await gradcheck({
    dtype: 'float32',
    inputs: [
      { name: 'x', shape: [2, 2, 3, 8] },
      { name: 'w', shape: [8, 8] },
      { name: 'pos', shape: [1, 3], dtype: 'int64', values: [4, 5, 6] },
    ],
    build: (g, [x, w, pos]) => applyRotary(matmul(x, w), ropeCache(g, pos, 8, 100), { impl: 'fused' }),
  });
});

// The fused op's rule (the same op with negated sin) in float64: ORT has no double RotaryEmbedding kernel, so the JS
// reference evaluator runs it (after agreeing with ORT's float32 kernel on the same graph). The rule holds for any
// cos/sin tables (both halves of a pair share them), so the tables are random, full and partial rotation.
for (const [dims, rd] of [
  [[1, 2, 3, 8], 0],
  [[2, 1, 4, 4], 0],
  [[2, 2, 3, 8], 4],
] as const)
  test(`RotaryEmbedding (fused) gradient wrt x in float64, [${dims}]${rd ? `, rotary_embedding_dim ${rd}` : ''}`, async () => {
    const half = (rd || dims[3]) / 2;
    const cache = [dims[0], dims[2], half];
    await gradcheck({
      evaluator: 'js',
      inputs: [
        { name: 'x', shape: [...dims] },
        { name: 'w', shape: [dims[3]] },
        { name: 'cos', shape: cache, grad: false },
        { name: 'sin', shape: cache, grad: false },
      ],
      build: (g, [x, w, cos, sin]) =>
        g.op1('RotaryEmbedding', [g.op1('Mul', [x, w]), cos, sin], {
          interleaved: 0,
          ...(rd ? { rotary_embedding_dim: rd, num_heads: dims[1] } : {}),
        }),
    });
  });

test('applyRotary rejects bad layouts and float64 fused', () => {
  const g = new Graph('t');
  const pos = g.input('pos', 'int64', [1, 4]);
  const cache = ropeCache(g, pos, 8, 10000);
  assert.throws(
    () => applyRotary(g.input('q', 'float32', [1, 4, 8]), cache),
    /applyRotary\('q'\): expected \[B, n_heads, S, 8\]/,
  );
  assert.throws(
    () => applyRotary(g.input('q64', 'float64', [1, 2, 4, 8]), cache, { impl: 'fused' }),
    /no float64 RotaryEmbedding/,
  );
  assert.throws(() => ropeCache(g, g.input('fpos', 'float32', [1, 4]), 8, 10000), /positions 'fpos' must be int64/);
});
