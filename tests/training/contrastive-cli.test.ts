// The CLI on CLIP / SigLIP folders: `lenslab train --method contrastive` on the generated colour/shape dataset lifts
// held-out text->image recall@1 above the base model's (`lenslab eval` prints both), `lenslab score` prints the
// batch's contrastive loss and logits, `lenslab embed` normalized embeddings, and a batch of one is refused.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { runCli } from '../../src-main/cli';
import { writeTinyContrastive } from '../../src-main/models/demo/tiny-contrastive';
import { writeContrastiveDataset } from '../../src-main/models/demo/contrastive-dataset';

const { dir, cleanup } = tempDir('contrastive-cli-');
after(cleanup);
const model = join(dir, 'clip');
const siglip = join(dir, 'siglip');
const data = join(dir, 'shapes');
const dataDir = join(dir, 'lenslab');

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli([...args, '--data-dir', dataDir], {
    out: (t) => (out += t + '\n'),
    err: (t) => (err += t + '\n'),
  });
  return { code, out, err };
}

test('setup', async () => {
  writeTinyContrastive(model, 'clip', 1, {
    imageSize: 32,
    patchSize: 8,
    hidden: 64,
    layers: 2,
    heads: 4,
    std: 0.1,
    textPositions: 32,
  });
  writeTinyContrastive(siglip, 'siglip', 2, { textPositions: 32 });
  const c = await writeContrastiveDataset(data);
  assert.deepEqual([c.train, c.val], [160, 20]);
});

test('a batch of one is refused with the reason', async () => {
  const train = (...flags: string[]) =>
    cli(['train', '--method', 'contrastive', '--model', model, '--data', data, '--out', join(dir, 'bad'), ...flags]);
  const r = await train('--batch-size', '1');
  assert.equal(r.code, 1);
  assert.match(r.err, /at least 2 pairs per batch/);
  // flags that are not numbers are usage errors naming the flag (an empty one is not read as 0)
  for (const [flag, value] of [
    ['--rank', ''],
    ['--lr', 'fast'],
  ]) {
    const u = await train(flag, value);
    assert.equal(u.code, 2, u.err);
    assert.match(u.err, new RegExp(`${flag} must be a number \\(got "${value}"\\)`));
  }
});

test('contrastive LoRA lifts held-out text->image recall@1 well above the base', async () => {
  const adapter = join(dir, 'adapter');
  const t = await cli([
    'train',
    '--method',
    'contrastive',
    '--model',
    model,
    '--data',
    data,
    '--out',
    adapter,
    '--epochs',
    '15',
    '--batch-size',
    '16',
    '--lr',
    '3e-3',
    '--json',
  ]);
  assert.equal(t.code, 0, t.err);
  const tr = JSON.parse(t.out);
  assert.equal(tr.steps, 150);
  assert.ok(tr.lastLoss < tr.firstLoss - 1, `loss ${tr.firstLoss} -> ${tr.lastLoss}`);
  const e = await cli(['eval', '--model', model, '--adapter', adapter, '--data', data, '--split', 'val', '--json']);
  assert.equal(e.code, 0, e.err);
  const ev = JSON.parse(e.out);
  assert.equal(ev.pairs, 20);
  assert.equal(ev.base.zeroShot.classes.length, 20);
  const base = ev.base.recall.textToImage['R@1'];
  const tuned = ev.adapter.recall.textToImage['R@1'];
  assert.ok(tuned >= base + 0.25, `text->image R@1 base ${base}, adapter ${tuned}`);
  assert.ok(ev.adapter.recall.textToImage['R@10'] >= ev.adapter.recall.textToImage['R@5']);
  const table = await cli(['eval', '--model', model, '--adapter', adapter, '--data', data, '--split', 'val']);
  assert.match(table.out, /text->image R@1\s+\d\.\d{3}\s+\d\.\d{3}/);
});

test('score prints the contrastive loss and the logits matrix; embed prints normalized embeddings', async () => {
  const s = await cli(['score', '--model', siglip, '--data', join(data, 'val'), '--limit', '5', '--json']);
  assert.equal(s.code, 0, s.err);
  const sr = JSON.parse(s.out);
  assert.equal(sr.logitsPerText.length, 5);
  assert.equal(sr.logitsPerText[0].length, 5);
  assert.ok(Number.isFinite(sr.loss) && sr.loss > 0);
  const e = await cli(['embed', '--model', model, '--data', join(data, 'val'), '--limit', '3', '--json']);
  assert.equal(e.code, 0, e.err);
  const er = JSON.parse(e.out);
  assert.equal(er.items.length, 3);
  for (const it of er.items) {
    const n = (v: number[]) => Math.sqrt(v.reduce((a, x) => a + x * x, 0));
    assert.ok(Math.abs(n(it.image_embeds) - 1) < 1e-4 && Math.abs(n(it.text_embeds) - 1) < 1e-4);
    assert.equal(it.image_embeds.length, 24);
  }
});
