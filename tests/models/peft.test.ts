import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { loadHfFolder, saveHfFolder } from '../../src-main/models/hf-folder';
import { SafetensorsFile, writeSafetensors } from '../../src-main/models/weights/safetensors';
import {
  adapterConfigJson,
  loadAdapter,
  loraScaling,
  matchesTarget,
  mergeAdapter,
  mergedWeight,
  resolveLoraModules,
  saveAdapter,
  targetModulesRegex,
  projectorParams,
  type LoraSpec,
} from '../../src-main/models/peft';
import { demoRng } from '../../src-main/models/demo/rng';
import type { LlavaModelConfig } from '../../src-main/models/config';

const { dir, cleanup } = tempDir('peft-');
after(cleanup);
const baseDir = join(dir, 'base');
let config: LlavaModelConfig;
before(() => {
  config = writeTinyLlava(baseDir, 21);
});

function randomLora(spec: LoraSpec, seed: number) {
  const rng = demoRng(seed);
  const acfg = adapterConfigJson(config, spec);
  const modules = resolveLoraModules(config, acfg.target_modules as string);
  const lora = new Map(
    modules.map((m) => [
      m.module,
      {
        a: Float32Array.from({ length: spec.r * m.inFeatures }, () => rng.normal() * 0.1),
        b: Float32Array.from({ length: m.outFeatures * spec.r }, () => rng.normal() * 0.1),
      },
    ]),
  );
  return { modules, lora };
}

const spec: LoraSpec = {
  mode: 'lora+projector',
  r: 4,
  alpha: 8,
  dropout: 0.05,
  targets: ['q_proj', 'v_proj'],
  includeVision: false,
  useRslora: false,
};

test('target modules: decoder only by default, vision tower when asked, both LLaVA layouts match', () => {
  const re = targetModulesRegex(config, spec);
  const mods = resolveLoraModules(config, re).map((m) => m.module);
  assert.deepEqual(mods.sort(), [
    'language_model.model.layers.0.self_attn.q_proj',
    'language_model.model.layers.0.self_attn.v_proj',
    'language_model.model.layers.1.self_attn.q_proj',
    'language_model.model.layers.1.self_attn.v_proj',
  ]);
  assert.ok(matchesTarget(re, 'model.language_model.layers.1.self_attn.v_proj'), 'transformers >= 4.52 name');
  assert.ok(!matchesTarget(re, 'vision_tower.vision_model.encoder.layers.0.self_attn.q_proj'));
  const all = resolveLoraModules(
    config,
    targetModulesRegex(config, {
      targets: ['q_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      includeVision: true,
    }),
  ).map((m) => m.module);
  assert.ok(all.includes('vision_tower.vision_model.encoder.layers.1.self_attn.out_proj'));
  assert.ok(all.includes('vision_tower.vision_model.encoder.layers.0.mlp.fc1'));
  assert.ok(all.includes('vision_tower.vision_model.encoder.layers.0.mlp.fc2'));
  assert.ok(all.includes('language_model.model.layers.1.mlp.gate_proj'));
  assert.equal(all.length, 2 * 5 + 2 * 4);
  // PEFT's list form matches by suffix anywhere, so ["q_proj"] also adapts the vision tower (PEFT semantics)
  assert.equal(resolveLoraModules(config, ['q_proj']).length, 4);
  // never the projector (it is trained whole, as modules_to_save)
  assert.equal(resolveLoraModules(config, '.*').filter((m) => m.module.startsWith('multi_modal_projector')).length, 0);
  assert.equal(loraScaling(spec), 2);
  assert.equal(loraScaling({ ...spec, useRslora: true }), 4);
});

test('PEFT save -> load round trip: key names, shapes, adapter_config.json, projector as modules_to_save', () => {
  const { lora } = randomLora(spec, 1);
  const base = loadHfFolder(baseDir);
  const saved = new Map(projectorParams(config).map((n) => [n, base.weights.get(n).map((x) => x * 2)]));
  const out = join(dir, 'adapter');
  saveAdapter(out, config, spec, lora, saved, 'tiny-llava');
  const acfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.equal(acfg.peft_type, 'LORA');
  assert.equal(acfg.r, 4);
  assert.equal(acfg.lora_alpha, 8);
  assert.equal(acfg.lora_dropout, 0.05);
  assert.equal(acfg.task_type, 'CAUSAL_LM');
  assert.deepEqual(acfg.modules_to_save, ['multi_modal_projector']);
  assert.equal(acfg.base_model_name_or_path, 'tiny-llava');
  const f = SafetensorsFile.open(join(out, 'adapter_model.safetensors'));
  assert.deepEqual(
    f.info('base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_A.weight').shape,
    [4, 96],
  );
  assert.deepEqual(
    f.info('base_model.model.language_model.model.layers.0.self_attn.v_proj.lora_B.weight').shape,
    [48, 4],
  );
  assert.deepEqual(f.info('base_model.model.multi_modal_projector.linear_1.weight').shape, [96, 64]);
  assert.equal(f.names().length, 4 * 2 + 4);
  assert.equal(f.metadata.format, 'pt');
  f.close();
  const ad = loadAdapter(out, config);
  assert.equal(ad.scaling, 2);
  assert.equal(ad.modules.length, 4);
  for (const [m, ab] of lora) {
    assert.deepEqual(ad.lora.get(m)!.a, ab.a);
    assert.deepEqual(ad.lora.get(m)!.b, ab.b);
  }
  for (const [n, v] of saved) assert.deepEqual(ad.saved.get(n), v);
  // the same adapter written with transformers >= 4.52 module names loads to the same thing
  const alt = join(dir, 'adapter-new-layout');
  mkdirSync(alt);
  writeFileSync(join(alt, 'adapter_config.json'), JSON.stringify(acfg));
  const g = SafetensorsFile.open(join(out, 'adapter_model.safetensors'));
  writeSafetensors(
    join(alt, 'adapter_model.safetensors'),
    g.names().map((k) => ({
      name: k
        .replace('base_model.model.language_model.model.', 'base_model.model.model.language_model.')
        .replace('base_model.model.multi_modal_projector.', 'base_model.model.model.multi_modal_projector.'),
      dtype: 'F32' as const,
      shape: g.info(k).shape,
      data: () => g.get(k),
    })),
  );
  g.close();
  const ad2 = loadAdapter(alt, config);
  for (const [m, ab] of ad.lora) assert.deepEqual(ad2.lora.get(m), ab);
  for (const [n, v] of ad.saved) assert.deepEqual(ad2.saved.get(n), v);
  base.close();
});

test('merge: W + (alpha / r) * B @ A, untouched tensors identical, projector replaced; merged folder reloads', () => {
  // hand-sized check of the formula
  const w = new Float32Array([1, 2, 3, 4, 5, 6]); // [2, 3]
  const a = new Float32Array([1, 0, 2, 0, 1, 1]); // [2 (r), 3]
  const b = new Float32Array([1, 2, 0, 3]); // [2, 2 (r)]
  // B @ A = [[1*1+2*0, 0+2*1, 1*2+2*1], [0*1+3*0, 0+3*1, 0*2+3*1]] = [[1, 2, 4], [0, 3, 3]]
  assert.deepEqual([...mergedWeight(w, a, b, 2, 3, 2, 0.5)], [1.5, 3, 5, 4, 6.5, 7.5]);

  const { lora } = randomLora(spec, 2);
  const base = loadHfFolder(baseDir);
  const saved = new Map(projectorParams(config).map((n) => [n, base.weights.get(n).map((x) => x + 1)]));
  const out = join(dir, 'adapter-merge');
  saveAdapter(out, config, spec, lora, saved);
  const ad = loadAdapter(out, config);
  const merged = mergeAdapter(base.weights, ad);
  const q = 'language_model.model.layers.1.self_attn.q_proj';
  const W = base.weights.get(`${q}.weight`);
  const M = merged.get(`${q}.weight`);
  const { a: A, b: B } = lora.get(q)!;
  for (const [o, i] of [
    [0, 0],
    [17, 33],
    [95, 95],
  ]) {
    let s = 0;
    for (let k = 0; k < 4; k++) s += B[o * 4 + k] * A[k * 96 + i];
    assert.ok(Math.abs(M[o * 96 + i] - (W[o * 96 + i] + 2 * s)) < 1e-6);
  }
  assert.deepEqual(
    merged.get('language_model.model.layers.1.self_attn.k_proj.weight'),
    base.weights.get('language_model.model.layers.1.self_attn.k_proj.weight'),
  );
  assert.deepEqual(merged.get('multi_modal_projector.linear_2.bias'), saved.get('multi_modal_projector.linear_2.bias'));
  const mdir = join(dir, 'merged');
  saveHfFolder(mdir, {
    config: base.json.config,
    weights: merged,
    tokenizer: base.json.tokenizer,
    tokenizerConfig: base.json.tokenizerConfig,
    preprocessorConfig: base.json.preprocessorConfig,
  });
  const m2 = loadHfFolder(mdir);
  for (const n of base.weights.names()) assert.deepEqual(m2.weights.get(n), merged.get(n), n);
  m2.close();
  base.close();
});

test('projector-only mode writes a PEFT-loadable adapter whose LoRA part is a no-op', () => {
  const base = loadHfFolder(baseDir);
  const saved = new Map(projectorParams(config).map((n) => [n, base.weights.get(n).map((x) => -x)]));
  const out = join(dir, 'adapter-projector');
  saveAdapter(out, config, { ...spec, mode: 'projector' }, new Map(), saved);
  const ad = loadAdapter(out, config);
  const merged = mergeAdapter(base.weights, ad);
  for (const n of base.weights.names()) {
    if (n.startsWith('multi_modal_projector.')) assert.deepEqual(merged.get(n), saved.get(n));
    else assert.deepEqual(merged.get(n), base.weights.get(n), n);
  }
  base.close();
});

test('bad adapters: errors name the file and the tensor or field', () => {
  const { lora } = randomLora({ ...spec, mode: 'lora' }, 3);
  const good = join(dir, 'good');
  saveAdapter(good, config, { ...spec, mode: 'lora' }, lora);
  const acfg = JSON.parse(readFileSync(join(good, 'adapter_config.json'), 'utf8'));
  const f = SafetensorsFile.open(join(good, 'adapter_model.safetensors'));
  const tensors = f.names().map((k) => ({
    name: k,
    dtype: 'F32' as const,
    shape: f.info(k).shape,
    data: (() => {
      const d = f.get(k);
      return () => d;
    })(),
  }));
  f.close();
  const variant = (name: string, cfg: unknown, ts = tensors) => {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'adapter_config.json'), JSON.stringify(cfg));
    writeSafetensors(join(d, 'adapter_model.safetensors'), ts);
    return d;
  };
  const qA = 'base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_A.weight';
  assert.throws(
    () =>
      loadAdapter(
        variant(
          'shape',
          acfg,
          tensors.map((t) => (t.name === qA ? { ...t, shape: [2, 192], data: () => new Float32Array(384) } : t)),
        ),
        config,
      ),
    /shape\/adapter_model\.safetensors: tensor "base_model\.model\.language_model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight" has shape \[2,192\], expected \[4,96\]/,
  );
  assert.throws(
    () =>
      loadAdapter(
        variant(
          'missing',
          acfg,
          tensors.filter((t) => t.name !== qA),
        ),
        config,
      ),
    /missing\/adapter_model\.safetensors: missing LoRA matrices for 1 targeted module\(s\): base_model\.model\.language_model\.model\.layers\.0\.self_attn\.q_proj/,
  );
  assert.throws(
    () =>
      loadAdapter(
        variant('extra', acfg, [
          ...tensors,
          {
            name: 'base_model.model.language_model.model.layers.0.mlp.up_proj.lora_A.weight',
            dtype: 'F32' as const,
            shape: [4, 96],
            data: () => new Float32Array(384),
          },
        ]),
        config,
      ),
    /extra\/adapter_model\.safetensors: tensor "base_model\.model\.language_model\.model\.layers\.0\.mlp\.up_proj\.lora_A\.weight" adapts a module that target_modules does not select/,
  );
  assert.throws(
    () => loadAdapter(variant('dora', { ...acfg, use_dora: true }), config),
    /dora\/adapter_config\.json: field "use_dora": DoRA adapters are not supported/,
  );
  assert.throws(
    () => loadAdapter(variant('rank', { ...acfg, r: 0 }), config),
    /rank\/adapter_config\.json: field "r": must be a positive integer/,
  );
  assert.throws(
    () => loadAdapter(variant('nomatch', { ...acfg, target_modules: ['c_attn'] }), config),
    /nomatch\/adapter_config\.json: field "target_modules": \["c_attn"\] matches no linear layer/,
  );
  assert.throws(
    () => loadAdapter(variant('ptype', { ...acfg, peft_type: 'IA3' }), config),
    /field "peft_type": only LORA adapters are supported/,
  );
});
