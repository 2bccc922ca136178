// LoRA adapters in PEFT's on-disk format, merging them into base weights, and an adapter inside a graph: which
// modules get adapters, their shapes and key names, adapter_config.json, adapter_model.safetensors,
// W' = W + scaling * B @ A, and the LoRA branches as graph constants (adapterBindings) or graph inputs
// (AdapterInputs, fed from adapterInputTensors). The model graphs that use them are built elsewhere (llava.ts).
//
// PEFT layout (peft.utils.save_and_load): tensor keys are "base_model.model.<module>.lora_A.weight" [r, in] and
// ".lora_B.weight" [out, r]; fully trained modules (modules_to_save, e.g. the projector) are stored as
// "base_model.model.<module>.<param>". scaling = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora.
// Module names are the family's canonical names (LLaVA: the classic layout language_model.model.layers.N…; on load
// the transformers >= 4.52 names model.language_model.layers.N… are accepted as well; Idefics3: model.text_model.…);
// the family (families/<family>/ peft) says which module prefixes hold the decoder and vision layers and which
// module the 'projector' method saves whole (modules_to_save).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { isVlm, type ModelConfig, type TextModelConfig, type VlmModelConfig } from './config';
import { vlmFamilyOf } from './registry';
import { canonicalName, expectedTensors, weightLayout } from './weights/names';
import { SafetensorsFile, writeSafetensors, type TensorSource } from './weights/safetensors';
import { writeJsonAtomic } from './hf-folder';
import type { Graph, Value } from '../engine/graph/builder';
import type { DType } from '../engine/graph/dtype';
import type { LazyTensors, LoraBinding } from './layers';
import { ATTENTION_TARGETS, LORA_TARGETS, MLP_TARGETS, type LoraTarget, type TrainMethod } from '../contract/hparams';

export { PeftError, loraScaling, parseAdapterConfig, type ParsedAdapterConfig } from './peft-folder';
import {
  LoraPairs,
  PeftError,
  loraScaling,
  parseAdapterConfig,
  readAdapterFolder,
  type ParsedAdapterConfig,
} from './peft-folder';

/** Decoder projections LoRA can target (LLaMA / Qwen2 names). */
/** The same roles in a CLIP / SigLIP layer (no gate). */
const VISION_NAME: Record<LoraTarget, string | null> = {
  q_proj: 'q_proj',
  k_proj: 'k_proj',
  v_proj: 'v_proj',
  o_proj: 'out_proj',
  gate_proj: null,
  up_proj: 'fc1',
  down_proj: 'fc2',
};

export type TrainMode = TrainMethod;

export interface LoraSpec {
  mode: TrainMode;
  r: number;
  alpha: number;
  dropout: number;
  targets: LoraTarget[];
  /** also put adapters on the vision tower's matching projections */
  includeVision: boolean;
  useRslora: boolean;
}

/** One adapted linear layer. */
export interface LoraModule {
  /** canonical module path, e.g. "language_model.model.layers.0.self_attn.q_proj" */
  module: string;
  /** its base weight tensor ("<module>.weight"), shape [outFeatures, inFeatures] */
  weight: string;
  inFeatures: number;
  outFeatures: number;
  /** PEFT tensor keys */
  keyA: string;
  keyB: string;
}

const PREFIX = 'base_model.model.';

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * PEFT target_modules as a regex (PEFT full-matches a string target against module names), restricted to the
 * decoder (and the vision tower when asked), accepting both transformers layouts of LLaVA.
 */
export function targetModulesRegex(config: ModelConfig, spec: Pick<LoraSpec, 'targets' | 'includeVision'>): string {
  const dec = spec.targets.filter((t) => t.endsWith('_proj'));
  const attn = dec.filter((t) => (ATTENTION_TARGETS as readonly string[]).includes(t));
  const mlp = dec.filter((t) => (MLP_TARGETS as readonly string[]).includes(t));
  const groups: string[] = [];
  // OPT names the same roles out_proj, fc1 (up) and fc2 (down), the MLP directly in the layer, and has no gate
  const opt = config.kind !== 'vision' && config.text.modelType === 'opt';
  if (opt) {
    const a = attn.map((t) => (t === 'o_proj' ? 'out_proj' : t));
    const m = mlp.map((t) => VISION_NAME[t]).filter((x): x is string => x !== null);
    if (a.length) groups.push(`self_attn\\.(?:${a.join('|')})`);
    if (m.length) groups.push(`(?:${m.join('|')})`);
  } else {
    if (attn.length) groups.push(`self_attn\\.(?:${attn.join('|')})`);
    if (mlp.length) groups.push(`mlp\\.(?:${mlp.join('|')})`);
  }
  if (groups.length === 0)
    throw new PeftError(
      opt
        ? `LoRA targets ${JSON.stringify(spec.targets)} match no OPT layer (gate_proj has none)`
        : 'LoRA needs at least one target module',
    );
  const fam = isVlm(config) ? vlmFamilyOf(config) : null;
  const decPrefix = fam ? fam.peft.decoderLayers : opt ? 'model\\.decoder' : 'model';
  const parts = [`${decPrefix}\\.layers\\.\\d+\\.(?:${groups.join('|')})`];
  if (spec.includeVision && fam) {
    const va = spec.targets.map((t) => VISION_NAME[t]).filter((x): x is string => x !== null && !x.startsWith('fc'));
    const vm = spec.targets.map((t) => VISION_NAME[t]).filter((x): x is string => x !== null && x.startsWith('fc'));
    const vg: string[] = [];
    if (va.length) vg.push(`self_attn\\.(?:${va.join('|')})`);
    if (vm.length) vg.push(`mlp\\.(?:${vm.join('|')})`);
    if (vg.length) parts.push(`${fam.peft.visionLayers}\\.encoder\\.layers\\.\\d+\\.(?:${vg.join('|')})`);
  }
  return parts.length === 1 ? parts[0] : `(?:${parts.join('|')})`;
}

/** Does a PEFT target_modules value select this module name? (list: exact or ".suffix" match; string: full regex match) */
export function matchesTarget(target: string | string[], module: string): boolean {
  if (typeof target === 'string') return new RegExp(`^(?:${target})$`).test(module);
  return target.some((t) => module === t || module.endsWith(`.${t}`));
}

/** Every linear layer of the model (canonical module names) with its shape. */
function linearModules(config: ModelConfig): Array<{ module: string; out: number; in: number }> {
  return expectedTensors(config)
    .filter(
      (s) => s.name.endsWith('.weight') && s.shape.length === 2 && /(_proj|\.fc[12]|linear_[12])\.weight$/.test(s.name),
    )
    .map((s) => ({ module: s.name.slice(0, -'.weight'.length), out: s.shape[0], in: s.shape[1] }));
}

/** Other names a canonical module may have in another published layout of its family. */
function alternativeNames(config: ModelConfig, module: string): string[] {
  return isVlm(config) ? vlmFamilyOf(config).peft.alternativeNames(module) : [module];
}

/** The modules a PEFT target selects, in canonical names (the connector is never a LoRA target). */
export function resolveLoraModules(config: ModelConfig, target: string | string[]): LoraModule[] {
  const connector = isVlm(config) ? vlmFamilyOf(config).layout(config).projector : undefined;
  const mods = linearModules(config).filter(
    (m) =>
      !(connector && m.module.startsWith(connector)) &&
      alternativeNames(config, m.module).some((n) => matchesTarget(target, n)),
  );
  return mods.map((m) => ({
    module: m.module,
    weight: `${m.module}.weight`,
    inFeatures: m.in,
    outFeatures: m.out,
    keyA: `${PREFIX}${m.module}.lora_A.weight`,
    keyB: `${PREFIX}${m.module}.lora_B.weight`,
  }));
}

/** The projector tensors fully trained in 'projector' and 'lora+projector' modes. */
export function projectorParams(config: ModelConfig): string[] {
  if (!isVlm(config)) return [];
  const mods = vlmFamilyOf(config).peft.connectorModules;
  if (mods)
    return expectedTensors(config)
      .filter((s) => mods.some((m) => s.name.startsWith(`${m}.`)))
      .map((s) => s.name);
  const lay = weightLayout(config);
  return expectedTensors(config)
    .filter((s) => s.name.startsWith(lay.projector!))
    .map((s) => s.name);
}

/** Every module the 'projector' method saves whole (PEFT's modules_to_save). */
export function connectorModules(config: ModelConfig): string[] {
  if (!isVlm(config)) throw new PeftError(`a ${config.modelType} model has no projector`);
  const p = vlmFamilyOf(config).peft;
  return [...(p.connectorModules ?? [p.connector])];
}

/** The module the 'projector' method trains whole, as PEFT's modules_to_save names it. */
export function connectorModule(config: ModelConfig): string {
  if (!isVlm(config)) throw new PeftError(`a ${config.modelType} model has no projector`);
  return vlmFamilyOf(config).peft.connector;
}

/** adapter_config.json as PEFT writes it. */
export function adapterConfigJson(
  config: ModelConfig,
  spec: LoraSpec,
  baseModelNameOrPath = '',
): Record<string, unknown> {
  const lora = spec.mode !== 'projector';
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModelNameOrPath,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: spec.alpha,
    lora_dropout: spec.dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: spec.mode === 'lora' ? null : connectorModules(config),
    peft_type: 'LORA',
    r: spec.r,
    rank_pattern: {},
    revision: null,
    // projector-only still needs a valid LoRA config for PEFT: a target that matches nothing trainable is not
    // allowed there, so the decoder targets stay and their B matrices are zero (a no-op adapter)
    target_modules: targetModulesRegex(config, lora ? spec : { ...spec, targets: ['q_proj'], includeVision: false }),
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: spec.useRslora,
    lenslab: { mode: spec.mode, targets: spec.targets, include_vision: spec.includeVision },
  };
}

/** A loaded or trained adapter: per-module A/B matrices plus fully trained tensors (canonical names). */
export interface Adapter {
  config: ParsedAdapterConfig;
  scaling: number;
  modules: LoraModule[];
  /** module -> A [r, in] and B [out, r], row-major */
  lora: Map<string, { a: Float32Array; b: Float32Array }>;
  /** canonical tensor name -> replacement values (modules_to_save) */
  saved: Map<string, Float32Array>;
}

/** Save an adapter in PEFT format: adapter_config.json + adapter_model.safetensors (f32). */
export function saveAdapter(
  dir: string,
  config: ModelConfig,
  spec: LoraSpec,
  lora: Map<string, { a: Float32Array; b: Float32Array }>,
  saved: Map<string, Float32Array> = new Map(),
  baseModel = '',
): string[] {
  const acfg = adapterConfigJson(config, spec, baseModel);
  const parsed = parseAdapterConfig(acfg);
  const modules = resolveLoraModules(config, parsed.targetModules);
  const specs = new Map(expectedTensors(config).map((s) => [s.name, s.shape]));
  const tensors: Array<{ name: string; dtype: 'F32'; shape: number[]; data: () => Float32Array }> = [];
  for (const m of modules) {
    let ab = lora.get(m.module);
    if (!ab) {
      if (spec.mode !== 'projector') throw new PeftError(`no LoRA weights for module "${m.module}"`);
      ab = { a: new Float32Array(spec.r * m.inFeatures), b: new Float32Array(m.outFeatures * spec.r) };
    }
    if (ab.a.length !== spec.r * m.inFeatures)
      throw new PeftError(
        `module "${m.module}": lora_A has ${ab.a.length} values, expected [${spec.r}, ${m.inFeatures}]`,
      );
    if (ab.b.length !== m.outFeatures * spec.r)
      throw new PeftError(
        `module "${m.module}": lora_B has ${ab.b.length} values, expected [${m.outFeatures}, ${spec.r}]`,
      );
    const { a, b } = ab;
    tensors.push({ name: m.keyA, dtype: 'F32', shape: [spec.r, m.inFeatures], data: () => a });
    tensors.push({ name: m.keyB, dtype: 'F32', shape: [m.outFeatures, spec.r], data: () => b });
  }
  const unknown = [...lora.keys()].filter((k) => !modules.some((m) => m.module === k));
  if (unknown.length)
    throw new PeftError(
      `LoRA weights for modules the adapter config does not target: ${unknown.slice(0, 5).join(', ')}`,
    );
  if (spec.mode !== 'lora') {
    for (const name of projectorParams(config)) {
      const v = saved.get(name);
      if (!v) throw new PeftError(`mode ${spec.mode}: projector tensor "${name}" is missing`);
      const shape = specs.get(name)!;
      if (v.length !== shape.reduce((x, y) => x * y, 1))
        throw new PeftError(`projector tensor "${name}" has ${v.length} values, expected ${JSON.stringify(shape)}`);
      tensors.push({ name: PREFIX + name, dtype: 'F32', shape, data: () => v });
    }
  }
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors);
  writeJsonAtomic(join(dir, 'adapter_config.json'), acfg);
  return ['adapter_config.json', 'adapter_model.safetensors'];
}

/** Load a PEFT LoRA adapter for a base model config; every tensor is checked against the modules it adapts. */
export function loadAdapter(dir: string, config: ModelConfig): Adapter {
  const { cfgPath, wPath, config: acfg } = readAdapterFolder(dir);
  const modules = resolveLoraModules(config, acfg.targetModules);
  if (modules.length === 0)
    throw new PeftError(
      `${cfgPath}: field "target_modules": ${JSON.stringify(acfg.targetModules)} matches no linear layer of this ${config.modelType} model`,
    );
  const byModule = new Map(modules.map((m) => [m.module, m]));
  const specs = new Map(expectedTensors(config).map((s) => [s.name, s.shape]));
  const f = SafetensorsFile.open(wPath);
  try {
    const lora = new LoraPairs(acfg.r, wPath);
    const saved = new Map<string, Float32Array>();
    for (const key of f.names()) {
      if (!key.startsWith(PREFIX)) throw new PeftError(`${wPath}: tensor "${key}" does not start with "${PREFIX}"`);
      const rest = key.slice(PREFIX.length).replace(/\.default(?=\.weight$)/, '');
      const info = f.info(key);
      const m = /^(.*)\.lora_([AB])\.weight$/.exec(rest);
      if (m) {
        const canon = canonicalName(config, `${m[1]}.weight`);
        const mod = canon ? byModule.get(canon.slice(0, -'.weight'.length)) : undefined;
        if (!mod) throw new PeftError(`${wPath}: tensor "${key}" adapts a module that target_modules does not select`);
        lora.add(f, key, mod.module, m[2] as 'A' | 'B', mod.outFeatures, mod.inFeatures);
        continue;
      }
      // modules_to_save: "<module>.<param>" (PEFT strips "modules_to_save.default")
      const plain = rest.replace(/\.modules_to_save\.default\./, '.');
      const canon = canonicalName(config, plain);
      const shape = canon ? specs.get(canon) : undefined;
      if (
        !canon ||
        !shape ||
        !acfg.modulesToSave.some((mm) =>
          alternativeNames(config, canon).some((n) => n.startsWith(`${mm}.`) || n.includes(`.${mm}.`)),
        )
      )
        throw new PeftError(
          `${wPath}: unexpected tensor "${key}" (not a LoRA matrix of a targeted module, not in modules_to_save)`,
        );
      if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i]))
        throw new PeftError(
          `${wPath}: tensor "${key}" has shape ${JSON.stringify(info.shape)}, expected ${JSON.stringify(shape)}`,
        );
      saved.set(canon, f.get(key));
    }
    const missing = modules.filter((m) => !lora.complete(m.module)).map((m) => m.keyA.replace(/\.lora_A\.weight$/, ''));
    if (missing.length)
      throw new PeftError(
        `${wPath}: missing LoRA matrices for ${missing.length} targeted module(s): ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ' …' : ''}`,
      );
    return {
      config: acfg,
      scaling: loraScaling({ r: acfg.r, alpha: acfg.alpha, useRslora: acfg.useRslora }),
      modules,
      lora: lora.pairs(),
      saved,
    };
  } finally {
    f.close();
  }
}

/** W + scaling * B @ A for one module (W is [out, in] row-major). */
export function mergedWeight(
  w: Float32Array,
  a: Float32Array,
  b: Float32Array,
  out: number,
  inn: number,
  r: number,
  scaling: number,
): Float32Array {
  const res = Float32Array.from(w);
  const row = new Float64Array(inn);
  for (let o = 0; o < out; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const bk = b[o * r + k];
      if (bk === 0) continue;
      const aoff = k * inn;
      for (let i = 0; i < inn; i++) row[i] += bk * a[aoff + i];
    }
    const off = o * inn;
    for (let i = 0; i < inn; i++) res[off + i] += scaling * row[i];
  }
  return res;
}

/** Base weights with an adapter merged in, as a lazy TensorSource (save it with saveHfFolder for a new HF folder). */
export function mergeAdapter(base: TensorSource, adapter: Adapter): TensorSource {
  const byWeight = new Map(adapter.modules.map((m) => [m.weight, m]));
  return {
    names: () => base.names(),
    has: (n) => base.has(n),
    info: (n) => base.info(n),
    get: (n) => {
      const s = adapter.saved.get(n);
      if (s) return s;
      const m = byWeight.get(n);
      const w = base.get(n);
      if (!m) return w;
      const ab = adapter.lora.get(m.module)!;
      return mergedWeight(w, ab.a, ab.b, m.outFeatures, m.inFeatures, adapter.config.r, adapter.scaling);
    },
  };
}

/** A LoRA spec from a decoder-only or LLaVA config's point of view, validated. */
export function validateLoraSpec(config: VlmModelConfig | TextModelConfig, spec: LoraSpec): void {
  if (!Number.isInteger(spec.r) || spec.r < 1)
    throw new PeftError(`LoRA rank must be a positive integer, got ${spec.r}`);
  if (!(spec.dropout >= 0 && spec.dropout < 1))
    throw new PeftError(`LoRA dropout must be in [0, 1), got ${spec.dropout}`);
  for (const t of spec.targets)
    if (!(LORA_TARGETS as readonly string[]).includes(t))
      throw new PeftError(`unknown LoRA target "${t}" (known: ${LORA_TARGETS.join(', ')})`);
  if (spec.mode !== 'lora' && !isVlm(config))
    throw new PeftError(`mode ${spec.mode} needs a vision-language model (it trains the projector)`);
}

/** LoRA branches of an adapter as constants, by module. */
export function adapterBindings(g: Graph, adapter: Adapter, dtype: DType = 'float32'): Map<string, LoraBinding> {
  const m = new Map<string, LoraBinding>();
  const r = adapter.config.r;
  for (const mod of adapter.modules) {
    const ab = adapter.lora.get(mod.module);
    if (!ab) continue;
    const conv = (d: Float32Array) => (dtype === 'float64' ? Float64Array.from(d) : d);
    const a = g.initializer(`${mod.keyA}`, dtype, [r, mod.inFeatures], conv(ab.a));
    const b = g.initializer(`${mod.keyB}`, dtype, [mod.outFeatures, r], conv(ab.b));
    m.set(mod.module, { a, b, scaling: adapter.scaling });
  }
  return m;
}

// ---- adapters as graph inputs -------------------------------------------------------------------------------------

/** Graph input names of an adapter's tensors ('inputs' mode). */
export const ADAPTER_INPUT = {
  loraA: (module: string) => `adapter.${module}.lora_A`,
  loraB: (module: string) => `adapter.${module}.lora_B`,
  saved: (name: string) => `adapter.saved.${name}`,
} as const;

/** One adapter tensor to feed: its input name, dims and values (float32, row-major). */
export interface AdapterInputTensor {
  name: string;
  dims: number[];
  data: Float32Array;
}

/**
 * Every tensor of an adapter as graph input feeds: LoRA A [r, in] and B [out, r] per adapted module, each saved
 * (modules_to_save) tensor in the base tensor's shape. A graph holds only the inputs its layers read: feed the ones
 * among its input names. Throws naming the tensor when a length does not match its shape.
 */
export function adapterInputTensors(adapter: Adapter, base: TensorSource): AdapterInputTensor[] {
  const out: AdapterInputTensor[] = [];
  const r = adapter.config.r;
  const check = (name: string, dims: number[], data: Float32Array) => {
    const n = dims.reduce((a, b) => a * b, 1);
    if (data.length !== n)
      throw new Error(`adapter tensor ${name}: ${data.length} values, expected ${JSON.stringify(dims)}`);
    out.push({ name, dims, data });
  };
  for (const mod of adapter.modules) {
    const ab = adapter.lora.get(mod.module);
    if (!ab) continue;
    check(ADAPTER_INPUT.loraA(mod.module), [r, mod.inFeatures], ab.a);
    check(ADAPTER_INPUT.loraB(mod.module), [mod.outFeatures, r], ab.b);
  }
  for (const [name, data] of adapter.saved) {
    if (!base.has(name)) throw new Error(`adapter tensor ${name}: the model has no such tensor`);
    check(ADAPTER_INPUT.saved(name), base.info(name).shape, data);
  }
  return out;
}

/**
 * What an 'inputs'-mode graph depends on in an adapter: rank, scaling, the adapted modules (with their shapes) and
 * the saved tensors' names and sizes, never the values. Equal structures can share one compiled graph.
 */
export function adapterStructure(adapter: Adapter): unknown {
  const modules = adapter.modules
    .filter((m) => adapter.lora.has(m.module))
    .map((m) => [m.module, m.inFeatures, m.outFeatures]);
  modules.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const saved = [...adapter.saved]
    .map(([n, v]) => [n, v.length])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { r: adapter.config.r, scaling: adapter.scaling, modules, saved };
}

/**
 * An adapter's tensors as graph inputs (GraphWeights `lazy`), each created when a layer first reads it: the LoRA
 * branch of a module gets inputs ADAPTER_INPUT.loraA/loraB with the adapter's scaling as a constant, a saved tensor
 * gets ADAPTER_INPUT.saved and replaces the base tensor (HF layout). No dropout (inference graphs).
 */
export class AdapterInputs implements LazyTensors {
  private readonly bindings = new Map<string, LoraBinding>();
  private readonly values = new Map<string, Value>();
  private readonly modules: Map<string, Adapter['modules'][number]>;

  constructor(
    readonly g: Graph,
    readonly adapter: Adapter,
    readonly base: TensorSource,
    readonly dtype: DType = 'float32',
  ) {
    this.modules = new Map(adapter.modules.filter((m) => adapter.lora.has(m.module)).map((m) => [m.module, m]));
  }

  has(name: string): boolean {
    return this.adapter.saved.has(name);
  }

  tensor(name: string): Value | undefined {
    if (!this.adapter.saved.has(name)) return undefined;
    let v = this.values.get(name);
    if (!v)
      this.values.set(name, (v = this.g.input(ADAPTER_INPUT.saved(name), this.dtype, this.base.info(name).shape)));
    return v;
  }

  lora(module: string): LoraBinding | undefined {
    const mod = this.modules.get(module);
    if (!mod) return undefined;
    let b = this.bindings.get(module);
    if (!b) {
      const r = this.adapter.config.r;
      b = {
        a: this.g.input(ADAPTER_INPUT.loraA(module), this.dtype, [r, mod.inFeatures]),
        b: this.g.input(ADAPTER_INPUT.loraB(module), this.dtype, [mod.outFeatures, r]),
        scaling: this.adapter.scaling,
      };
      this.bindings.set(module, b);
    }
    return b;
  }
}
