// The PEFT folder reading every family's adapter loader shares (models/peft-folder.ts), through the BLIP and the
// CLIP loaders: a saved adapter reads back; PEFT's config defaults apply; a variant the engine cannot run (DoRA,
// biases) is refused by field instead of being run as a plain LoRA; bad matrices and pickle-only folders are named.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync, cpSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { writeTinyBlip } from '../../src-main/models/demo/tiny-blip';
import { writeTinyContrastive } from '../../src-main/models/demo/tiny-contrastive';
import {
  BlipAdapterError,
  blipLinearModules,
  blipLoraModules,
  loadBlipAdapter,
  saveBlipAdapter,
} from '../../src-main/models/families/blip/adapter';
import {
  ContrastiveAdapterError,
  loadContrastiveAdapter,
  saveContrastiveAdapter,
} from '../../src-main/models/families/contrastive/adapter';
import { contrastiveLoraModules, contrastiveTensors } from '../../src-main/models/families/contrastive/graph';
import { SafetensorsFile, writeSafetensors } from '../../src-main/models/weights/safetensors';
import { demoRng } from '../../src-main/models/demo/rng';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('adapter-folder-');
after(() => tmp.cleanup());

function randomPairs(mods: Map<string, [number, number]>, names: string[], r: number, seed: number) {
  const rng = demoRng(seed);
  const fill = (n: number) => Float32Array.from({ length: n }, () => rng.normal() * 0.1);
  return new Map(
    names.map((m) => {
      const [out, inn] = mods.get(m)!;
      return [m, { a: fill(r * inn), b: fill(out * r) }];
    }),
  );
}

/** A copy of adapter folder `dir` with its config changed by `edit`. */
function withConfig(dir: string, name: string, edit: (cfg: Record<string, unknown>) => void): string {
  const to = join(tmp.dir, name);
  cpSync(dir, to, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(to, 'adapter_config.json'), 'utf8'));
  edit(cfg);
  writeFileSync(join(to, 'adapter_config.json'), JSON.stringify(cfg));
  return to;
}

/** A copy of adapter folder `dir` whose weights file keeps only the tensors `keep` accepts. */
function withTensors(dir: string, name: string, keep: (key: string) => boolean): string {
  const to = join(tmp.dir, name);
  cpSync(dir, to, { recursive: true });
  const f = SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
  const tensors = f
    .names()
    .filter(keep)
    .map((n) => ({ name: n, dtype: 'F32' as const, shape: f.info(n).shape, data: () => f.get(n) }));
  writeSafetensors(join(to, 'adapter_model.safetensors'), tensors);
  f.close();
  return to;
}

test('a BLIP adapter reads back; PEFT defaults, DoRA, biases, half pairs, shapes and pickles are checked', () => {
  const c = writeTinyBlip(join(tmp.dir, 'blip'), 1);
  const mods = blipLinearModules(c);
  const names = blipLoraModules(c, ['query', 'value']);
  const r = 4;
  const lora = randomPairs(mods, names, r, 2);
  const dir = join(tmp.dir, 'blip-adapter');
  saveBlipAdapter(dir, c, { r, alpha: 8, scaling: 2, dropout: 0.05, targetModules: ['query', 'value'], lora });
  const back = loadBlipAdapter(dir, c);
  assert.equal(back.r, r);
  assert.equal(back.scaling, 2);
  assert.equal(back.dropout, 0.05);
  assert.deepEqual(back.targetModules, ['query', 'value']);
  assert.deepEqual([...back.lora.keys()].sort(), [...names].sort());
  for (const m of names) assert.deepEqual(back.lora.get(m), lora.get(m));

  // PEFT's LoraConfig default lora_alpha is 8, not r
  const noAlpha = withConfig(dir, 'blip-no-alpha', (cfg) => delete cfg.lora_alpha);
  assert.equal(loadBlipAdapter(noAlpha, c).scaling, 8 / r);
  const rs = withConfig(dir, 'blip-rslora', (cfg) => (cfg.use_rslora = true));
  assert.equal(loadBlipAdapter(rs, c).scaling, 8 / Math.sqrt(r));
  const refused = (d: string, re: RegExp) =>
    assert.throws(
      () => loadBlipAdapter(d, c),
      (e: Error) => e instanceof BlipAdapterError && re.test(e.message),
    );
  refused(
    withConfig(dir, 'blip-dora', (cfg) => (cfg.use_dora = true)),
    /blip-dora\/adapter_config\.json: field "use_dora"/,
  );
  refused(
    withConfig(dir, 'blip-bias', (cfg) => (cfg.bias = 'all')),
    /field "bias": only "none"/,
  );
  refused(
    withConfig(dir, 'blip-rank', (cfg) => (cfg.r = 8)),
    /tensor ".*lora_A\.weight" has shape \[4,\d+\], expected \[8,\d+\] \(r = 8\)/,
  );
  refused(
    withTensors(dir, 'blip-half', (k) => !k.endsWith('lora_B.weight') || !k.includes(names[0])),
    /has only one of lora_A \/ lora_B/,
  );
  refused(
    withConfig(dir, 'blip-saved', (cfg) => (cfg.modules_to_save = ['classifier'])),
    /modules_to_save is not supported for BLIP adapters/,
  );
  const pickle = join(tmp.dir, 'blip-pickle');
  cpSync(dir, pickle, { recursive: true });
  renameSync(join(pickle, 'adapter_model.safetensors'), join(pickle, 'adapter_model.bin'));
  refused(pickle, /adapter_model\.bin: PyTorch pickle weights are not loaded/);
  rmSync(join(pickle, 'adapter_config.json'));
  refused(pickle, /blip-pickle: no adapter_config\.json/);
});

test('a CLIP adapter reads back through the same checks, with its own error class', () => {
  const c = writeTinyContrastive(join(tmp.dir, 'clip'), 'clip', 3);
  const names = contrastiveLoraModules(c, 'both', ['q_proj', 'v_proj']);
  const shapes = new Map(contrastiveTensors(c).map((t) => [t.name, t.shape]));
  const specs = new Map(names.map((m) => [m, shapes.get(`${m}.weight`) as [number, number]]));
  const r = 2;
  const lora = randomPairs(specs, names, r, 4);
  const dir = join(tmp.dir, 'clip-adapter');
  saveContrastiveAdapter(dir, c, { r, alpha: 4, scaling: 2, lora, saved: new Map(), modulesToSave: [] });
  const back = loadContrastiveAdapter(dir, c);
  assert.equal(back.scaling, 2);
  for (const m of names) assert.deepEqual(back.lora.get(m), lora.get(m));
  assert.throws(
    () =>
      loadContrastiveAdapter(
        withConfig(dir, 'clip-dora', (cfg) => (cfg.use_dora = true)),
        c,
      ),
    (e: Error) => e instanceof ContrastiveAdapterError && /field "use_dora"/.test(e.message),
  );
  assert.throws(
    () =>
      loadContrastiveAdapter(
        withTensors(dir, 'clip-half', (k) => !k.endsWith('lora_A.weight')),
        c,
      ),
    (e: Error) => e instanceof ContrastiveAdapterError && /has only one of lora_A \/ lora_B/.test(e.message),
  );
});
