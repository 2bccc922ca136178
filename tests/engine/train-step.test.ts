import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Graph, type Value } from '../../src-main/engine/graph/builder';
import { serializeModel } from '../../src-main/engine/graph/serialize';
import { add, mul, sub, tanh } from '../../src-main/engine/ops/elementwise';
import { matmul } from '../../src-main/engine/ops/matmul';
import { lrAt, lrGraph, type Schedule } from '../../src-main/engine/optim/schedules';
import { adamwReference, clipReference } from '../../src-main/engine/optim/reference';
import { buildTrainStep, type ParamSpec } from '../../src-main/engine/programs/train-step';
import { StepExecutor } from '../../src-main/engine/runtime/step-executor';
import { Session } from '../../src-main/engine/runtime/session';
import { compileCached, contentHash } from '../../src-main/engine/runtime/cache';
import { tensor, toFloat64 } from '../../src-main/engine/runtime/tensor';
import { tempDir } from '../helpers/tmp';
import { rng } from './gradcheck';

const tmp = tempDir('engine-train-');
after(() => tmp.cleanup());

/** sum of all elements of a 2-D value via products with ones (needs only MatMul/Mul rules). */
function sum2d(g: Graph, x: Value): Value {
  const [r, c] = x.shape as number[];
  const v = matmul(x, g.constant(new Float64Array(c).fill(1), x.dtype, [c]));
  return matmul(v, g.constant(new Float64Array(r).fill(1), x.dtype, [r]));
}

test('AdamW + global-norm clip in a step graph match the PyTorch formula (JS reference), 6 steps', async () => {
  // loss = sum(a * w * w) + sum(b * w)  => dL/dw = 2 a w + b
  const shape = [3, 4];
  const r = rng(7);
  const a = Float64Array.from({ length: 12 }, () => 0.5 + r());
  const b = Float64Array.from({ length: 12 }, () => r() * 2 - 1);
  const w0 = Float64Array.from({ length: 12 }, () => r() * 2 - 1);
  const u0 = Float64Array.from({ length: 4 }, () => r() * 2 - 1);
  const params: ParamSpec[] = [
    { name: 'w', shape, dtype: 'float64' },
    { name: 'u', shape: [4], dtype: 'float64', decay: false },
  ];
  const cfg = { beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1 };
  const ex = await StepExecutor.create(
    {
      params,
      adamw: cfg,
      clipNorm: 1.5,
      forward: (g, p) => {
        const A = g.constant(a, 'float64', shape);
        const B = g.constant(b, 'float64', shape);
        const lw = sum2d(g, add(mul(A, mul(p.w, p.w)), mul(B, p.w)));
        const lu = matmul(mul(p.u, p.u), g.constant([1, 2, 3, 4], 'float64', [4]));
        return { loss: add(lw, lu) };
      },
      session: { threads: 1 },
    },
    { w: w0, u: u0 },
  );
  const w = Float64Array.from(w0);
  const u = Float64Array.from(u0);
  const sw = { m: new Float64Array(12), v: new Float64Array(12) };
  const su = { m: new Float64Array(4), v: new Float64Array(4) };
  for (let t = 1; t <= 6; t++) {
    const lr = Math.fround(0.05 * t); // lr is fed as float32
    const gw = w.map((x, i) => 2 * a[i] * x + b[i]);
    const gu = u.map((x, i) => 2 * (i + 1) * x);
    const norm = clipReference([gw, gu], 1.5);
    adamwReference(w, gw, sw, lr, t, cfg);
    adamwReference(u, gu, su, lr, t, { ...cfg, weightDecay: 0 });
    const res = await ex.step({}, lr);
    assert.ok(Math.abs(res.gradNorm - norm) < 1e-9 * norm, `grad norm step ${t}: ${res.gradNorm} vs ${norm}`);
  }
  const st = ex.state();
  assert.equal(st.t, 6);
  for (let i = 0; i < 12; i++)
    assert.ok(Math.abs(st.params.w[i] - w[i]) < 1e-10, `w[${i}] ${st.params.w[i]} vs ${w[i]}`);
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(st.params.u[i] - u[i]) < 1e-10, `u[${i}]`);
  for (let i = 0; i < 12; i++)
    assert.ok(Math.abs(st.m.w[i] - sw.m[i]) < 1e-10 && Math.abs(st.v.w[i] - sw.v[i]) < 1e-10);
  await ex.dispose();
});

test('LR schedules: JS values follow the HF warmup lambdas and the graph emitter agrees', async () => {
  const lin: Schedule = { kind: 'linear', baseLr: 1e-3, warmupSteps: 10, totalSteps: 110 };
  const cos: Schedule = { kind: 'cosine', baseLr: 2e-3, warmupSteps: 4, totalSteps: 104 };
  const con: Schedule = { kind: 'constant', baseLr: 3e-4, warmupSteps: 2 };
  assert.equal(lrAt(lin, 0), 0);
  assert.equal(lrAt(lin, 5), 5e-4);
  assert.equal(lrAt(lin, 10), 1e-3);
  assert.equal(lrAt(lin, 60), 5e-4);
  assert.equal(lrAt(lin, 200), 0);
  assert.ok(Math.abs(lrAt(cos, 54) - 1e-3) < 1e-15);
  assert.equal(lrAt(cos, 4), 2e-3);
  assert.equal(lrAt(con, 1), 1.5e-4);
  assert.equal(lrAt(con, 50), 3e-4);
  assert.throws(() => lrAt({ kind: 'cosine', baseLr: 1 }, 3), /totalSteps is required/);
  const g = new Graph('lr');
  const step = g.input('step', 'float64', []);
  g.output(lrGraph(g, lin, step), 'lin');
  g.output(lrGraph(g, cos, step), 'cos');
  g.output(lrGraph(g, con, step), 'con');
  const s = await Session.create(serializeModel(g).model, { threads: 1 });
  for (const k of [0, 1, 3, 4, 9, 10, 11, 50, 103, 109, 150]) {
    const r = await s.run({ step: tensor('float64', [], [k]) });
    assert.ok(Math.abs(toFloat64(r.lin)[0] - lrAt(lin, k)) < 1e-15, `linear at ${k}`);
    assert.ok(Math.abs(toFloat64(r.cos)[0] - lrAt(cos, k)) < 1e-15, `cosine at ${k}`);
    assert.ok(Math.abs(toFloat64(r.con)[0] - lrAt(con, k)) < 1e-15, `constant at ${k}`);
  }
  await s.dispose();
});

/** A tiny MLP regression problem: params, data, forward with mean-squared error. */
function mlpProblem(N: number) {
  const r = rng(11);
  const D = 3,
    H = 5,
    O = 2;
  const params: ParamSpec[] = [
    { name: 'w1', shape: [D, H] },
    { name: 'b1', shape: [H], decay: false },
    { name: 'w2', shape: [H, O] },
  ];
  const init = {
    w1: Float32Array.from({ length: D * H }, () => (r() * 2 - 1) * 0.8),
    b1: Float32Array.from({ length: H }, () => (r() * 2 - 1) * 0.1),
    w2: Float32Array.from({ length: H * O }, () => (r() * 2 - 1) * 0.8),
  };
  const x = Float32Array.from({ length: N * D }, () => r() * 2 - 1);
  const y = Float32Array.from({ length: N * O }, () => r() * 2 - 1);
  const forward = (n: number) => (g: Graph, p: Readonly<Record<string, Value>>) => {
    const X = g.input('x', 'float32', [n, D]);
    const Y = g.input('y', 'float32', [n, O]);
    const pred = matmul(tanh(add(matmul(X, p.w1), p.b1)), p.w2);
    const d = sub(pred, Y);
    return { loss: mul(sum2d(g, mul(d, d)), 1 / (n * O)), outputs: { pred } };
  };
  const feeds = (lo: number, hi: number) => ({
    x: tensor('float32', [hi - lo, D], x.slice(lo * D, hi * D)),
    y: tensor('float32', [hi - lo, O], y.slice(lo * O, hi * O)),
  });
  return { params, init, forward, feeds };
}

test('gradient accumulation over two half batches equals one full-batch step', async () => {
  const N = 8;
  const P = mlpProblem(N);
  const full = await StepExecutor.create(
    { params: P.params, forward: P.forward(N), clipNorm: 0.5, session: { threads: 1 } },
    P.init,
  );
  const accum = await StepExecutor.create(
    { params: P.params, forward: P.forward(N / 2), clipNorm: 0.5, accumulation: 2, session: { threads: 1 } },
    P.init,
  );
  assert.deepEqual([...accum.dataInputs].sort(), ['x', 'y']);
  for (let s = 0; s < 3; s++) {
    const a = await full.step(P.feeds(0, N), 0.01);
    const b = await accum.step([P.feeds(0, N / 2), P.feeds(N / 2, N)], 0.01);
    assert.ok(Math.abs(a.loss - b.loss) < 1e-6, `loss ${a.loss} vs ${b.loss}`);
    assert.ok(Math.abs(a.gradNorm - b.gradNorm) < 1e-5, `grad norm ${a.gradNorm} vs ${b.gradNorm}`);
    assert.equal(b.microLosses.length, 2);
    assert.deepEqual(a.outputs.pred.dims, [N, 2]);
  }
  const sa = full.state();
  const sb = accum.state();
  for (const k of ['w1', 'b1', 'w2'])
    for (let i = 0; i < sa.params[k].length; i++)
      assert.ok(Math.abs(sa.params[k][i] - sb.params[k][i]) < 1e-5, `${k}[${i}]`);
  await assert.rejects(accum.step([P.feeds(0, 4), P.feeds(0, 4), P.feeds(0, 4)], 0.01), /3 micro-batches/);
  await assert.rejects(full.step({ x: P.feeds(0, N).x }, 0.01), /lacks input 'y'/);
  await full.dispose();
  await accum.dispose();
});

test('state round-trips into a new executor and training continues identically; score uses current params', async () => {
  const N = 6;
  const P = mlpProblem(N);
  const score = {
    forward: (g: Graph, p: Readonly<Record<string, Value>>) => {
      const X = g.input('x', 'float32', [N, 3]);
      const Y = g.input('y', 'float32', [N, 2]);
      const d = sub(matmul(tanh(add(matmul(X, p.w1), p.b1)), p.w2), Y);
      return { losses: mul(matmul(mul(d, d), g.constant([0.5, 0.5], 'float32', [2])), 1) };
    },
  };
  const a = await StepExecutor.create(
    { params: P.params, forward: P.forward(N), score, session: { threads: 1 } },
    P.init,
  );
  const before = toFloat64((await a.score(P.feeds(0, N))).losses);
  assert.equal(before.length, N);
  const first = await a.step(P.feeds(0, N), 0.05);
  // per-sample losses average to the train loss evaluated at the same params
  assert.ok(Math.abs(before.reduce((x, y) => x + y, 0) / N - first.loss) < 1e-6);
  await a.step(P.feeds(0, N), 0.05);
  const saved = a.state();
  const b = await StepExecutor.create({ params: P.params, forward: P.forward(N), session: { threads: 1 } }, P.init);
  b.loadState(saved);
  const ra = await a.step(P.feeds(0, N), 0.05);
  const rb = await b.step(P.feeds(0, N), 0.05);
  assert.equal(ra.loss, rb.loss);
  assert.deepEqual(a.state(), b.state());
  await assert.rejects(b.score(P.feeds(0, N)), /without a score program/);
  await assert.rejects(
    StepExecutor.create({ params: P.params, forward: P.forward(N) }, { w1: P.init.w1, b1: P.init.b1 }),
    /no initial value for parameter 'w2'/,
  );
  await a.dispose();
  await b.dispose();
});

test('compiled graphs are cached on disk by content hash of the key', async () => {
  const P = mlpProblem(4);
  let builds = 0;
  const build = () => {
    builds++;
    return buildTrainStep({ params: P.params, forward: P.forward(4) }).graph;
  };
  const key = { arch: 'mlp', shapes: { N: 4 }, opts: { clip: null } };
  const c1 = compileCached(tmp.dir, key, build);
  const c2 = compileCached(tmp.dir, { opts: { clip: null }, shapes: { N: 4 }, arch: 'mlp' }, build);
  assert.equal(c1.hit, false);
  assert.equal(c2.hit, true);
  assert.equal(c1.path, c2.path);
  assert.equal(builds, 1);
  assert.ok(existsSync(c1.path));
  assert.notEqual(contentHash(key), contentHash({ ...key, shapes: { N: 8 } }));
  // an executor with the same cache key reuses the entry (and learns its data inputs from the session)
  const ex = await StepExecutor.create(
    { params: P.params, forward: P.forward(4), cacheDir: tmp.dir, cacheKey: key, session: { threads: 1 } },
    P.init,
  );
  const ex2 = await StepExecutor.create(
    {
      params: P.params,
      forward: () => {
        throw new Error('should not rebuild');
      },
      cacheDir: tmp.dir,
      cacheKey: key,
      session: { threads: 1 },
    },
    P.init,
  );
  assert.deepEqual([...ex2.dataInputs].sort(), ['x', 'y']);
  const r1 = await ex.step(P.feeds(0, 4), 0.01);
  const r2 = await ex2.step(P.feeds(0, 4), 0.01);
  assert.equal(r1.loss, r2.loss);
  await ex.dispose();
  await ex2.dispose();
});
