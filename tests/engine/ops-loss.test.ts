import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../../src-main/engine/graph/builder';
import { gradients } from '../../src-main/engine/autodiff';
import { softmaxCrossEntropy, type Reduction } from '../../src-main/engine/ops/loss';
import { gradcheck } from './gradcheck';
import { randomValues, runGraph, assertAllClose } from './ops-run';

/** Direct cross-entropy over class axis 1 of [N, C, ...rest]; returns per-target losses (0 when ignored) and a mask. */
function refCE(x: Float64Array, dims: number[], labels: number[], ignore: number) {
  const [N, C] = dims;
  const rest = dims.slice(2).reduce((a, b) => a * b, 1);
  const per: number[] = [];
  const valid: boolean[] = [];
  for (let n = 0; n < N; n++)
    for (let t = 0; t < rest; t++) {
      const at = (c: number) => x[(n * C + c) * rest + t];
      let m = -Infinity;
      for (let c = 0; c < C; c++) m = Math.max(m, at(c));
      let s = 0;
      for (let c = 0; c < C; c++) s += Math.exp(at(c) - m);
      const lab = labels[n * rest + t];
      const ok = lab !== ignore;
      valid.push(ok);
      per.push(ok ? -(at(lab) - m - Math.log(s)) : 0);
    }
  return { per, valid };
}

const layouts: { dims: number[]; labels: number[] }[] = [
  { dims: [5, 4], labels: [1, -100, 3, 0, -100] },
  { dims: [2, 4, 3], labels: [0, -100, 3, 2, 1, -100] },
];

for (const { dims, labels } of layouts) {
  const ldims = [dims[0], ...dims.slice(2)];
  test(`SoftmaxCrossEntropyLoss forward vs direct computation, [${dims}] with ignored targets`, async () => {
    const x = randomValues(
      dims.reduce((a, b) => a * b, 1),
      7,
      -3,
      3,
    );
    const outs = await runGraph(
      [
        { name: 'x', dtype: 'float64', shape: dims, values: x },
        { name: 'l', dtype: 'int64', shape: ldims, values: labels },
      ],
      (_g, [X, L]) =>
        (['mean', 'sum', 'none'] as const).map((reduction) => softmaxCrossEntropy(X, L, { reduction }).loss),
    );
    const { per, valid } = refCE(x, dims, labels, -100);
    const count = valid.filter(Boolean).length;
    const sum = per.reduce((a, b) => a + b, 0);
    assertAllClose(outs[0].data, [sum / count], 1e-12, 1e-12, 'mean (divided by the non-ignored count)');
    assertAllClose(outs[1].data, [sum], 1e-12, 1e-12, 'sum');
    assert.deepEqual(outs[2].dims, ldims);
    assertAllClose(outs[2].data, per, 1e-12, 1e-12, 'none');
  });

  for (const reduction of ['mean', 'sum', 'none'] as Reduction[]) {
    test(`SoftmaxCrossEntropyLoss gradient, ${reduction}, [${dims}] with ignored targets`, async () => {
      await gradcheck({
        inputs: [
          { name: 'x', shape: dims, range: [-2, 2] },
          { name: 'labels', shape: ldims, dtype: 'int64', values: labels },
        ],
        build: (_g, [x, l]) => softmaxCrossEntropy(x, l, { reduction }).loss,
      });
    });
  }
}

test('SoftmaxCrossEntropyLoss gradient through loss and log_prob together; no ignore_index; int32 labels', async () => {
  await gradcheck({
    inputs: [
      { name: 'x', shape: [3, 5], range: [-2, 2] },
      { name: 'labels', shape: [3], dtype: 'int32', values: [4, 0, 2] },
    ],
    build: (_g, [x, l]) => {
      const r = softmaxCrossEntropy(x, l, { ignoreIndex: null });
      return [r.loss, r.logProb];
    },
  });
});

test('SoftmaxCrossEntropyLoss gradient with a symbolic class count (class index built at run time)', async () => {
  // The check feeds a static shape; an Identity re-declares the class dim as symbolic so the rule takes the Range path.
  await gradcheck({
    inputs: [
      { name: 'x', shape: [4, 3], range: [-2, 2] },
      { name: 'labels', shape: [4], dtype: 'int64', values: [2, -100, 0, 1] },
    ],
    build: (g, [x, l]) => {
      const xs = g.op1('Identity', [x], {}, { outTypes: [{ dtype: x.dtype, shape: [4, 'V'] }] });
      return softmaxCrossEntropy(xs, l).loss;
    },
  });
});

for (const reduction of ['mean', 'sum'] as const) {
  test(`all targets ignored, ${reduction}: loss ${reduction === 'mean' ? 'NaN (as ORT and PyTorch)' : '0'}, gradient zero (as PyTorch)`, async () => {
    const g = new Graph('t');
    const x = g.input('x', 'float64', [2, 3]);
    const l = g.input('l', 'int64', [2]);
    const { loss } = softmaxCrossEntropy(x, l, { reduction });
    g.output(loss, 'loss');
    g.output(gradients(loss, [x])[0], 'gx');
    const { Session } = await import('../../src-main/engine/runtime/session');
    const { serializeModel } = await import('../../src-main/engine/graph/serialize');
    const { tensor, toFloat64 } = await import('../../src-main/engine/runtime/tensor');
    const s = await Session.create(serializeModel(g).model, { threads: 1 });
    const r = await s.run({ x: tensor('float64', [2, 3], [1, 2, 3, -1, 0, 4]), l: tensor('int64', [2], [-100, -100]) });
    const lv = toFloat64(r.loss)[0];
    if (reduction === 'mean') assert.ok(Number.isNaN(lv), `mean loss ${lv}`);
    else assert.ok(lv === 0, `sum loss ${lv}`);
    const gx = [...toFloat64(r.gx)];
    assert.ok(gx.length === 6 && gx.every((v) => v === 0), `gradient [${gx}]`);
    await s.dispose();
  });
}

test('softmaxCrossEntropy rejects float labels and mismatched shapes, naming the tensors', () => {
  const g = new Graph('t');
  const x = g.input('logits', 'float32', [4, 10]);
  assert.throws(() => softmaxCrossEntropy(x, g.input('lab', 'float32', [4])), /labels 'lab' must be int64/);
  assert.throws(
    () => softmaxCrossEntropy(x, g.input('lab2', 'int64', [5])),
    /labels 'lab2' \[5\] do not match scores \[4,10\]/,
  );
  assert.throws(() => softmaxCrossEntropy(x, g.input('lab3', 'int64', [4, 1])), /rank 1/);
});

// PyTorch CrossEntropyLoss(label_smoothing=e, ignore_index=-100) per target: (1-e) nll + e mean_c(-log p_c).
function refSmoothed(x: Float64Array, N: number, C: number, labels: number[], e: number) {
  const per: number[] = [];
  for (let n = 0; n < N; n++) {
    const row = Array.from(x.subarray(n * C, (n + 1) * C));
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    const logp = row.map((v) => v - lse);
    if (labels[n] === -100) per.push(0);
    else per.push((1 - e) * -logp[labels[n]] + (e * -logp.reduce((a, b) => a + b, 0)) / C);
  }
  return per;
}

test('labelSmoothedCrossEntropy forward vs the PyTorch formula (smoothing 0.1, ignored targets)', async () => {
  const { labelSmoothedCrossEntropy } = await import('../../src-main/engine/ops/loss');
  const labels = [1, -100, 3, 0, -100, 2];
  const x = randomValues(6 * 5, 11, -3, 3);
  const outs = await runGraph(
    [
      { name: 'x', dtype: 'float64', shape: [6, 5], values: x },
      { name: 'l', dtype: 'int64', shape: [6], values: labels },
    ],
    (_g, [X, L]) => {
      const r = labelSmoothedCrossEntropy(X, L, { smoothing: 0.1 });
      return [r.perTarget, r.sum, r.count, r.mean];
    },
  );
  const per = refSmoothed(x, 6, 5, labels, 0.1);
  const sum = per.reduce((a, b) => a + b, 0);
  assertAllClose(outs[0].data, per, 1e-12, 1e-12, 'per target');
  assertAllClose(outs[1].data, [sum], 1e-12, 1e-12, 'sum');
  assertAllClose(outs[2].data, [4], 0, 0, 'count');
  assertAllClose(outs[3].data, [sum / 4], 1e-12, 1e-12, 'mean');
});

for (const smoothing of [0, 0.1, 0.3]) {
  test(`labelSmoothedCrossEntropy gradient (float64), smoothing ${smoothing}, ignored targets`, async () => {
    const { labelSmoothedCrossEntropy } = await import('../../src-main/engine/ops/loss');
    await gradcheck({
      inputs: [
        { name: 'x', shape: [5, 4], range: [-2, 2] },
        { name: 'labels', shape: [5], dtype: 'int64', values: [1, -100, 3, 0, 2] },
      ],
      build: (_g, [x, l]) => {
        const r = labelSmoothedCrossEntropy(x, l, { smoothing });
        return [r.mean, r.perTarget];
      },
    });
  });
}

test('labelSmoothedCrossEntropy: all targets ignored gives loss 0 and a zero gradient; bad smoothing is named', async () => {
  const { labelSmoothedCrossEntropy } = await import('../../src-main/engine/ops/loss');
  const outs = await runGraph(
    [
      { name: 'x', dtype: 'float64', shape: [2, 3], values: [1, 2, 3, -1, 0, 4] },
      { name: 'l', dtype: 'int64', shape: [2], values: [-100, -100] },
    ],
    (_g, [X, L]) => {
      const r = labelSmoothedCrossEntropy(X, L, { smoothing: 0.1 });
      return [r.mean, gradients(r.mean, [X])[0]];
    },
  );
  assertAllClose(outs[0].data, [0], 0, 0, 'loss');
  assert.ok(
    [...outs[1].data].every((v) => v === 0),
    'gradient',
  );
  const g = new Graph('t');
  assert.throws(
    () => labelSmoothedCrossEntropy(g.input('s', 'float32', [2, 3]), g.input('y', 'int64', [2]), { smoothing: 1 }),
    /smoothing must be in \[0, 1\)/,
  );
});
