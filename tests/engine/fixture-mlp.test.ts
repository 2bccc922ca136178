import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Graph, Value } from '../../src-main/engine/graph/builder';
import { add, mul, sub, tanh } from '../../src-main/engine/ops/elementwise';
import { matmul } from '../../src-main/engine/ops/matmul';
import { StepExecutor } from '../../src-main/engine/runtime/step-executor';
import { tensor } from '../../src-main/engine/runtime/tensor';
import { assertClose, loadFixture } from './fixture';

test('MLP training steps match PyTorch autograd + torch.optim.AdamW over 10 steps', async () => {
  const fx = loadFixture('mlp.json');
  const { N, O } = fx.config;
  const params = Object.entries(fx.init).map(([name, t]) => ({ name, shape: t.shape }));
  const forward = (g: Graph, p: Readonly<Record<string, Value>>) => {
    const x = g.input('x', 'float32', fx.inputs.x.shape);
    const y = g.input('y', 'float32', fx.inputs.y.shape);
    const pred = add(matmul(tanh(add(matmul(x, p.w1), p.b1)), p.w2), p.b2);
    const d = sub(pred, y);
    // mean of squares, as sums against ones (MatMul) so only this family's rules are involved
    const rowSums = matmul(mul(d, d), g.constant(new Float32Array(O).fill(1), 'float32', [O]));
    const total = matmul(rowSums, g.constant(new Float32Array(N).fill(1), 'float32', [N]));
    return { loss: mul(total, 1 / (N * O)) };
  };
  const ex = await StepExecutor.create(
    {
      params,
      forward,
      adamw: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: fx.config.weight_decay },
      outputGrads: true,
      session: { threads: 1 },
    },
    Object.fromEntries(Object.entries(fx.init).map(([k, t]) => [k, t.data])),
  );
  const feeds = {
    x: tensor('float32', fx.inputs.x.shape, fx.inputs.x.data),
    y: tensor('float32', fx.inputs.y.shape, fx.inputs.y.data),
  };
  for (const [i, ref] of fx.steps.entries()) {
    const r = await ex.step(feeds, ref.lr);
    assert.ok(Math.abs(r.loss - ref.loss) <= 1e-5 * Math.abs(ref.loss), `step ${i + 1} loss ${r.loss} vs ${ref.loss}`);
    assert.ok(Math.abs(r.gradNorm - ref.grad_norm) <= 1e-4 * ref.grad_norm, `step ${i + 1} grad norm`);
    for (const [name, gref] of Object.entries(ref.grads))
      assertClose(r.grads[name], gref, 1e-4, `step ${i + 1} grad ${name}`);
  }
  const st = ex.state();
  for (const [name, t] of Object.entries(fx.final)) assertClose(st.params[name], t, 1e-4, `final ${name}`);
  await ex.dispose();
});
