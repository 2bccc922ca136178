import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StepExecutor } from '../../src-main/engine/runtime/step-executor';
import { blockFeeds, blockForward, blockParams, type BlockConfig } from './block';
import { assertClose, loadFixture } from './fixture';

test('LoRA transformer-block training steps match PyTorch autograd + clip + torch.optim.AdamW over 10 steps', async () => {
  const fx = loadFixture('block.json');
  const c = fx.config as BlockConfig & { weight_decay: number; clip: number };
  const frozen = Object.fromEntries(Object.entries(fx.frozen!).map(([k, t]) => [k, t.data]));
  const ex = await StepExecutor.create(
    {
      params: blockParams(c),
      forward: (g, p) => blockForward(g, c, p, frozen),
      adamw: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: c.weight_decay },
      clipNorm: c.clip,
      outputGrads: true,
      session: { threads: 1 },
    },
    Object.fromEntries(Object.entries(fx.init).map(([k, t]) => [k, t.data])),
  );
  const feeds = blockFeeds(c, {
    ids: fx.inputs.input_ids.data,
    mask: fx.inputs.attention_mask.data,
    labels: fx.inputs.labels.data,
  });
  let worstGrad = 0;
  for (const [i, ref] of fx.steps.entries()) {
    const r = await ex.step(feeds, ref.lr);
    assert.ok(Math.abs(r.loss - ref.loss) <= 1e-5 * Math.abs(ref.loss), `step ${i + 1} loss ${r.loss} vs ${ref.loss}`);
    assert.ok(
      Math.abs(r.gradNorm - ref.grad_norm) <= 1e-4 * ref.grad_norm,
      `step ${i + 1} grad norm ${r.gradNorm} vs ${ref.grad_norm}`,
    );
    for (const [name, gref] of Object.entries(ref.grads))
      worstGrad = Math.max(worstGrad, assertClose(r.grads[name], gref, 1e-4, `step ${i + 1} grad ${name}`));
  }
  const st = ex.state();
  for (const [name, t] of Object.entries(fx.final)) assertClose(st.params[name], t, 1e-4, `final ${name}`);
  assert.ok(fx.steps.at(-1)!.loss < fx.steps[0].loss / 4, 'the reference run itself learns');
  await ex.dispose();
});
