import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Graph, attr } from '../../src-main/engine/graph/builder';
import { saveModel, serializeModel } from '../../src-main/engine/graph/serialize';
import { pbRead } from '../../src-main/engine/graph/protobuf';
import { Session } from '../../src-main/engine/runtime/session';
import { tensor, toNumbers } from '../../src-main/engine/runtime/tensor';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('engine-graph-');
after(() => tmp.cleanup());

test('builder infers dtypes and symbolic shapes', () => {
  const g = new Graph('t');
  const x = g.input('x', 'float32', ['B', 'T', 8]);
  const w = g.initializer('w', 'float32', [8, 4], new Float32Array(32));
  const y = g.op1('MatMul', [x, w]);
  assert.deepEqual(y.shape, ['B', 'T', 4]);
  const b = g.constant([1, 2, 3, 4], 'float32');
  const z = g.op1('Add', [y, b]);
  assert.deepEqual(z.shape, ['B', 'T', 4]);
  const r = g.op1('Reshape', [z, g.ints([0, 0, 2, -1])]);
  assert.deepEqual(r.shape, ['B', 'T', 2, 2]);
  assert.deepEqual(g.op1('Reshape', [r, g.ints([0, 0, -1])]).shape, ['B', 'T', 4]);
  const r2 = g.op1('Reshape', [z, g.ints([-1, 4])]);
  assert.deepEqual(r2.shape, ['?', 4]);
  const s = g.op1('ReduceSum', [z, g.ints([-1])], { keepdims: 0 });
  assert.deepEqual(s.shape, ['B', 'T']);
  const c = g.op1('Cast', [s], { to: 7 });
  assert.equal(c.dtype, 'int64');
  assert.throws(
    () => g.op1('MatMul', [x, g.initializer('bad', 'float32', [5, 2], new Float32Array(10))]),
    /inner dims differ/,
  );
  assert.throws(() => g.input('x', 'float32', [1]), /already used/);
});

test('names are deterministic and scoped', () => {
  const build = () => {
    const g = new Graph('t');
    const x = g.input('x', 'float32', [2]);
    const blk = (i: number) => g.scope(`layer${i}`, () => g.op1('Tanh', [g.op1('Neg', [x])]));
    g.output(g.op1('Add', [blk(0), blk(1)]), 'y');
    return g;
  };
  const a = build();
  assert.deepEqual(
    a.nodes.map((n) => n.name),
    ['layer0/Neg_0', 'layer0/Tanh_0', 'layer1/Neg_0', 'layer1/Tanh_0', 'Add_0', 'Identity_0'],
  );
  assert.deepEqual(serializeModel(a).model, serializeModel(build()).model);
});

test('integral numbers for float attributes are written as FLOAT', async () => {
  const g = new Graph('gemm');
  const a = g.input('a', 'float32', [2, 3]);
  const b = g.input('b', 'float32', [4, 3]);
  const y = g.op1('Gemm', [a, b], { alpha: 2, beta: 1, transB: 1 });
  assert.equal(g.nodes[0].attrs.alpha.type, 'float');
  assert.equal(g.nodes[0].attrs.transB.type, 'int');
  assert.deepEqual(y.shape, [2, 4]);
  g.output(y, 'y');
  const s = await Session.create(serializeModel(g).model, { threads: 1 });
  const out = await s.run({
    a: tensor('float32', [2, 3], [1, 2, 3, 4, 5, 6]),
    b: tensor('float32', [4, 3], [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]),
  });
  assert.deepEqual(toNumbers(out.y), [2, 4, 6, 12, 8, 10, 12, 30]);
  assert.deepEqual(out.y.dims, [2, 4]);
  await s.dispose();
});

test('a built graph with opset-18+ reductions, int64 constants and an explicit float attr runs in ORT', async () => {
  const g = new Graph('mlp');
  const x = g.input('x', 'float32', ['N', 3]);
  const w = g.initializer('w', 'float32', [3, 2], [1, 2, 3, 4, 5, 6]);
  const h = g.op1('MatMul', [x, w]);
  const m = g.op1('ReduceMean', [h, g.ints([1])], { keepdims: 1 });
  const lr = g.op1('LeakyRelu', [g.op1('Sub', [h, m])], { alpha: attr.float(0.5) });
  g.output(lr, 'y');
  g.output(m, 'mean');
  const s = await Session.create(serializeModel(g).model, { threads: 1 });
  assert.deepEqual([...s.inputNames], ['x']);
  const out = await s.run({ x: tensor('float32', [2, 3], [1, 0, 0, 0, 1, 1]) });
  // rows: h = [1,2], [8,10]; mean 1.5, 9; y = leaky([-0.5,0.5]) , leaky([-1,1])
  assert.deepEqual(toNumbers(out.mean), [1.5, 9]);
  assert.deepEqual(toNumbers(out.y), [-0.25, 0.5, -0.5, 1]);
  await assert.rejects(s.run({}), /missing input 'x'/);
  await assert.rejects(s.run({ x: tensor('float32', [1, 3]), z: tensor('float32', [1]) }), /'z' is not an input/);
  await s.dispose();
});

test('large initializers go to an external-data file that loads from disk', async () => {
  const g = new Graph('ext');
  const n = 4096;
  const wdata = new Float32Array(n).map((_, i) => (i % 7) - 3);
  const w = g.initializer('big', 'float32', [n], wdata);
  const small = g.initializer('small', 'float32', [2], [10, 20]);
  const x = g.input('x', 'float32', [n]);
  const dot = g.op1('ReduceSum', [g.op1('Mul', [x, w])], { keepdims: 0 });
  g.output(g.op1('Add', [dot, small]), 'y');
  const path = join(tmp.dir, 'ext.onnx');
  const { dataPath } = saveModel(g, path);
  assert.ok(dataPath && existsSync(dataPath));
  assert.equal(statSync(dataPath).size, n * 4);
  assert.ok(statSync(path).size < 2000, 'model file stays small');
  const s = await Session.create(path, { threads: 1 });
  const out = await s.run({ x: tensor('float32', [n], new Float32Array(n).fill(1)) });
  const expect = wdata.reduce((a, b) => a + b, 0);
  assert.deepEqual(toNumbers(out.y), [expect + 10, expect + 20]);
  await s.dispose();
});

test('an input that would also be an initializer is rejected; outputs of inputs get an Identity', () => {
  const g = new Graph('io');
  const x = g.input('x', 'float32', [1]);
  const out = g.output(x, 'x_copy');
  assert.equal(out.producer?.opType, 'Identity');
  const top = pbRead(serializeModel(g).model);
  assert.equal(top.find((f) => f.field === 1)?.value, 11n); // IR version for opset 23
  assert.throws(() => g.initializer('x', 'float32', [1], [1]), /already used/);
});

test('unknown execution provider falls back to cpu with a message', async () => {
  const g = new Graph('fb');
  const x = g.input('x', 'float32', [1]);
  g.output(g.op1('Neg', [x]), 'y');
  const msgs: string[] = [];
  const s = await Session.create(serializeModel(g).model, {
    provider: 'coreml',
    onWarning: (m) => msgs.push(m),
    threads: 1,
  });
  assert.equal(s.provider, 'cpu');
  assert.match(s.fallback ?? '', /coreml/);
  assert.equal(msgs.length, 1);
  await s.dispose();
});

test('subgraphs (If branches) may use outer values and serialize with unique names', async () => {
  const g = new Graph('if');
  const x = g.input('x', 'float32', [3]);
  const cond = g.input('cond', 'bool', []);
  const twice = g.op1('Add', [x, x]);
  const thenG = g.subgraph('then');
  thenG.output(thenG.op1('Mul', [twice, thenG.scalar(10)]));
  const elseG = g.subgraph('else');
  elseG.output(elseG.op1('Neg', [twice]));
  g.output(
    g.op1('If', [cond], { then_branch: thenG, else_branch: elseG }, { outTypes: [{ dtype: 'float32', shape: [3] }] }),
    'y',
  );
  const names = [...g.nodes, ...thenG.nodes, ...elseG.nodes].map((n) => n.name);
  assert.equal(new Set(names).size, names.length);
  const s = await Session.create(serializeModel(g).model, { threads: 1 });
  const x0 = tensor('float32', [3], [1, 2, 3]);
  assert.deepEqual(toNumbers((await s.run({ x: x0, cond: tensor('bool', [], [true]) })).y), [20, 40, 60]);
  assert.deepEqual(toNumbers((await s.run({ x: x0, cond: tensor('bool', [], [false]) })).y), [-2, -4, -6]);
  await s.dispose();
});
