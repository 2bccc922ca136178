import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, type Value } from '../../src-main/engine/graph/builder';
import { attention, paddingMask } from '../../src-main/engine/ops/attention';
import { gradients } from '../../src-main/engine/autodiff';
import { matmul } from '../../src-main/engine/ops/matmul';
import { add } from '../../src-main/engine/ops/elementwise';
import { rmsNorm } from '../../src-main/engine/ops/norm';
import { applyRotary, rangePositions, ropeCache } from '../../src-main/engine/ops/rotary';
import { reshape, transpose } from '../../src-main/engine/ops/shape';
import { gradcheck } from './gradcheck';
import { assertAllClose, randomValues, runGraph } from './ops-run';

interface Ref {
  q: Float64Array; // [B, H, S, d]
  k: Float64Array; // [B, Hkv, L, d] (all keys, past first)
  v: Float64Array;
  B: number;
  H: number;
  Hkv: number;
  S: number;
  L: number;
  d: number;
  mask?: number[]; // [B, L] 1 keep 0 pad
  causal: boolean;
}

/** Direct attention: head h reads KV head floor(h / (H / Hkv)); query t sees key j iff (!causal || j <= t + L - S) and j is not padding. */
function refAttention(r: Ref): Float64Array {
  const { B, H, Hkv, S, L, d } = r;
  const G = H / Hkv;
  const out = new Float64Array(B * H * S * d);
  const sq = Math.fround(Math.sqrt(Math.fround(1 / Math.sqrt(d))));
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / G);
      for (let t = 0; t < S; t++) {
        const sc = new Float64Array(L);
        for (let j = 0; j < L; j++) {
          let dot = 0;
          for (let i = 0; i < d; i++)
            dot += r.q[((b * H + h) * S + t) * d + i] * sq * (r.k[((b * Hkv + kh) * L + j) * d + i] * sq);
          sc[j] = dot;
          // additive, finite masks (padding and causal add up): a fully padded query row stays finite
          if (r.mask && r.mask[b * L + j] === 0) sc[j] += -1e9;
          if (r.causal && j > t + L - S) sc[j] += -1e9;
        }
        const m = Math.max(...sc);
        const e = sc.map((x) => Math.exp(x - m));
        const z = e.reduce((a, c) => a + c, 0);
        for (let i = 0; i < d; i++) {
          let acc = 0;
          for (let j = 0; j < L; j++) acc += (e[j] / z) * r.v[((b * Hkv + kh) * L + j) * d + i];
          out[((b * H + h) * S + t) * d + i] = acc;
        }
      }
    }
  return out;
}

const B = 2,
  H = 4,
  Hkv = 2,
  S = 5,
  d = 8;
const q = randomValues(B * H * S * d, 1, -1.5, 1.5);
const k = randomValues(B * Hkv * S * d, 2, -1.5, 1.5);
const v = randomValues(B * Hkv * S * d, 3);
// batch 0: right padding (last token), batch 1: left padding (first two): query rows 0, 1 of batch 1 see only pads
const mask = [1, 1, 1, 1, 0, 0, 0, 1, 1, 1];
const qkv = (dtype: 'float32' | 'float64') => [
  { name: 'q', dtype, shape: [B, H, S, d], values: q },
  { name: 'k', dtype, shape: [B, Hkv, S, d], values: k },
  { name: 'v', dtype, shape: [B, Hkv, S, d], values: v },
];

for (const dtype of ['float64', 'float32'] as const)
  test(`attention forward vs direct computation: GQA 4/2 heads, causal, padding mask (${dtype}), no NaN on padded rows`, async () => {
    const [y] = await runGraph(
      [...qkv(dtype), { name: 'mask', dtype: 'int64', shape: [B, S], values: mask }],
      (_g, [Q, K, V, M]) => attention(Q, K, V, { causal: true, mask: M }).out,
    );
    assert.deepEqual(y.dims, [B, H, S, d]);
    assert.ok(y.data.every(Number.isFinite), 'all outputs finite');
    const ref = refAttention({ q, k, v, B, H, Hkv, S, L: S, d, mask, causal: true });
    if (dtype === 'float64') assertAllClose(y.data, ref, 1e-12, 1e-12, 'attention');
    else {
      // float32: in a fully padded row (-1e9 + score rounds to -1e9) the scores are lost; compare the real rows only
      const keep = (b: number, t: number) => mask.slice(b * S, b * S + t + 1).some((m) => m === 1);
      const pick = (x: ArrayLike<number>) =>
        Array.from(x).filter((_, i) => keep(Math.floor(i / (H * S * d)), Math.floor(i / d) % S));
      assert.ok(pick(ref).length < ref.length, 'some rows are fully padded');
      assertAllClose(pick(y.data), pick(ref), 2e-5, 2e-5, 'attention');
    }
  });

test('attention forward, non-causal (vision tower) with equal head counts and no mask', async () => {
  const [y] = await runGraph(
    [
      { name: 'q', dtype: 'float64', shape: [B, 2, S, d], values: k },
      { name: 'k', dtype: 'float64', shape: [B, 2, S, d], values: v },
      { name: 'v', dtype: 'float64', shape: [B, 2, S, d], values: q.subarray(0, B * 2 * S * d) },
    ],
    (_g, [Q, K, V]) => attention(Q, K, V).out,
  );
  assertAllClose(
    y.data,
    refAttention({ q: k, k: v, v: q.subarray(0, B * 2 * S * d), B, H: 2, Hkv: 2, S, L: S, d, causal: false }),
    1e-12,
    1e-12,
    'attention',
  );
});

test('decode with a KV cache equals the matching rows of full attention (padding mask over past + new)', async () => {
  const P = 3,
    N = S - P; // cache holds the first 3 tokens, 2 new queries
  const slice = (x: Float64Array, heads: number, from: number, to: number) => {
    const out: number[] = [];
    for (let b = 0; b < B; b++)
      for (let h = 0; h < heads; h++)
        for (let t = from; t < to; t++) for (let i = 0; i < d; i++) out.push(x[((b * heads + h) * S + t) * d + i]);
    return out;
  };
  const outs = await runGraph(
    [
      { name: 'q', dtype: 'float64', shape: [B, H, N, d], values: slice(q, H, P, S) },
      { name: 'k', dtype: 'float64', shape: [B, Hkv, N, d], values: slice(k, Hkv, P, S) },
      { name: 'v', dtype: 'float64', shape: [B, Hkv, N, d], values: slice(v, Hkv, P, S) },
      { name: 'pk', dtype: 'float64', shape: [B, Hkv, P, d], values: slice(k, Hkv, 0, P) },
      { name: 'pv', dtype: 'float64', shape: [B, Hkv, P, d], values: slice(v, Hkv, 0, P) },
      { name: 'mask', dtype: 'int64', shape: [B, S], values: mask },
    ],
    (_g, [Q, K, V, PK, PV, M]) => {
      const r = attention(Q, K, V, { causal: true, mask: M, pastKey: PK, pastValue: PV });
      return [r.out, r.presentKey!, r.presentValue!];
    },
  );
  const full = refAttention({ q, k, v, B, H, Hkv, S, L: S, d, mask, causal: true });
  const rows: number[] = [];
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let t = P; t < S; t++) for (let i = 0; i < d; i++) rows.push(full[((b * H + h) * S + t) * d + i]);
  assert.deepEqual(outs[0].dims, [B, H, N, d]);
  assertAllClose(outs[0].data, rows, 1e-12, 1e-12, 'decode rows');
  assert.deepEqual(outs[1].dims, [B, Hkv, S, d]);
  assertAllClose(outs[1].data, k, 0, 0, 'present key');
  assertAllClose(outs[2].data, v, 0, 0, 'present value');
});

const rightPad = [1, 1, 1, 1, 0, 1, 1, 1, 0, 0]; // no query row is fully masked (finite differences stay exact)

test('attention gradient wrt q, k, v (float64, GQA 4/2, causal, right padding)', async () => {
  await gradcheck({
    inputs: [
      { name: 'q', shape: [B, H, S, d] },
      { name: 'k', shape: [B, Hkv, S, d] },
      { name: 'v', shape: [B, Hkv, S, d] },
      { name: 'mask', shape: [B, S], dtype: 'int64', values: rightPad },
    ],
    build: (_g, [Q, K, V, M]) => attention(Q, K, V, { causal: true, mask: M }).out,
  });
});

for (const dtype of ['float64', 'float32'] as const)
  test(`attention gradient reusing saved probabilities (saveProbs), GQA, causal + padding, ${dtype}`, async () => {
    await gradcheck({
      dtype,
      inputs: [
        { name: 'q', shape: [B, H, 3, 4] },
        { name: 'k', shape: [B, Hkv, 3, 4] },
        { name: 'v', shape: [B, Hkv, 3, 4] },
        { name: 'mask', shape: [B, 3], dtype: 'int64', values: [1, 1, 0, 1, 1, 1] },
      ],
      build: (g, [Q, K, V, M]) => {
        const r = attention(Q, K, V, { causal: true, mask: M, saveProbs: true });
        const n = g.nodes.find((x) => x.opType === 'Attention')!;
        assert.equal(n.outputs.length, 4, 'probabilities output emitted');
        return r.out;
      },
    });
  });

test('attention gradient, non-causal with key padding and a custom scale (vision-style, H = Hkv = 3)', async () => {
  await gradcheck({
    inputs: [
      { name: 'q', shape: [2, 3, 4, 4] },
      { name: 'k', shape: [2, 3, 4, 4] },
      { name: 'v', shape: [2, 3, 4, 4] },
      { name: 'mask', shape: [2, 4], dtype: 'int64', values: [1, 1, 1, 1, 1, 0, 1, 0] },
    ],
    build: (_g, [Q, K, V, M]) => attention(Q, K, V, { mask: M, scale: 0.3 }).out,
  });
});

test('attention gradient wrt input projection weights (q/k/v from one x; x used three times)', async () => {
  const Din = 6;
  await gradcheck({
    inputs: [
      { name: 'x', shape: [B, 1, S, Din] },
      { name: 'wq', shape: [H, Din, d] },
      { name: 'wk', shape: [Hkv, Din, d] },
      { name: 'wv', shape: [Hkv, Din, d], grad: false }, // frozen
      { name: 'mask', shape: [B, S], dtype: 'int64', values: rightPad },
    ],
    build: (_g, [x, wq, wk, wv, M]) =>
      attention(matmul(x, wq), matmul(x, wk), matmul(x, wv), { causal: true, mask: M }).out,
  });
});

test('attention gradient with a KV cache wrt q, k, v, past k/v, and through present key/value', async () => {
  const P = 3,
    N = 2;
  await gradcheck({
    inputs: [
      { name: 'q', shape: [B, H, N, d] },
      { name: 'k', shape: [B, Hkv, N, d] },
      { name: 'v', shape: [B, Hkv, N, d] },
      { name: 'pk', shape: [B, Hkv, P, d] },
      { name: 'pv', shape: [B, Hkv, P, d] },
      { name: 'mask', shape: [B, P + N], dtype: 'int64', values: [1, 1, 1, 1, 1, 0, 1, 1, 1, 1] },
    ],
    build: (_g, [Q, K, V, PK, PV, M]) => {
      const r = attention(Q, K, V, { causal: true, mask: M, pastKey: PK, pastValue: PV });
      return [r.out, r.presentKey!, r.presentValue!];
    },
  });
});

test('attention gradient with symbolic sequence lengths (causal masks built at run time), with and without padding', async () => {
  await gradcheck({
    inputs: [
      { name: 'q', shape: [2, 2, 4, 4] },
      { name: 'k', shape: [2, 1, 4, 4] },
      { name: 'v', shape: [2, 1, 4, 4] },
      { name: 'mask', shape: [2, 4], dtype: 'int64', values: [1, 1, 0, 0, 1, 1, 1, 1] },
    ],
    build: (g, [Q, K, V, M]) => {
      const sym = (x: Value) =>
        g.op1('Identity', [x], {}, { outTypes: [{ dtype: x.dtype, shape: ['B', x.shape![1], 'T', 4] }] });
      const m = g.op1('Identity', [M], {}, { outTypes: [{ dtype: 'int64', shape: ['B', 'T'] }] });
      return [
        attention(sym(Q), sym(K), sym(V), { causal: true }).out,
        attention(sym(Q), sym(K), sym(V), { causal: true, mask: m }).out,
      ];
    },
  });
});

for (const dtype of ['float64', 'float32'] as const)
  test(`decode with a KV cache and no padding mask (is_causal aligned bottom-right), ${dtype}`, async () => {
    const P = 2,
      N = S - P;
    const slice = (x: Float64Array, heads: number, from: number, to: number) => {
      const out: number[] = [];
      for (let b = 0; b < B; b++)
        for (let h = 0; h < heads; h++)
          for (let t = from; t < to; t++) for (let i = 0; i < d; i++) out.push(x[((b * heads + h) * S + t) * d + i]);
      return out;
    };
    const [y] = await runGraph(
      [
        { name: 'q', dtype, shape: [B, H, N, d], values: slice(q, H, P, S) },
        { name: 'k', dtype, shape: [B, Hkv, N, d], values: slice(k, Hkv, P, S) },
        { name: 'v', dtype, shape: [B, Hkv, N, d], values: slice(v, Hkv, P, S) },
        { name: 'pk', dtype, shape: [B, Hkv, P, d], values: slice(k, Hkv, 0, P) },
        { name: 'pv', dtype, shape: [B, Hkv, P, d], values: slice(v, Hkv, 0, P) },
      ],
      (_g, [Q, K, V, PK, PV]) => attention(Q, K, V, { causal: true, pastKey: PK, pastValue: PV }).out,
    );
    const full = refAttention({ q, k, v, B, H, Hkv, S, L: S, d, causal: true });
    const rows: number[] = [];
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let t = P; t < S; t++) for (let i = 0; i < d; i++) rows.push(full[((b * H + h) * S + t) * d + i]);
    const tol = dtype === 'float64' ? 1e-12 : 2e-5;
    assertAllClose(y.data, rows, tol, tol, 'decode rows');
  });

test('attention gradient in float32 (ORT kernel precision)', async () => {
  await gradcheck({
    dtype: 'float32',
    inputs: [
      { name: 'q', shape: [1, 2, 3, 4] },
      { name: 'k', shape: [1, 1, 3, 4] },
      { name: 'v', shape: [1, 1, 3, 4] },
    ],
    build: (_g, [Q, K, V]) => attention(Q, K, V, { causal: true }).out,
  });
});

test('attention validates heads, dtypes and cache pairs, naming the tensors; padding masks are shared', () => {
  const g = new Graph('t');
  const Q = g.input('q', 'float32', [1, 4, 3, 8]);
  const K = g.input('k', 'float32', [1, 3, 3, 8]);
  const K2 = g.input('k2', 'float32', [1, 2, 3, 8]);
  const V = g.input('v', 'float32', [1, 2, 3, 8]);
  assert.throws(() => attention(Q, K, V), /n_kv_heads 3 does not divide n_heads 4/);
  assert.throws(() => attention(Q, g.input('k64', 'float64', [1, 2, 3, 8]), V), /k 'k64' has dtype float64/);
  assert.throws(
    () => attention(Q, K2, V, { pastKey: g.input('pk', 'float32', [1, 2, 1, 8]) }),
    /pastKey and pastValue go together/,
  );
  assert.throws(() => attention(g.input('q3', 'float32', [1, 3, 32]), K2, V), /must be \[B, heads, S, head_dim\]/);
  const m = g.input('mask', 'int64', [1, 3]);
  assert.equal(paddingMask(m, 'float32'), paddingMask(m, 'float32'));
});

test('the backward recomputes the probabilities by default and reuses them with saveProbs', () => {
  for (const saveProbs of [false, true]) {
    const g = new Graph('t');
    const Q = g.input('q', 'float32', [1, 4, 3, 8]);
    const K = g.input('k', 'float32', [1, 2, 3, 8]);
    const V = g.input('v', 'float32', [1, 2, 3, 8]);
    const { out } = attention(Q, K, V, { causal: true, saveProbs });
    const before = g.nodes.length;
    gradients(out, [Q, K, V]);
    const softmaxes = g.nodes.slice(before).filter((n) => n.opType === 'Softmax').length;
    assert.equal(softmaxes, saveProbs ? 0 : 1, `saveProbs ${saveProbs}`);
  }
});

/** A LLaMA/Qwen2 attention block: RMSNorm -> q/k/v projections -> heads -> RoPE -> GQA causal attention -> o_proj + x. */
function llamaAttentionBlock(
  g: Graph,
  x: Value,
  wn: Value,
  wq: Value,
  wk: Value,
  wv: Value,
  wo: Value,
  ids: Value,
  mask: Value,
  nH: number,
  nKv: number,
  hd: number,
): Value {
  const [Bn, T] = [x.shape![0] as number, x.shape![1] as number];
  const h = rmsNorm(x, wn, { epsilon: 1e-6 });
  const heads = (w: Value, n: number) => transpose(reshape(matmul(h, w), [Bn, T, n, hd]), [0, 2, 1, 3]);
  const cache = ropeCache(g, rangePositions(ids), hd, 10000, { type: 'linear', factor: 2 }, x.dtype);
  const a = attention(applyRotary(heads(wq, nH), cache), applyRotary(heads(wk, nKv), cache), heads(wv, nKv), {
    causal: true,
    mask,
  }).out;
  return add(matmul(reshape(transpose(a, [0, 2, 1, 3]), [Bn, T, nH * hd]), wo), x);
}

const blockInputs = (dtype: 'float64' | 'float32') => {
  const [Bn, T, Dm, nH, nKv, hd] = [2, 4, 8, 4, 2, 4];
  return {
    dims: { Bn, T, Dm, nH, nKv, hd },
    inputs: [
      { name: 'x', shape: [Bn, T, Dm], dtype },
      { name: 'wn', shape: [Dm], range: [0.5, 1.5] as [number, number], dtype },
      { name: 'wq', shape: [Dm, nH * hd], dtype },
      { name: 'wk', shape: [Dm, nKv * hd], dtype },
      { name: 'wv', shape: [Dm, nKv * hd], dtype, grad: false }, // frozen
      { name: 'wo', shape: [nH * hd, Dm], dtype },
      { name: 'ids', shape: [Bn, T], dtype: 'int64' as const, values: new Array(Bn * T).fill(0) },
      { name: 'mask', shape: [Bn, T], dtype: 'int64' as const, values: [1, 1, 1, 1, 1, 1, 1, 0] },
    ],
  };
};

test('LLaMA attention block (RMSNorm, projections, RoPE, GQA causal attention, o_proj) gradient wrt x and weights, float64', async () => {
  const { dims, inputs } = blockInputs('float64');
  await gradcheck({
    inputs,
    maxElems: 24,
    build: (g, [x, wn, wq, wk, wv, wo, ids, mask]) =>
      llamaAttentionBlock(g, x, wn, wq, wk, wv, wo, ids, mask, dims.nH, dims.nKv, dims.hd),
  });
});

test('LLaMA attention block: float32 (fused RotaryEmbedding) forward matches float64 (rotation-matrix RoPE)', async () => {
  const outs: Float64Array[] = [];
  for (const dtype of ['float64', 'float32'] as const) {
    const { dims, inputs } = blockInputs(dtype);
    const feeds = inputs.map((inp, i) => ({
      name: inp.name,
      dtype: inp.dtype,
      shape: inp.shape,
      values:
        inp.values ??
        randomValues(
          inp.shape.reduce((a, b) => a * b, 1),
          100 + i,
          ...(inp.range ?? [-1, 1]),
        ),
    }));
    const [y] = await runGraph(feeds, (g, [x, wn, wq, wk, wv, wo, ids, mask]) => {
      const out = llamaAttentionBlock(g, x, wn, wq, wk, wv, wo, ids, mask, dims.nH, dims.nKv, dims.hd);
      const fused = g.nodes.filter((n) => n.opType === 'RotaryEmbedding').length;
      assert.equal(fused, dtype === 'float32' ? 2 : 0, `${dtype}: RotaryEmbedding nodes`);
      return out;
    });
    outs.push(y.data);
  }
  assertAllClose(outs[1], outs[0], 1e-5, 1e-5, 'float32 vs float64 block');
});
