// A CLIP folder registers as a contrastive model (search, contrastive training) that compose still takes as a vision
// tower; models.merge folds a contrastive adapter into it (PEFT's merge: the merged folder embeds as base + adapter
// does), and the merged, fine-tuned tower becomes the vision tower of a composed LLaVA.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyLlamaLm } from '../helpers/tiny-llama';
import { createBackend } from '../../src-main/services/backend';
import { writeTinyContrastive } from '../../src-main/models/demo/tiny-contrastive';
import { writeContrastiveDataset } from '../../src-main/models/demo/contrastive-dataset';
import { ContrastiveRunner, loadContrastive } from '../../src-main/models/families/contrastive/model';
import { loadContrastiveAdapter, saveContrastiveAdapter } from '../../src-main/models/families/contrastive/adapter';
import { contrastiveLoraModules } from '../../src-main/models/families/contrastive/graph';
import { readPairs } from '../../src-main/transport/cli/contrastive';
import { loadHfFolder } from '../../src-main/models/hf-folder';
import { demoRng } from '../../src-main/models/demo/rng';

const { dir, cleanup } = tempDir('contrastive-compose-');
after(cleanup);

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

test('a CLIP folder is a contrastive model; its merged fine-tune embeds as base + adapter and composes into a LLaVA', async () => {
  const clip = join(dir, 'clip');
  writeTinyContrastive(clip, 'clip', 1, {
    imageSize: 32,
    patchSize: 8,
    hidden: 64,
    layers: 2,
    heads: 4,
    std: 0.1,
    textPositions: 32,
  });
  // a LoRA adapter on both towers' q/v with random A and B (B nonzero, so the merge changes the weights)
  const adapter = join(dir, 'adapter');
  {
    const m = loadContrastive(clip);
    const rng = demoRng(5);
    const r = 4;
    const lora = new Map<string, { a: Float32Array; b: Float32Array }>();
    for (const mod of contrastiveLoraModules(m.config, 'both', ['q_proj', 'v_proj'])) {
      const [out, inn] = m.weights.info(`${mod}.weight`).shape;
      lora.set(mod, {
        a: Float32Array.from({ length: r * inn }, () => 0.2 * rng.normal()),
        b: Float32Array.from({ length: out * r }, () => 0.2 * rng.normal()),
      });
    }
    saveContrastiveAdapter(
      adapter,
      m.config,
      { r, alpha: 8, scaling: 2, lora, saved: new Map(), modulesToSave: [] },
      clip,
    );
    m.close();
  }
  const llama = join(dir, 'llama');
  writeTinyLlamaLm(llama);

  const backend = createBackend({ dataDir: join(dir, 'data'), host: 'cli' });
  try {
    const call = (m: string, p: unknown) => backend.dispatcher.call(m as never, p as never) as Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const base = await call('models.import', { path: clip, name: 'tiny CLIP' });
    assert.equal(base.report.kind, 'contrastive');
    assert.equal(base.report.family, 'clip');
    assert.ok(base.report.warnings.some((w: string) => /searches images/.test(w)));

    // merge: a full CLIP folder, registered as a contrastive model
    const merged = await call('models.merge', {
      model: { id: base.model.id },
      adapter: { path: adapter },
      name: 'tiny CLIP fine-tuned',
    });
    assert.equal(merged.report.kind, 'contrastive');
    assert.equal(merged.model.kind, 'merged');
    assert.equal(merged.model.baseModelId, base.model.id);
    await assert.rejects(
      call('models.merge', { model: { id: base.model.id }, adapter: { path: llama }, name: 'bad' }),
      /adapter_config\.json/,
    );

    // the merged folder embeds images and texts as the base with the adapter applied (PEFT's unmerged forward)
    await writeContrastiveDataset(join(dir, 'shapes'), { train: 1, val: 0 });
    const pairs = (await readPairs(join(dir, 'shapes'), { split: 'train' })).slice(0, 4);
    const bm = loadContrastive(clip);
    const mm = loadContrastive(merged.model.path);
    const withAdapter = await ContrastiveRunner.create(bm, { adapter: loadContrastiveAdapter(adapter, bm.config) });
    const plain = await ContrastiveRunner.create(bm, {});
    const mergedRunner = await ContrastiveRunner.create(mm, {});
    try {
      const imgs = pairs.map((p) => p.image);
      const texts = pairs.map((p) => p.text!);
      const a = await withAdapter.run(imgs, texts);
      const b = await mergedRunner.run(imgs, texts);
      const c = await plain.run(imgs, texts);
      for (let i = 0; i < 4; i++) {
        assert.ok(maxDiff(a.imageEmbeds[i], b.imageEmbeds[i]) < 1e-4, `image ${i}`);
        assert.ok(maxDiff(a.textEmbeds[i], b.textEmbeds[i]) < 1e-4, `text ${i}`);
      }
      assert.ok(maxDiff(a.imageEmbeds[0], c.imageEmbeds[0]) > 1e-3, 'the adapter changes the embeddings');
    } finally {
      await Promise.all([withAdapter.release(), plain.release(), mergedRunner.release()]);
      bm.close();
      mm.close();
    }

    // the fine-tuned vision tower is the composed LLaVA's
    const composed = await call('models.compose', {
      name: 'LLaVA on a budget',
      visionPath: merged.model.path,
      textPath: llama,
      seed: 1,
    });
    assert.equal(composed.report.kind, 'llava');
    const lv = loadHfFolder(composed.model.path, { tokenizer: false, preprocessor: false });
    const mv = loadContrastive(merged.model.path);
    const bv = loadContrastive(clip);
    try {
      const name = 'vision_model.encoder.layers.1.self_attn.q_proj.weight';
      const inLlava = lv.weights.get(lv.layout.vision + name.slice('vision_model.'.length));
      assert.ok(maxDiff(inLlava, mv.weights.get(name)) === 0, 'the composed tower holds the merged weights');
      assert.ok(maxDiff(inLlava, bv.weights.get(name)) > 1e-3, 'not the base weights');
    } finally {
      lv.close();
      mv.close();
      bv.close();
    }
    // the plain CLIP folder still composes as a vision tower
    const plainLlava = await call('models.compose', {
      name: 'LLaVA from base CLIP',
      visionPath: clip,
      textPath: llama,
      seed: 1,
    });
    assert.equal(plainLlava.report.kind, 'llava');
  } finally {
    await backend.shutdown();
    backend.close();
  }
});
