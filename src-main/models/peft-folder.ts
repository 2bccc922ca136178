// Reading a PEFT LoRA adapter folder, shared by every family's adapter loader: adapter_config.json checked as PEFT's
// LoraConfig reads it (defaults r 8, lora_alpha 8; the variants these models cannot run, DoRA, biases, per-module ranks,
// refused by field, so such an adapter is never run as a plain LoRA), the weights as safetensors only, and the LoRA
// A / B matrices gathered by module with their shapes checked against the layer each adapts.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SafetensorsFile } from './weights/safetensors';

export class PeftError extends Error {}

/** Words an error in the caller's class (each family has its own adapter error). */
export type Fail = (message: string) => Error;
const peftError: Fail = (m) => new PeftError(m);

/** PEFT's scaling of B @ A: alpha / r, or alpha / sqrt(r) with rsLoRA. */
export function loraScaling(spec: { r: number; alpha: number; useRslora: boolean }): number {
  return spec.useRslora ? spec.alpha / Math.sqrt(spec.r) : spec.alpha / spec.r;
}

export interface ParsedAdapterConfig {
  r: number;
  alpha: number;
  dropout: number;
  useRslora: boolean;
  targetModules: string | string[];
  modulesToSave: string[];
  raw: Record<string, unknown>;
}

export function parseAdapterConfig(json: unknown, file = 'adapter_config.json'): ParsedAdapterConfig {
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new PeftError(`${file}: not a JSON object`);
  const o = json as Record<string, unknown>;
  const err = (f: string, m: string): never => {
    throw new PeftError(`${file}: field "${f}": ${m}`);
  };
  if ((o.peft_type ?? 'LORA') !== 'LORA')
    err('peft_type', `only LORA adapters are supported, got ${JSON.stringify(o.peft_type)}`);
  const r = o.r ?? 8;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1)
    err('r', `must be a positive integer, got ${JSON.stringify(r)}`);
  const alpha = o.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha))
    err('lora_alpha', `must be a number, got ${JSON.stringify(alpha)}`);
  const dropout = o.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || dropout < 0 || dropout >= 1)
    err('lora_dropout', `must be in [0, 1), got ${JSON.stringify(dropout)}`);
  const tm = o.target_modules;
  if (!(typeof tm === 'string' || (Array.isArray(tm) && tm.every((x) => typeof x === 'string'))))
    err('target_modules', `must be a regex string or a list of names, got ${JSON.stringify(tm)}`);
  if (o.use_dora === true) err('use_dora', 'DoRA adapters are not supported');
  if ((o.bias ?? 'none') !== 'none') err('bias', `only "none" is supported, got ${JSON.stringify(o.bias)}`);
  if (o.fan_in_fan_out === true)
    err('fan_in_fan_out', 'is only used by GPT-2 style Conv1D layers, which these models do not have');
  for (const f of ['rank_pattern', 'alpha_pattern'])
    if (o[f] && typeof o[f] === 'object' && Object.keys(o[f] as object).length > 0)
      err(f, 'per-module ranks/alphas are not supported');
  if (o.layers_to_transform !== undefined && o.layers_to_transform !== null)
    err('layers_to_transform', 'is not supported');
  const mts = o.modules_to_save ?? [];
  if (!Array.isArray(mts) || !mts.every((x) => typeof x === 'string'))
    err('modules_to_save', `must be a list of names, got ${JSON.stringify(mts)}`);
  const useRslora = o.use_rslora === true;
  return {
    r: r as number,
    alpha: alpha as number,
    dropout: dropout as number,
    useRslora,
    targetModules: tm as string | string[],
    modulesToSave: mts as string[],
    raw: o,
  };
}

/**
 * adapter_config.json and adapter_model.safetensors of `dir`: the config parsed (parseAdapterConfig), and the weights'
 * path; a folder with only PyTorch pickle weights is refused (unpickling can run code).
 */
export function readAdapterFolder(
  dir: string,
  fail: Fail = peftError,
): { cfgPath: string; wPath: string; config: ParsedAdapterConfig } {
  const cfgPath = join(dir, 'adapter_config.json');
  if (!existsSync(cfgPath)) throw fail(`${dir}: no adapter_config.json`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(cfgPath, 'utf8'));
  } catch (e) {
    throw fail(`${cfgPath}: not valid JSON (${(e as Error).message})`);
  }
  let config: ParsedAdapterConfig;
  try {
    config = parseAdapterConfig(json, cfgPath);
  } catch (e) {
    throw e instanceof PeftError ? fail(e.message) : e;
  }
  const wPath = join(dir, 'adapter_model.safetensors');
  if (!existsSync(wPath)) {
    if (existsSync(join(dir, 'adapter_model.bin')))
      throw fail(
        `${join(dir, 'adapter_model.bin')}: PyTorch pickle weights are not loaded (they can run code); save the adapter as safetensors`,
      );
    throw fail(`${dir}: no adapter_model.safetensors`);
  }
  return { cfgPath, wPath, config };
}

/** LoRA matrices of an adapter file gathered by module: A must be [r, in] and B [out, r]. */
export class LoraPairs {
  private readonly map = new Map<string, { a?: Float32Array; b?: Float32Array }>();
  constructor(
    private readonly r: number,
    private readonly wPath: string,
    private readonly fail: Fail = peftError,
  ) {}

  /** Tensor `key` of `f` as `module`'s lora_A or lora_B, for a layer of `out` x `inn`. */
  add(f: SafetensorsFile, key: string, module: string, which: 'A' | 'B', out: number, inn: number): void {
    const shape = f.info(key).shape;
    const want = which === 'A' ? [this.r, inn] : [out, this.r];
    if (shape.length !== 2 || shape[0] !== want[0] || shape[1] !== want[1])
      throw this.fail(
        `${this.wPath}: tensor "${key}" has shape ${JSON.stringify(shape)}, expected ${JSON.stringify(want)} (r = ${this.r})`,
      );
    const e = this.map.get(module) ?? {};
    if (which === 'A') e.a = f.get(key);
    else e.b = f.get(key);
    this.map.set(module, e);
  }

  /** Whether `module` has both matrices. */
  complete(module: string): boolean {
    const e = this.map.get(module);
    return !!e?.a && !!e?.b;
  }

  /** Every module's pair; a module with only one of lora_A / lora_B is refused. */
  pairs(): Map<string, { a: Float32Array; b: Float32Array }> {
    const out = new Map<string, { a: Float32Array; b: Float32Array }>();
    for (const [module, e] of this.map) {
      if (!e.a || !e.b) throw this.fail(`${this.wPath}: module "${module}" has only one of lora_A / lora_B`);
      out.set(module, { a: e.a, b: e.b });
    }
    return out;
  }
}
