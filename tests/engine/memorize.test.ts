import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Graph, Value } from '../../src-main/engine/graph/builder';
import { add, mul, sub, tanh } from '../../src-main/engine/ops/elementwise';
import { matmul } from '../../src-main/engine/ops/matmul';
import { lrAt } from '../../src-main/engine/optim/schedules';
import { StepExecutor } from '../../src-main/engine/runtime/step-executor';
import { tensor } from '../../src-main/engine/runtime/tensor';
import { rng } from './gradcheck';
import { blockFeeds, blockForward, blockParams, blockTensors, frozenShapes, type BlockConfig } from './block';

test('a tiny MLP memorizes a random batch to near-zero loss (cosine schedule, clipping, accumulation 2)', async () => {
  const N = 8,
    D = 6,
    H = 32,
    O = 3;
  const r = rng(3);
  const rand = (n: number, s: number) => Float32Array.from({ length: n }, () => (r() * 2 - 1) * s);
  const x = rand(N * D, 1);
  const y = rand(N * O, 1);
  const half = N / 2;
  const forward = (g: Graph, p: Readonly<Record<string, Value>>) => {
    const X = g.input('x', 'float32', [half, D]);
    const Y = g.input('y', 'float32', [half, O]);
    const d = sub(add(matmul(tanh(add(matmul(X, p.w1), p.b1)), p.w2), p.b2), Y);
    const sq = matmul(
      matmul(mul(d, d), g.constant(new Float32Array(O).fill(1), 'float32', [O])),
      g.constant(new Float32Array(half).fill(1), 'float32', [half]),
    );
    return { loss: mul(sq, 1 / (half * O)) };
  };
  const ex = await StepExecutor.create(
    {
      params: [
        { name: 'w1', shape: [D, H] },
        { name: 'b1', shape: [H], decay: false },
        { name: 'w2', shape: [H, O] },
        { name: 'b2', shape: [O], decay: false },
      ],
      forward,
      clipNorm: 1,
      accumulation: 2,
      adamw: { weightDecay: 0 },
      session: { threads: 1 },
    },
    { w1: rand(D * H, 0.5), b1: new Float32Array(H), w2: rand(H * O, 0.3), b2: new Float32Array(O) },
  );
  const batch = (i: number) => ({
    x: tensor('float32', [half, D], x.slice(i * half * D, (i + 1) * half * D)),
    y: tensor('float32', [half, O], y.slice(i * half * O, (i + 1) * half * O)),
  });
  const steps = 400;
  let first = 0,
    last = 0;
  for (let s = 0; s < steps; s++) {
    const res = await ex.step(
      [batch(0), batch(1)],
      lrAt({ kind: 'cosine', baseLr: 0.03, warmupSteps: 10, totalSteps: steps }, s),
    );
    if (s === 0) first = res.loss;
    last = res.loss;
  }
  assert.ok(first > 0.1, `initial loss ${first}`);
  assert.ok(last < 1e-3, `final loss ${last} (initial ${first})`);
  await ex.dispose();
});

test('a tiny transformer LM (embedding, attention, SwiGLU, head all trainable, LoRA too) memorizes a batch', async () => {
  const c: BlockConfig = {
    B: 2,
    T: 8,
    D: 32,
    heads: 4,
    kv_heads: 2,
    ffn: 64,
    vocab: 16,
    rank: 4,
    lora_alpha: 8,
    rms_eps: 1e-6,
    rope_theta: 10000,
  };
  const t = blockTensors(c, 5, 0.2);
  const params = [
    ...blockParams(c),
    ...Object.entries(frozenShapes(c)).map(([name, shape]) => ({ name, shape, decay: !name.startsWith('norm') })),
  ];
  const ex = await StepExecutor.create(
    {
      params,
      forward: (g, p) => blockForward(g, c, p, {}),
      clipNorm: 1,
      adamw: { weightDecay: 0 },
      session: { threads: 1 },
    },
    { ...t.init, ...t.frozen },
  );
  const feeds = blockFeeds(c, t);
  let first = 0,
    last = 0;
  for (let s = 0; s < 150; s++) {
    const r = await ex.step(feeds, lrAt({ kind: 'linear', baseLr: 1e-2, warmupSteps: 5, totalSteps: 150 }, s));
    if (s === 0) first = r.loss;
    last = r.loss;
  }
  assert.ok(first > 1.5, `initial loss ${first}`);
  assert.ok(last < 0.01, `final loss ${last} (initial ${first})`);
  await ex.dispose();
});
