// Weight-only int8 / int4 inference graphs: the int4 blocks are ggml's Q4_0, ORT fuses the standard-op patterns into
// its integer kernels (MatMulNBits, DynamicQuantizeMatMul) without folding weights back to float (optimized-model
// dump), a quantized layer is close to float, and the demo model's answers with quantized weights match float32's.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { Graph, saveModel, Session, tensor } from '../../src-main/engine';
import {
  quantizeInt4,
  quantizeInt8,
  quantizedMatMul,
  quantizedGather,
  QUANT_SESSION_CONFIG,
  parseQuantScheme,
  quantKeyVersion,
} from '../../src-main/models/quantize';
import { decodeTensor, encodeQ4_0 } from '../../src-main/export/gguf/format';
import { loadGenerator } from '../../src-main/models/generate';
import { GeneratorPool } from '../../src-main/models/generate-worker';
import { makeSample } from '../../src-main/models/demo/shapes';
import { demoRng } from '../../src-main/models/demo/rng';

const { dir: tmp, cleanup } = tempDir('quantize-');
after(cleanup);
const DEMO = join(import.meta.dirname, '../../resources/demo/model');

function randn(n: number, seed: number, std = 0.05): Float32Array {
  const r = demoRng(seed);
  return Float32Array.from({ length: n }, () => std * r.normal());
}

/** int4 value at [k, n] of a packed [in, out] tensor. */
function nib(packed: Uint8Array, idx: number): number {
  const v = idx & 1 ? packed[idx >> 1] >> 4 : packed[idx >> 1] & 0x0f;
  return v >= 8 ? v - 16 : v;
}

test('int4 blocks dequantize to ggml Q4_0 values exactly; int8 per-channel within half a step', () => {
  const out = 3;
  const inn = 64;
  const w = randn(out * inn, 1);
  w[5] = 0.9; // a positive block maximum: d = max / -8 is negative, as in Q4_0
  const { packed, scales } = quantizeInt4(w, out, inn);
  const ref = decodeTensor('Q4_0', encodeQ4_0(w), out * inn); // row-major [out, in], blocks along in
  for (let o = 0; o < out; o++)
    for (let k = 0; k < inn; k++)
      assert.equal(nib(packed, k * out + o) * scales[Math.floor(k / 32) * out + o], ref[o * inn + k], `[${o},${k}]`);
  const q8 = quantizeInt8(w, out, inn);
  for (let o = 0; o < out; o++)
    for (let k = 0; k < inn; k++)
      assert.ok(Math.abs(q8.q[k * out + o] * q8.scales[o] - w[o * inn + k]) <= q8.scales[o] / 2 + 1e-7);
  assert.throws(() => quantizeInt4(w, 4, 48), /multiple of 32/);
  assert.equal(parseQuantScheme(undefined), 'none');
  assert.throws(() => parseQuantScheme('int3'), /one of none, int8, int4/);
});

for (const scheme of ['int4', 'int8'] as const) {
  test(`${scheme}: ORT fuses the pattern (${scheme === 'int4' ? 'MatMulNBits' : 'DynamicQuantizeMatMul'}), keeps the weights quantized, and is close to float`, async () => {
    const K = 256;
    const N = 384;
    const V = 50;
    const w = randn(N * K, 2);
    const table = randn(V * K, 3, 1);
    const g = new Graph('q');
    const x = g.input('x', 'float32', [1, 'S', K]);
    const ids = g.input('ids', 'int64', [1, 'S']);
    g.output(
      quantizedMatMul(g, x, 'layer.weight', N, K, scheme, () => w)!,
      'y',
    );
    g.output(
      quantizedGather(g, 'embed.weight', V, K, ids, () => table),
      'e',
    );
    const dir = join(tmp, scheme);
    mkdirSync(dir, { recursive: true });
    saveModel(g, join(dir, 'model.onnx'));
    const optPath = join(dir, 'optimized.onnx');
    const s = await Session.create(join(dir, 'model.onnx'), {
      threads: 1,
      optimizedModelPath: optPath,
      config: QUANT_SESSION_CONFIG,
    });
    const xs = randn(2 * K, 4, 1);
    const r = await s.run({
      x: tensor('float32', [1, 2, K], xs),
      ids: tensor('int64', [1, 2], BigInt64Array.from([7n, 49n])),
    });
    await s.dispose();
    const opt = readFileSync(optPath);
    const has = (op: string) => opt.includes(Buffer.from(op));
    assert.ok(
      has(scheme === 'int4' ? 'MatMulNBits' : 'DynamicQuantizeMatMul'),
      'the fused kernel is in the optimized graph',
    );
    // (the fused node keeps the original node's name, so only the int4 pattern's op name can be looked for)
    if (scheme === 'int4')
      assert.ok(!has('DequantizeLinear'), 'no DequantizeLinear left: the int4 weight is not folded to float');
    const optBytes =
      statSync(optPath).size +
      readdirSync(dir)
        .filter((f) => f.startsWith('optimized') && f !== 'optimized.onnx')
        .reduce((a, f) => a + statSync(join(dir, f)).size, 0);
    assert.ok(
      optBytes < N * K * 2,
      `optimized model ${optBytes} bytes: weights not folded back to float32 (${N * K * 4} bytes)`,
    );
    const y = r.y.data as Float32Array;
    let err = 0;
    let mag = 0;
    for (let t = 0; t < 2; t++)
      for (let n = 0; n < N; n++) {
        let ref = 0;
        for (let k = 0; k < K; k++) ref += xs[t * K + k] * w[n * K + k];
        err = Math.max(err, Math.abs(y[t * N + n] - ref));
        mag = Math.max(mag, Math.abs(ref));
      }
    assert.ok(err / mag < (scheme === 'int4' ? 0.12 : 0.03), `max error ${err} of ${mag}`);
    const e = r.e.data as Float32Array;
    const amax = table.subarray(7 * K, 8 * K).reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    for (let k = 0; k < K; k++)
      assert.ok(Math.abs(e[k] - table[7 * K + k]) <= amax / 127 / 2 + 1e-6, 'int8 embedding rows');
  });
}

test('the demo model answers the same with int8 weights and nearly so with int4; each scheme has its own cache entry', async (t) => {
  const cacheDir = join(tmp, 'cache');
  const answers: Record<string, string[]> = {};
  for (const quantize of ['none', 'int8', 'int4'] as const) {
    const g = await loadGenerator(DEMO, null, { cacheDir, quantize, session: { threads: 1 } });
    answers[quantize] = [];
    for (let i = 0; i < 24; i++) {
      const s = makeSample(99, i, { size: 48 });
      const r = await g.generate(
        {
          image: { data: s.rgb, width: 48, height: 48 },
          messages: [{ role: 'user', content: s.qa[0]?.question ?? 'What colour is the shape?' }],
        },
        { maxNewTokens: 12 },
      );
      answers[quantize].push(r.text);
    }
    await g.dispose();
  }
  const same = (q: string) => answers[q].filter((a, i) => a === answers.none[i]).length;
  t.diagnostic(`answers equal to float32's: int8 ${same('int8')} of 24, int4 ${same('int4')} of 24`);
  assert.ok(same('int8') >= 22, `int8: ${same('int8')} of 24 answers equal to float32`);
  assert.ok(same('int4') >= 14, `int4: ${same('int4')} of 24 answers equal to float32`);
  assert.equal(readdirSync(cacheDir).filter((f) => !f.startsWith('.')).length, 6, 'vision + decoder graphs per scheme');
});

test('a quantized graph cache entry of another scheme version is rebuilt, one of the same version is read', async () => {
  const cacheDir = join(tmp, 'version-cache');
  const version = quantKeyVersion.current;
  const s = makeSample(5, 0, { size: 48 });
  const answer = async () => {
    const g = await loadGenerator(DEMO, null, { cacheDir, quantize: 'int4', session: { threads: 1 } });
    try {
      return (
        await g.generate(
          {
            image: { data: s.rgb, width: 48, height: 48 },
            messages: [{ role: 'user', content: s.qa[0]?.question ?? 'What colour is the shape?' }],
          },
          { maxNewTokens: 6 },
        )
      ).text;
    } finally {
      await g.dispose();
    }
  };
  const entries = () =>
    readdirSync(cacheDir)
      .filter((f) => !f.startsWith('.'))
      .sort();
  try {
    const first = await answer();
    const v1 = entries();
    assert.ok(v1.length > 0);
    quantKeyVersion.current = version + 1;
    assert.equal(await answer(), first, 'the same arithmetic under the new key');
    const v2 = entries();
    assert.equal(v2.length, 2 * v1.length, 'the other version compiled its own entries');
    quantKeyVersion.current = version;
    await answer();
    assert.deepEqual(entries(), v2, 'the current version read its entries');
  } finally {
    quantKeyVersion.current = version;
  }
});

test('the chat pool keeps a generator per scheme and answers with the scheme asked for', async () => {
  const cacheDir = join(tmp, 'pool-cache');
  const pool = new GeneratorPool({ cacheDir, session: { threads: 1 } });
  const s = makeSample(99, 3, { size: 48 });
  const req = {
    modelDir: DEMO,
    image: null,
    messages: [{ role: 'user', content: s.qa[0]?.question ?? 'What colour is the shape?' }],
  };
  try {
    const a = await pool.generate(req, { quantize: 'int4', maxNewTokens: 8 });
    const g = await loadGenerator(DEMO, null, { cacheDir, quantize: 'int4', session: { threads: 1 } });
    const b = await g.generate({ messages: req.messages }, { maxNewTokens: 8 });
    await g.dispose();
    assert.deepEqual(a.ids, b.ids);
    await pool.generate(req, { maxNewTokens: 2 });
    assert.equal(
      readdirSync(cacheDir).filter((f) => !f.startsWith('.')).length,
      4,
      'int4 and float32 vision + decoder graphs',
    );
  } finally {
    await pool.close();
  }
});
