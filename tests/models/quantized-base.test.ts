// A quantized frozen base under float32 LoRA (QLoRA-style): the MatMulNBits blocks are ggml's Q4_0 / Q8_0, the
// MatMulNBits gradient rule is exact against the dequantized weight, the LoRA gradients of the demo model through an
// int4 / int8 base equal those of a float32 graph whose weights are the dequantized ones and pass a finite-difference
// check, a layer whose input size is not a multiple of 32 stays float32 (named in quantizeFallbacks), and an adapter
// trained on an int4 base is a plain PEFT adapter that applies to the float base.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { Graph, gradients, saveModel, Session, StepExecutor, tensor, type ort } from '../../src-main/engine';
import {
  dequantizeNBits,
  frozenMatMulNBits,
  quantizeNBits,
  quantizeRows,
  type QuantScheme,
} from '../../src-main/models/quantize';
import { buildTrainableVlm, loadAdapter, loadVlm, saveAdapter, type LoadedVlm } from '../../src-main/models/program';
import { decodeTensor, encodeQ4_0, encodeQ8_0 } from '../../src-main/export/gguf/format';
import { demoRng } from '../../src-main/models/demo/rng';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import type { TensorSource } from '../../src-main/models/weights/safetensors';
import { demoRows, makeFeeds } from './program-fixture';

const { dir: tmp, cleanup } = tempDir('qbase-');
after(cleanup);
const DEMO = join(import.meta.dirname, '../../resources/demo/model');
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

function randn(n: number, seed: number, std = 0.05): Float32Array {
  const r = demoRng(seed);
  return Float32Array.from({ length: n }, () => std * r.normal());
}

test('MatMulNBits blocks are ggml Q4_0 / Q8_0 values; dequantizeNBits gives them back', () => {
  const out = 5;
  const inn = 96;
  const w = randn(out * inn, 11);
  w[7] = 0.7;
  w[40] = -0.9;
  for (const [bits, enc, type] of [
    [4, encodeQ4_0, 'Q4_0'],
    [8, encodeQ8_0, 'Q8_0'],
  ] as const) {
    const q = quantizeNBits(w, out, inn, bits);
    assert.equal(q.packed.length, (out * inn * bits) / 8);
    assert.equal(q.scales.length, (out * inn) / 32);
    const ref = decodeTensor(type, enc(w), out * inn);
    assert.deepEqual(Array.from(dequantizeNBits(q.packed, q.scales, out, inn, bits)), Array.from(ref), `${type}`);
  }
  assert.throws(() => quantizeNBits(w, 4, 120, 4), /multiple of 32, got 120/);
});

test('MatMulNBits gradient: dA = dY W with W the dequantized blocks (int4 and int8, batched rows)', async () => {
  const K = 64;
  const N = 48;
  const w = randn(N * K, 21);
  const xs = randn(2 * 3 * K, 22, 1);
  const c = randn(2 * 3 * N, 23, 1);
  for (const scheme of ['int4', 'int8'] as const) {
    const g = new Graph('nbits');
    const x = g.input('x', 'float32', [2, 3, K]);
    const y = frozenMatMulNBits(g, x, 'w', N, K, scheme, () => w, { accuracyLevel: 0 })!;
    const loss = g.op1('ReduceSum', [g.op1('Mul', [y, g.constant(c, 'float32', [2, 3, N])])], { keepdims: 0 });
    const [dx] = gradients(loss, [x]);
    g.output(y, 'y');
    g.output(dx, 'dx');
    const p = join(tmp, `nbits-${scheme}.onnx`);
    saveModel(g, p);
    const s = await Session.create(p, { threads: 1 });
    const r = await s.run({ x: tensor('float32', [2, 3, K], xs) });
    await s.dispose();
    const q = quantizeNBits(w, N, K, scheme === 'int4' ? 4 : 8);
    const wd = dequantizeNBits(q.packed, q.scales, N, K, scheme === 'int4' ? 4 : 8);
    const yv = r.y.data as Float32Array;
    const dxv = r.dx.data as Float32Array;
    for (let m = 0; m < 6; m++) {
      for (let n = 0; n < N; n++) {
        let ref = 0;
        for (let k = 0; k < K; k++) ref += xs[m * K + k] * wd[n * K + k];
        assert.ok(Math.abs(yv[m * N + n] - ref) < 1e-4, `${scheme} y[${m},${n}] ${yv[m * N + n]} vs ${ref}`);
      }
      for (let k = 0; k < K; k++) {
        let ref = 0;
        for (let n = 0; n < N; n++) ref += c[m * N + n] * wd[n * K + k];
        assert.ok(Math.abs(dxv[m * K + k] - ref) < 1e-4, `${scheme} dx[${m},${k}] ${dxv[m * K + k]} vs ${ref}`);
      }
    }
  }
});

/** The model's weights as the quantized graph sees them: linear matrices through the blocks, the token table int8 rows. */
function dequantizedSource(m: LoadedVlm, scheme: Exclude<QuantScheme, 'none'>): TensorSource {
  const base = m.weights;
  const bits = scheme === 'int4' ? 4 : 8;
  const cache = new Map<string, Float32Array>();
  const get = (n: string): Float32Array => {
    const hit = cache.get(n);
    if (hit) return hit;
    const shape = base.info(n).shape;
    let v = base.get(n);
    if (shape.length === 2 && /embed_tokens/.test(n)) {
      const r = quantizeRows(v, shape[0], shape[1]);
      v = Float32Array.from(r.q, (q, i) => q * r.scales[Math.floor(i / shape[1])]);
    } else if (shape.length === 2 && !/embed/.test(n) && shape[1] % 32 === 0) {
      const q = quantizeNBits(v, shape[0], shape[1], bits);
      v = dequantizeNBits(q.packed, q.scales, shape[0], shape[1], bits);
    }
    cache.set(n, v);
    return v;
  };
  return { names: () => base.names(), has: (n) => base.has(n), info: (n) => base.info(n), get };
}

/** Loss and LoRA gradients of one batch, by parameter name. */
async function lossAndGrads(
  m: { config: LoadedVlm['config']; weights: TensorSource },
  scheme: QuantScheme,
  values: Record<string, Float32Array>,
  feeds: Record<string, ort.Tensor>,
  name: string,
  accuracyLevel: 0 | 4 = 0,
) {
  const tv = buildTrainableVlm(
    m,
    'lora',
    { rank: 4, alpha: 8, dropout: 0, targetModules: [...TARGETS] },
    { quantizeBase: scheme, nbits: { accuracyLevel } },
  );
  const g = new Graph('grads');
  const p: Record<string, ReturnType<Graph['input']>> = {};
  for (const s of tv.params) p[s.name] = g.input(`p.${s.name}`, 'float32', s.shape);
  const { loss } = tv.forward(g, p);
  const gs = gradients(
    loss,
    tv.params.map((s) => p[s.name]),
  );
  g.output(loss, 'loss');
  tv.params.forEach((s, i) => g.output(gs[i], `g.${s.name}`));
  const path = join(tmp, `${name}.onnx`);
  saveModel(g, path, { externalThreshold: Infinity });
  const optPath = join(tmp, `${name}.opt.onnx`);
  const sess = await Session.create(path, { threads: 1, optimizedModelPath: optPath });
  const run = async (vals: Record<string, Float32Array>) => {
    const f: Record<string, ort.Tensor> = { ...feeds };
    for (const s of tv.params) f[`p.${s.name}`] = tensor('float32', s.shape, vals[s.name]);
    return sess.run(f);
  };
  const r = await run(values);
  const grads: Record<string, Float32Array> = {};
  for (const s of tv.params) grads[s.name] = r[`g.${s.name}`].data as Float32Array;
  const optBytes = readdirSync(tmp)
    .filter((f) => f.startsWith(`${name}.opt.onnx`))
    .reduce((a, f) => a + statSync(join(tmp, f)).size, 0);
  return {
    tv,
    loss: (r.loss.data as Float32Array)[0],
    grads,
    run,
    dispose: () => sess.dispose(),
    onnx: readFileSync(path),
    opt: readFileSync(optPath),
    optBytes,
  };
}

for (const scheme of ['int4', 'int8'] as const) {
  test(`${scheme} base: LoRA gradients equal the float graph on dequantized weights and pass a finite-difference check`, async () => {
    const m = loadVlm(DEMO);
    try {
      const rows = await demoRows(m, 5, 2, 'colors');
      const feeds = makeFeeds(m, rows);
      const tv0 = buildTrainableVlm(m, 'lora', { rank: 4, alpha: 8, dropout: 0, targetModules: [...TARGETS] });
      const values = tv0.initialValues(7);
      // non-zero B, so A gets a gradient too
      for (const s of tv0.params)
        if (s.name.includes('lora_B')) values[s.name] = randn(values[s.name].length, s.name.length, 0.05);
      const q = await lossAndGrads(m, scheme, values, feeds, `q-${scheme}`);
      const ref = await lossAndGrads(
        { config: m.config, weights: dequantizedSource(m, scheme) },
        'none',
        values,
        feeds,
        `ref-${scheme}`,
      );
      const fl = await lossAndGrads(m, 'none', values, feeds, `float-${scheme}`);
      try {
        assert.ok(q.onnx.includes(Buffer.from('MatMulNBits')), 'the quantized graph runs MatMulNBits');
        assert.ok(
          q.onnx.length < (scheme === 'int4' ? 0.35 : 0.5) * fl.onnx.length,
          `quantized graph ${q.onnx.length} bytes vs float ${fl.onnx.length}`,
        );
        // ORT's optimized session graph still unpacks the blocks in the backward: its constant folding did not turn
        // them into float32 copies of the weights
        assert.ok(
          q.opt.includes(Buffer.from('MatMulNBits')) &&
            q.opt.includes(Buffer.from(scheme === 'int4' ? 'BitwiseAnd' : 'BitwiseOr')),
          'the unpacking is in the optimized graph',
        );
        assert.ok(
          q.optBytes < (scheme === 'int4' ? 0.35 : 0.5) * fl.optBytes,
          `optimized graphs: quantized ${q.optBytes} bytes vs float ${fl.optBytes}`,
        );
        assert.ok(Math.abs(q.loss - ref.loss) < 1e-4, `loss ${q.loss} vs dequantized-float ${ref.loss}`);
        assert.ok(Math.abs(q.loss - fl.loss) > 1e-6, 'the quantized base is not the float base');
        let maxRel = 0;
        for (const s of q.tv.params) {
          const a = q.grads[s.name];
          const b = ref.grads[s.name];
          let d = 0;
          let mag = 0;
          for (let i = 0; i < a.length; i++) {
            d = Math.max(d, Math.abs(a[i] - b[i]));
            mag = Math.max(mag, Math.abs(b[i]));
          }
          assert.ok(mag > 0, `${s.name} has a gradient`);
          maxRel = Math.max(maxRel, d / mag);
        }
        assert.ok(maxRel < 1e-3, `LoRA gradients vs the dequantized float graph: max relative difference ${maxRel}`);
        // central difference along a random direction: (L(p + e d) - L(p - e d)) / 2e = <grad, d>
        const eps = 1e-3;
        const plus: Record<string, Float32Array> = {};
        const minus: Record<string, Float32Array> = {};
        let dot = 0;
        q.tv.params.forEach((s, k) => {
          const d = randn(values[s.name].length, 100 + k, 1);
          plus[s.name] = values[s.name].map((v, i) => v + eps * d[i]);
          minus[s.name] = values[s.name].map((v, i) => v - eps * d[i]);
          for (let i = 0; i < d.length; i++) dot += q.grads[s.name][i] * d[i];
        });
        const lp = ((await q.run(plus)).loss.data as Float32Array)[0];
        const lm = ((await q.run(minus)).loss.data as Float32Array)[0];
        const fd = (lp - lm) / (2 * eps);
        assert.ok(Math.abs(fd - dot) < 0.02 * Math.abs(dot) + 1e-4, `finite difference ${fd} vs gradient ${dot}`);
        // the production setting (int8 compute, accuracy level 4) is close to the exact arithmetic
        const fast = await lossAndGrads(m, scheme, values, feeds, `fast-${scheme}`, 4);
        let num = 0;
        let na = 0;
        let nb = 0;
        for (const s of q.tv.params)
          for (let i = 0; i < q.grads[s.name].length; i++) {
            num += q.grads[s.name][i] * fast.grads[s.name][i];
            na += q.grads[s.name][i] ** 2;
            nb += fast.grads[s.name][i] ** 2;
          }
        await fast.dispose();
        assert.ok(num / Math.sqrt(na * nb) > 0.99, `accuracy level 4 gradients: cosine ${num / Math.sqrt(na * nb)}`);
      } finally {
        await Promise.all([q.dispose(), ref.dispose(), fl.dispose()]);
      }
    } finally {
      m.close();
    }
  });
}

test('an adapter trained on an int4 base is a PEFT adapter that applies to the float base', async () => {
  const m = loadVlm(DEMO);
  try {
    const lora = { rank: 4, alpha: 8, dropout: 0, targetModules: ['q_proj', 'v_proj'] as ('q_proj' | 'v_proj')[] };
    const tv = buildTrainableVlm(m, 'lora', lora, { quantizeBase: 'int4' });
    const rows = await demoRows(m, 9, 4, 'colors');
    const feeds = makeFeeds(m, rows);
    const ex = await StepExecutor.create(
      { params: tv.params, forward: tv.forward, clipNorm: 1, session: { threads: 1 } },
      tv.initialValues(1),
    );
    const losses: number[] = [];
    for (let s = 0; s < 6; s++) losses.push((await ex.step(feeds, 5e-3)).loss);
    await ex.sync();
    const values = Object.fromEntries(Object.entries(ex.state().params).map(([k, v]) => [k, Float32Array.from(v)]));
    await ex.dispose();
    assert.ok(losses.at(-1)! < losses[0], `int4-base LoRA learns: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
    const dir = join(tmp, 'adapter-int4');
    mkdirSync(dir, { recursive: true });
    saveAdapter(dir, m, 'lora', lora, values, DEMO);
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.peft_type, 'LORA');
    const back = loadAdapter(dir, m);
    const names = Object.keys(back.values).sort();
    assert.ok(
      names.length > 0 &&
        names.every((n) => /^base_model\.model\..*\.lora_[AB]\.weight$/.test(n) || /lora_[AB]/.test(n)),
      names.join(', '),
    );
    assert.deepEqual(names, Object.keys(values).sort());
    // the same adapter on the float32 base: its loss is below the float base's own (it learned something that carries)
    const f = buildTrainableVlm(m, 'lora', lora);
    const exF = await StepExecutor.create(
      { params: f.params, forward: f.forward, session: { threads: 1 } },
      back.values,
    );
    const exB = await StepExecutor.create(
      { params: f.params, forward: f.forward, session: { threads: 1 } },
      f.initialValues(1),
    );
    const withAdapter = (await exF.step(feeds, 0)).loss;
    const base = (await exB.step(feeds, 0)).loss;
    await exF.dispose();
    await exB.dispose();
    assert.ok(withAdapter < base, `float base + int4-trained adapter ${withAdapter} vs float base ${base}`);
  } finally {
    m.close();
  }
});

test('a frozen matrix whose input size is not a multiple of 32 stays float32, is named, and the model trains', async () => {
  const demo = loadVlm(DEMO);
  try {
    const tvQ = buildTrainableVlm(
      demo,
      'lora',
      { rank: 2, alpha: 4, dropout: 0, targetModules: ['q_proj'] },
      { quantizeBase: 'int4' },
    );
    assert.deepEqual(tvQ.quantizeFallbacks(), [], 'every demo matrix takes int4 blocks');
  } finally {
    demo.close();
  }
  // an MLP width of 72: down_proj [64, 72] cannot take blocks of 32 along its input, gate/up [72, 64] can
  const dir = join(tmp, 'odd');
  writeTinyLlava(dir, 3, {
    textHidden: 64,
    textIntermediate: 72,
    textLayers: 2,
    textHeads: 4,
    textKvHeads: 2,
    visionHidden: 32,
    visionLayers: 1,
    visionHeads: 2,
    visionIntermediate: 64,
    imageSize: 32,
    patchSize: 16,
    vocabSize: 300,
  });
  const m = loadVlm(dir);
  try {
    const tv = buildTrainableVlm(
      m,
      'lora',
      { rank: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'down_proj'] },
      { quantizeBase: 'int4' },
    );
    const fb = tv.quantizeFallbacks();
    assert.deepEqual(fb.map((f) => f.name.replace(/^.*layers\./, 'layers.')).sort(), [
      'layers.0.mlp.down_proj.weight',
      'layers.1.mlp.down_proj.weight',
    ]);
    for (const f of fb) assert.match(f.reason, /input size 72 is not a multiple of 32/);
    const rows = await demoRows(m, 9, 2, 'colors');
    const ex = await StepExecutor.create(
      { params: tv.params, forward: tv.forward, session: { threads: 1 } },
      tv.initialValues(1),
    );
    const l0 = (await ex.step(makeFeeds(m, rows), 1e-2)).loss;
    const l1 = (await ex.step(makeFeeds(m, rows), 1e-2)).loss;
    await ex.dispose();
    assert.ok(Number.isFinite(l0) && l1 < l0, `trains: ${l0} -> ${l1}`);
  } finally {
    m.close();
  }
});
