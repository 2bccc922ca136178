// The models service: demo install, inspect/import with a report, errors naming the file, rename/delete,
// compose from a vision tower + a language model, adapter export and merge.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createBackend, type Backend } from '../../src-main/services/backend';
import { tempDir } from '../helpers/tmp';
import { writeTinyLlamaLm } from '../helpers/tiny-llama';
import { dispatchTo } from '../helpers/dispatch';
import { writeTinyLlava, randomWeights, demoPreprocessorConfig } from '../../src-main/models/demo/tiny-llava';
import { loadHfFolder, saveHfFolder } from '../../src-main/models/hf-folder';
import { adapterConfigJson, resolveLoraModules, saveAdapter, type LoraSpec } from '../../src-main/models/peft';
import { parseHfConfig, visionToHf, type LlavaModelConfig, type VisionModelConfig } from '../../src-main/models/config';
import { expectedTensors } from '../../src-main/models/weights/names';
import { memorySource } from '../../src-main/models/weights/safetensors';
import { demoRng } from '../../src-main/models/demo/rng';

const tmp = tempDir('models-svc-');
const data = join(tmp.dir, 'data');
let backend: Backend;
const events: string[] = [];
before(() => {
  backend = createBackend({ dataDir: data, host: 'test', log: { error() {}, warn() {} } });
  backend.events.subscribe((e, p) => events.push(`${e}:${(p as { kind?: string }).kind ?? ''}`));
});
after(() => {
  backend.close();
  tmp.cleanup();
});

const { ok, fail } = dispatchTo(() => backend);

test('the demo model installs once, validates, and reports what it holds', async () => {
  assert.deepEqual((await ok('models.list')).models, []);
  const a = await ok('models.installDemo', {});
  assert.equal(a.created, true);
  assert.equal(a.model.source, 'demo');
  assert.equal(a.model.managed, a.model.path.startsWith(join(data, 'models')));
  assert.equal(a.model.available, true);
  assert.equal(a.report.kind, 'llava');
  assert.equal(a.report.family, 'llava-llama');
  assert.ok(a.report.params > 0 && a.report.bytes > 0);
  assert.ok(a.report.files.includes('config.json'));
  assert.equal(a.report.hasTokenizer, true);
  assert.equal(a.report.hasPreprocessor, true);
  assert.ok(a.report.imageTokens > 0);
  const b = await ok('models.installDemo', {});
  assert.equal(b.created, false);
  assert.equal(b.model.id, a.model.id);
  assert.equal((await ok('models.list')).models.length, 1);
  assert.ok(events.includes('models.changed:created'));
});

test('inspect and import name the problem; a folder registers once; rename and delete', async () => {
  const missing = await fail('models.inspect', { path: join(tmp.dir, 'nope') });
  assert.equal(missing.code, 'invalid_request');
  assert.equal(missing.field, 'path');
  const empty = join(tmp.dir, 'empty');
  mkdirSync(empty, { recursive: true });
  assert.match((await fail('models.import', { path: empty })).message, /no config\.json/);
  const broken = join(tmp.dir, 'broken');
  writeTinyLlava(broken, 5);
  const cfg = JSON.parse(readFileSync(join(broken, 'config.json'), 'utf8'));
  cfg.text_config.hidden_size = 128;
  writeFileSync(join(broken, 'config.json'), JSON.stringify(cfg));
  const bad = await fail('models.import', { path: broken });
  assert.match(bad.message, /shape/);

  const dir = join(tmp.dir, 'mine');
  writeTinyLlava(dir, 7);
  const r = await ok('models.import', { path: dir, name: 'My tiny LLaVA' });
  assert.equal(r.model.name, 'My tiny LLaVA');
  assert.equal(r.model.path, dir);
  assert.equal(r.model.kind, 'base');
  assert.equal(r.model.managed, false);
  assert.equal((await fail('models.import', { path: dir })).code, 'conflict');
  const renamed = await ok('models.update', { id: r.model.id, name: 'Renamed' });
  assert.equal(renamed.name, 'Renamed');
  // outside the data folder: its files are not Lenslab's to delete
  assert.equal((await fail('models.delete', { id: r.model.id, deleteFiles: true })).field, 'deleteFiles');
  const del = await ok('models.delete', { id: r.model.id });
  assert.equal(del.filesDeleted, false);
  assert.ok(existsSync(join(dir, 'config.json')));
  assert.equal((await fail('models.get', { id: r.model.id })).code, 'not_found');
});

test('inspect warns about a chat template that drops images, naming the file', async () => {
  const dir = join(tmp.dir, 'no-image-template');
  writeTinyLlava(dir, 3);
  writeFileSync(
    join(dir, 'chat_template.jinja'),
    "{% for m in messages %}{% for p in m['content'] | selectattr('type', 'equalto', 'text') %}{{ p['text'] }}{% endfor %}{% endfor %}",
  );
  const r = await ok('models.inspect', { path: dir });
  assert.ok(
    r.warnings.some(
      (w: string) => w.includes(join(dir, 'chat_template.jinja')) && /writes nothing for an image/.test(w),
    ),
    JSON.stringify(r.warnings),
  );
  const good = join(tmp.dir, 'good-template');
  writeTinyLlava(good, 3);
  assert.ok(
    !(await ok('models.inspect', { path: good })).warnings.some((w: string) => /image/.test(w) && /template/.test(w)),
  );
});

test('compose a LLaVA from a CLIP tower and a LLaMA in the data folder', async () => {
  const vdir = join(tmp.dir, 'clip');
  const vjson = {
    architectures: ['CLIPVisionModel'],
    ...visionToHf({
      modelType: 'clip_vision_model',
      hiddenSize: 32,
      intermediateSize: 64,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      headDim: 8,
      numChannels: 3,
      imageSize: 32,
      patchSize: 8,
      hiddenAct: 'quick_gelu',
      layerNormEps: 1e-5,
      classToken: true,
      preLayerNorm: true,
      patchBias: false,
      useHead: false,
      numPatches: 16,
      numPositions: 17,
    }),
  };
  const vcfg = parseHfConfig(vjson) as VisionModelConfig;
  saveHfFolder(vdir, {
    config: vjson,
    weights: memorySource(randomWeights(expectedTensors(vcfg), 1)),
    preprocessorConfig: demoPreprocessorConfig(32),
  });
  const tdir = join(tmp.dir, 'llama');
  writeTinyLlamaLm(tdir);

  const text = await ok('models.inspect', { path: tdir });
  assert.equal(text.kind, 'text');
  assert.ok(text.warnings.some((w: string) => /compose/.test(w)));
  const wrong = await fail('models.compose', { name: 'x', visionPath: tdir, textPath: tdir });
  assert.equal(wrong.field, 'visionPath');
  const r = await ok('models.compose', { name: 'Composed', visionPath: vdir, textPath: tdir, seed: 3 });
  assert.equal(r.addedImageToken, true);
  assert.equal(r.report.kind, 'llava');
  assert.ok(r.model.path.startsWith(join(data, 'models')));
  const del = await ok('models.delete', { id: r.model.id, deleteFiles: true });
  assert.equal(del.filesDeleted, true);
  assert.equal(existsSync(r.model.path), false);
});

test('an adapter folder exports as PEFT files and merges into a new registered model', async () => {
  const base = (await ok('models.list')).models.find((m: any) => m.source === 'demo');
  const loaded = loadHfFolder(base.path);
  const config = loaded.config as LlavaModelConfig;
  loaded.close();
  const spec: LoraSpec = {
    mode: 'lora',
    r: 2,
    alpha: 4,
    dropout: 0,
    targets: ['q_proj', 'v_proj'],
    includeVision: false,
    useRslora: false,
  };
  const rng = demoRng(9);
  const modules = resolveLoraModules(config, adapterConfigJson(config, spec).target_modules as string);
  const lora = new Map(
    modules.map((m) => [
      m.module,
      {
        a: Float32Array.from({ length: 2 * m.inFeatures }, () => rng.normal()),
        b: Float32Array.from({ length: m.outFeatures * 2 }, () => rng.normal()),
      },
    ]),
  );
  const adir = join(tmp.dir, 'adapter');
  saveAdapter(adir, config, spec, lora);

  const out = join(tmp.dir, 'exported');
  const ex = await ok('models.exportAdapter', { adapter: { path: adir }, dir: out });
  assert.deepEqual(ex.files, ['adapter_config.json', 'adapter_model.safetensors']);
  assert.ok(ex.bytes > 0);
  assert.equal((await fail('models.exportAdapter', { adapter: { path: adir }, dir: out })).code, 'conflict');
  assert.equal(
    (await fail('models.exportAdapter', { adapter: { path: tmp.dir }, dir: join(tmp.dir, 'x') })).field,
    'adapter.path',
  );

  const merged = await ok('models.merge', { model: { id: base.id }, adapter: { path: adir }, name: 'Merged demo' });
  assert.equal(merged.model.kind, 'merged');
  assert.equal(merged.model.baseModelId, base.id);
  const m = loadHfFolder(merged.model.path);
  const b = loadHfFolder(base.path);
  const q = modules.find((x) => /layers\.0\.self_attn\.q_proj/.test(x.module))!;
  assert.notDeepEqual(m.weights.get(q.weight), b.weights.get(q.weight), 'the adapted weight changed');
  const k = q.weight.replace('q_proj', 'k_proj');
  assert.deepEqual(m.weights.get(k), b.weights.get(k), 'a weight without LoRA is unchanged');
  m.close();
  b.close();
});
