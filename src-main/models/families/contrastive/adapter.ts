// PEFT LoRA adapters of CLIPModel / SiglipModel: adapter_config.json + adapter_model.safetensors as PEFT writes them
// for a model wrapped by get_peft_model (keys "base_model.model.<module>.lora_A.weight" / ".lora_B.weight",
// modules_to_save tensors as "base_model.model.<module>.<param>"), applied under PEFT's rules:
// W' = W + scaling * B A with scaling = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora), saved modules replace
// the base module's tensors. target_modules is written as the list of full module names (PEFT matches a list entry
// by equality or by "." + entry suffix), so any PEFT version selects exactly the trained modules.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Graph } from '../../../engine/graph/builder';
import { writeJsonAtomic } from '../../hf-folder';
import { LoraPairs, loraScaling, readAdapterFolder } from '../../peft-folder';
import type { LoraBinding } from '../../layers';
import { SafetensorsFile, writeSafetensors } from '../../weights/safetensors';
import type { ContrastiveConfig } from './config';
import { contrastiveLoraModules, contrastiveTensors } from './graph';

export class ContrastiveAdapterError extends Error {}

const PREFIX = 'base_model.model.';

export interface ContrastiveAdapter {
  r: number;
  alpha: number;
  scaling: number;
  /** module -> A [r, in], B [out, r] */
  lora: Map<string, { a: Float32Array; b: Float32Array }>;
  /** modules_to_save tensors by canonical name */
  saved: Map<string, Float32Array>;
  modulesToSave: string[];
}

function specsOf(c: ContrastiveConfig): Map<string, number[]> {
  return new Map(contrastiveTensors(c).map((s) => [s.name, s.shape]));
}

/** Write a PEFT adapter folder. */
export function saveContrastiveAdapter(
  dir: string,
  c: ContrastiveConfig,
  ad: ContrastiveAdapter,
  baseModel = '',
): void {
  const specs = specsOf(c);
  const tensors: Array<{ name: string; dtype: 'F32'; shape: number[]; data: () => Float32Array }> = [];
  for (const [module, { a, b }] of ad.lora) {
    const [out, inn] = specs.get(`${module}.weight`) ?? [];
    if (out === undefined) throw new ContrastiveAdapterError(`no module "${module}" in a ${c.modelType} model`);
    if (a.length !== ad.r * inn || b.length !== out * ad.r)
      throw new ContrastiveAdapterError(
        `module "${module}": LoRA sizes do not match [${ad.r}, ${inn}] / [${out}, ${ad.r}]`,
      );
    tensors.push({ name: `${PREFIX}${module}.lora_A.weight`, dtype: 'F32', shape: [ad.r, inn], data: () => a });
    tensors.push({ name: `${PREFIX}${module}.lora_B.weight`, dtype: 'F32', shape: [out, ad.r], data: () => b });
  }
  for (const [name, v] of ad.saved) {
    const shape = specs.get(name);
    if (!shape) throw new ContrastiveAdapterError(`no tensor "${name}" in a ${c.modelType} model`);
    tensors.push({ name: PREFIX + name, dtype: 'F32', shape, data: () => v });
  }
  const config = {
    peft_type: 'LORA',
    task_type: null,
    base_model_name_or_path: baseModel,
    r: ad.r,
    lora_alpha: ad.alpha,
    lora_dropout: 0,
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: false,
    init_lora_weights: true,
    inference_mode: true,
    target_modules: [...ad.lora.keys()],
    modules_to_save: ad.modulesToSave.length ? ad.modulesToSave : null,
    revision: null,
    auto_mapping: {
      base_model_class: c.kind === 'clip' ? 'CLIPModel' : 'SiglipModel',
      parent_library: `transformers.models.${c.kind}.modeling_${c.kind}`,
    },
  };
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors);
  writeJsonAtomic(join(dir, 'adapter_config.json'), config);
}

/** Read a PEFT adapter of a CLIP / SigLIP model; every tensor is checked against the module it adapts. */
export function loadContrastiveAdapter(dir: string, c: ContrastiveConfig): ContrastiveAdapter {
  const fail = (m: string) => new ContrastiveAdapterError(m);
  const { wPath, config } = readAdapterFolder(dir, fail);
  const { r, alpha } = config;
  const scaling = loraScaling({ r, alpha, useRslora: config.useRslora });
  const f = SafetensorsFile.open(wPath);
  try {
    const specs = specsOf(c);
    const known = new Set(contrastiveLoraModules(c, 'both', ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2']));
    for (const s of specs.keys())
      if (s.endsWith('.weight') && specs.get(s)!.length === 2) known.add(s.slice(0, -'.weight'.length));
    const lora = new LoraPairs(r, wPath, fail);
    const saved = new Map<string, Float32Array>();
    const names = f.names();
    for (const key of names) {
      if (!key.startsWith(PREFIX))
        throw new ContrastiveAdapterError(`${wPath}: tensor "${key}" does not start with "${PREFIX}"`);
      const rest = key.slice(PREFIX.length).replace('.default.', '.');
      const m = /^(.*)\.lora_([AB])\.weight$/.exec(rest);
      if (m) {
        const module = m[1];
        if (!known.has(module))
          throw new ContrastiveAdapterError(
            `${wPath}: tensor "${key}" adapts "${module}", which is not a linear layer of this ${c.modelType} model`,
          );
        const [out, inn] = specs.get(`${module}.weight`)!;
        lora.add(f, key, module, m[2] as 'A' | 'B', out, inn);
        continue;
      }
      const name = rest.replace('.modules_to_save.', '.');
      const shape = specs.get(name);
      if (!shape)
        throw new ContrastiveAdapterError(
          `${wPath}: tensor "${key}" is neither a LoRA matrix nor a tensor of this ${c.modelType} model`,
        );
      const got = f.info(key).shape;
      if (got.reduce((x, y) => x * y, 1) !== shape.reduce((x, y) => x * y, 1))
        throw new ContrastiveAdapterError(`${wPath}: tensor "${key}" has shape [${got}], the model's is [${shape}]`);
      saved.set(name, f.get(key));
    }
    return { r, alpha, scaling, lora: lora.pairs(), saved, modulesToSave: config.modulesToSave };
  } finally {
    f.close();
  }
}

/** The adapter's LoRA branches as graph constants (PEFT's unmerged forward). */
export function adapterLoraBindings(ad: ContrastiveAdapter, c: ContrastiveConfig, g: Graph): Map<string, LoraBinding> {
  const specs = specsOf(c);
  const lora = new Map<string, LoraBinding>();
  for (const [module, { a, b }] of ad.lora) {
    const [out, inn] = specs.get(`${module}.weight`)!;
    lora.set(module, {
      a: g.constant(a, 'float32', [ad.r, inn]),
      b: g.constant(b, 'float32', [out, ad.r]),
      scaling: ad.scaling,
    });
  }
  return lora;
}

/** W + scaling * B A for every adapted module (PEFT's merge_and_unload), as replacement tensors. */
export function mergedTensors(
  ad: ContrastiveAdapter,
  c: ContrastiveConfig,
  base: { get(name: string): Float32Array },
): Map<string, Float32Array> {
  const specs = specsOf(c);
  const out = new Map<string, Float32Array>(ad.saved);
  for (const [module, { a, b }] of ad.lora) {
    const name = `${module}.weight`;
    const [o, i] = specs.get(name)!;
    const w = Float32Array.from(out.get(name) ?? base.get(name));
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
