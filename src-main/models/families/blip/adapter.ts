// PEFT LoRA adapters of BLIP models: adapter_config.json + adapter_model.safetensors as PEFT writes them for a model
// wrapped by get_peft_model (keys "base_model.model.<module>.lora_A.weight" / ".lora_B.weight"), applied under PEFT's
// rules: W' = W + scaling * B A, scaling = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora). target_modules is
// written as the user gave it (e.g. ["query", "key"], the published BLIP VQA recipe): PEFT selects every linear module
// whose name ends with "." + entry, which is the set `blipLoraModules` trains, so PEFT loads the same modules.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Graph } from '../../../engine/graph/builder';
import { writeJsonAtomic } from '../../hf-folder';
import { LoraPairs, loraScaling, readAdapterFolder } from '../../peft-folder';
import type { LoraBinding } from '../../layers';
import { SafetensorsFile, writeSafetensors } from '../../weights/safetensors';
import type { BlipConfig } from './config';
import { blipTensors } from './graph';

export class BlipAdapterError extends Error {}

const PREFIX = 'base_model.model.';

export interface BlipAdapter {
  r: number;
  alpha: number;
  scaling: number;
  dropout: number;
  targetModules: string[];
  /** module -> A [r, in], B [out, r] */
  lora: Map<string, { a: Float32Array; b: Float32Array }>;
}

/** The linear modules (weights [out, in] with a bias or not) of a BLIP model, canonical names without ".weight". */
export function blipLinearModules(c: BlipConfig): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  for (const s of blipTensors(c)) {
    if (!s.name.endsWith('.weight') || s.shape.length !== 2) continue;
    const mod = s.name.slice(0, -'.weight'.length);
    if (/(embeddings|LayerNorm|layer_norm|layernorm)/.test(mod) || mod.endsWith('cls.predictions.decoder')) continue;
    out.set(mod, [s.shape[0], s.shape[1]]);
  }
  return out;
}

/** PEFT's target_modules matching: a module is adapted when its name equals an entry or ends with "." + entry. */
export function blipLoraModules(c: BlipConfig, targets: readonly string[]): string[] {
  const mods = [...blipLinearModules(c).keys()];
  const picked = mods.filter((m) => targets.some((t) => m === t || m.endsWith(`.${t}`)));
  for (const t of targets)
    if (!mods.some((m) => m === t || m.endsWith(`.${t}`)))
      throw new BlipAdapterError(
        `target module "${t}" matches no linear layer of this ${c.architecture} (e.g. query, key, value, dense, qkv, projection, fc1, fc2)`,
      );
  return picked;
}

/** Write a PEFT adapter folder. */
export function saveBlipAdapter(dir: string, c: BlipConfig, ad: BlipAdapter, baseModel = ''): void {
  const mods = blipLinearModules(c);
  const tensors: Array<{ name: string; dtype: 'F32'; shape: number[]; data: () => Float32Array }> = [];
  for (const [module, { a, b }] of ad.lora) {
    const sh = mods.get(module);
    if (!sh) throw new BlipAdapterError(`no linear module "${module}" in a ${c.architecture} model`);
    const [out, inn] = sh;
    if (a.length !== ad.r * inn || b.length !== out * ad.r)
      throw new BlipAdapterError(`module "${module}": LoRA sizes do not match [${ad.r}, ${inn}] / [${out}, ${ad.r}]`);
    tensors.push({ name: `${PREFIX}${module}.lora_A.weight`, dtype: 'F32', shape: [ad.r, inn], data: () => a });
    tensors.push({ name: `${PREFIX}${module}.lora_B.weight`, dtype: 'F32', shape: [out, ad.r], data: () => b });
  }
  const config = {
    peft_type: 'LORA',
    task_type: null,
    base_model_name_or_path: baseModel,
    r: ad.r,
    lora_alpha: ad.alpha,
    lora_dropout: ad.dropout,
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: false,
    init_lora_weights: true,
    inference_mode: true,
    target_modules: ad.targetModules,
    modules_to_save: null,
    revision: null,
    auto_mapping: { base_model_class: c.architecture, parent_library: 'transformers.models.blip.modeling_blip' },
  };
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors);
  writeJsonAtomic(join(dir, 'adapter_config.json'), config);
}

/** Read a PEFT adapter of a BLIP model; every tensor is checked against the module it adapts. */
export function loadBlipAdapter(dir: string, c: BlipConfig): BlipAdapter {
  const fail = (m: string) => new BlipAdapterError(m);
  const { cfgPath, wPath, config } = readAdapterFolder(dir, fail);
  if (config.modulesToSave.length) throw fail(`${cfgPath}: modules_to_save is not supported for BLIP adapters`);
  const { r, alpha } = config;
  const mods = blipLinearModules(c);
  const f = SafetensorsFile.open(wPath);
  try {
    const lora = new LoraPairs(r, wPath, fail);
    for (const key of f.names()) {
      if (!key.startsWith(PREFIX)) throw fail(`${wPath}: tensor "${key}" does not start with "${PREFIX}"`);
      const rest = key.slice(PREFIX.length).replace('.default.', '.');
      const m = /^(.*)\.lora_([AB])\.weight$/.exec(rest);
      if (!m) throw fail(`${wPath}: tensor "${key}" is not a LoRA matrix`);
      const sh = mods.get(m[1]);
      if (!sh)
        throw fail(`${wPath}: tensor "${key}" adapts "${m[1]}", which is not a linear layer of this ${c.architecture}`);
      lora.add(f, key, m[1], m[2] as 'A' | 'B', sh[0], sh[1]);
    }
    const pairs = lora.pairs();
    const tm = typeof config.targetModules === 'string' ? [config.targetModules] : config.targetModules;
    return {
      r,
      alpha,
      scaling: loraScaling({ r, alpha, useRslora: config.useRslora }),
      dropout: config.dropout,
      targetModules: tm,
      lora: pairs,
    };
  } finally {
    f.close();
  }
}

/** The adapter's LoRA branches as graph constants (PEFT's unmerged forward, no dropout). */
export function blipLoraBindings(ad: BlipAdapter, c: BlipConfig, g: Graph): Map<string, LoraBinding> {
  const mods = blipLinearModules(c);
  const out = new Map<string, LoraBinding>();
  for (const [module, { a, b }] of ad.lora) {
    const [o, i] = mods.get(module)!;
    out.set(module, {
      a: g.constant(a, 'float32', [ad.r, i]),
      b: g.constant(b, 'float32', [o, ad.r]),
      scaling: ad.scaling,
    });
  }
  return out;
}

/** W + scaling * B A for every adapted module (PEFT's merge_and_unload), as replacement tensors. */
export function mergedBlipTensors(
  ad: BlipAdapter,
  base: { get(name: string): Float32Array },
): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [module, { a, b }] of ad.lora) {
    const name = `${module}.weight`;
    const w = Float32Array.from(base.get(name));
    const i = a.length / ad.r;
    const o = b.length / ad.r;
    for (let r0 = 0; r0 < o; r0++)
      for (let c0 = 0; c0 < i; c0++) {
        let s = 0;
        for (let k = 0; k < ad.r; k++) s += b[r0 * ad.r + k] * a[k * i + c0];
        w[r0 * i + c0] += ad.scaling * s;
      }
    out.set(name, w);
  }
  return out;
}
