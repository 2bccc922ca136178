// An audio LLM's trained values as a PEFT adapter folder (adapter_config.json + adapter_model.safetensors), as
// PEFT's save_pretrained writes it for the Ultravox module tree: LoRA matrices under
// "base_model.model.<module>.lora_A.weight" / "...lora_B.weight", the projector (modules_to_save) under
// "base_model.model.multi_modal_projector.<param>". target_modules is a regex over the decoder's layers only, so
// PEFT does not also wrap the Whisper encoder's q_proj / v_proj. Loading checks every tensor against the model.
// mergeAudioAdapter gives the base weights with W + (alpha / r) B A and the saved projector, for inference graphs.

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { HfFolderError, writeJsonAtomic } from '../hf-folder';
import { readSafetensors, writeSafetensors, type TensorSource } from '../weights/safetensors';
import { readJsonObject } from '../hf-folder';
import { ULTRAVOX_LAYOUT, type UltravoxConfig } from './ultravox';
import { buildTrainableAudioLlm, type AudioLoraOptions, type AudioTrainMethod } from './train';
import { ATTENTION_TARGETS, MLP_TARGETS } from '../../contract/hparams';

const PREFIX = 'base_model.model.';

function targetRegex(targets: readonly string[]): string {
  const attn = targets.filter((t) => (ATTENTION_TARGETS as readonly string[]).includes(t));
  const mlp = targets.filter((t) => (MLP_TARGETS as readonly string[]).includes(t));
  const alts = [
    ...(attn.length ? [`self_attn\\.(?:${attn.join('|')})`] : []),
    ...(mlp.length ? [`mlp\\.(?:${mlp.join('|')})`] : []),
  ];
  return `language_model\\.model\\.layers\\.\\d+\\.(?:${alts.join('|')})`;
}

/** Write the adapter folder; returns the files written. */
export function saveAudioAdapter(
  dir: string,
  m: { config: UltravoxConfig; weights: TensorSource },
  method: AudioTrainMethod,
  lora: AudioLoraOptions | null,
  values: Record<string, Float32Array>,
  baseModel = '',
): string[] {
  const frames = 2 * m.config.audio.maxSourcePositions;
  const t = buildTrainableAudioLlm(m, method, lora, frames);
  for (const p of t.params) {
    const v = values[p.name];
    if (!v) throw new Error(`adapter values: missing ${p.name}`);
    if (v.length !== p.shape.reduce((a, b) => a * b, 1))
      throw new Error(`adapter values: ${p.name} has ${v.length} values for shape [${p.shape}]`);
  }
  mkdirSync(dir, { recursive: true });
  writeSafetensors(
    join(dir, 'adapter_model.safetensors'),
    t.params.map((p) => ({
      name: p.name.startsWith(PREFIX) ? p.name : PREFIX + p.name,
      dtype: 'F32' as const,
      shape: [...p.shape],
      data: () => values[p.name],
    })),
  );
  writeJsonAtomic(join(dir, 'adapter_config.json'), {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: lora?.rank ?? 8,
    lora_alpha: lora?.alpha ?? 8,
    lora_dropout: 0,
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: false,
    inference_mode: true,
    target_modules: method === 'projector' ? [] : targetRegex(lora!.targetModules),
    modules_to_save: method === 'lora' ? null : ['multi_modal_projector'],
    lenslab: { mode: method, targets: lora?.targetModules ?? [] },
  });
  return ['adapter_model.safetensors', 'adapter_config.json'];
}

/** Read an adapter folder back into the training parameter names (checked against the model). */
export function loadAudioAdapter(
  dir: string,
  m: { config: UltravoxConfig; weights: TensorSource },
): { method: AudioTrainMethod; lora: AudioLoraOptions | null; values: Record<string, Float32Array> } {
  const cfgPath = join(dir, 'adapter_config.json');
  const wPath = join(dir, 'adapter_model.safetensors');
  if (!existsSync(cfgPath) || !existsSync(wPath))
    throw new HfFolderError(`${dir}: not an adapter folder (adapter_config.json and adapter_model.safetensors)`);
  const cfg = readJsonObject(cfgPath);
  if (cfg.peft_type !== 'LORA')
    throw new HfFolderError(`${cfgPath}: field "peft_type": "${String(cfg.peft_type)}" is not LORA`);
  const ll = (cfg.lenslab ?? {}) as { mode?: string; targets?: string[] };
  const tensors = readSafetensors(wPath);
  const hasProjector = [...tensors.keys()].some((k) => k.startsWith(`${PREFIX}${ULTRAVOX_LAYOUT.projector}`));
  const hasLora = [...tensors.keys()].some((k) => k.endsWith('.lora_A.weight'));
  const method = (ll.mode ?? (hasLora ? (hasProjector ? 'lora+projector' : 'lora') : 'projector')) as AudioTrainMethod;
  const targets = ll.targets ?? [
    ...new Set(
      [...tensors.keys()].map((k) => /\.(\w+_proj)\.lora_A\.weight$/.exec(k)?.[1]).filter((x): x is string => !!x),
    ),
  ];
  const r = cfg.r;
  const alpha = cfg.lora_alpha;
  if (hasLora && (typeof r !== 'number' || typeof alpha !== 'number'))
    throw new HfFolderError(`${cfgPath}: fields "r" and "lora_alpha" must be numbers`);
  const lora = method === 'projector' ? null : { rank: r as number, alpha: alpha as number, targetModules: targets };
  const t = buildTrainableAudioLlm(m, method, lora, 2 * m.config.audio.maxSourcePositions);
  const values: Record<string, Float32Array> = {};
  for (const p of t.params) {
    const key = p.name.startsWith(PREFIX) ? p.name : PREFIX + p.name;
    const ten = tensors.get(key);
    if (!ten) throw new HfFolderError(`${wPath}: missing tensor "${key}"`);
    if (ten.shape.length !== p.shape.length || ten.shape.some((d, i) => d !== p.shape[i]))
      throw new HfFolderError(
        `${wPath}: tensor "${key}" has shape ${JSON.stringify(ten.shape)}, the model needs ${JSON.stringify(p.shape)}`,
      );
    values[p.name] = ten.data;
  }
  const extra = [...tensors.keys()].filter(
    (k) => !t.params.some((p) => (p.name.startsWith(PREFIX) ? p.name : PREFIX + p.name) === k),
  );
  if (extra.length)
    throw new HfFolderError(
      `${wPath}: ${extra.length} tensor(s) this model has no place for: ${extra.slice(0, 4).join(', ')}`,
    );
  return { method, lora, values };
}

/** The base weights with the adapter merged: LoRA modules W + (alpha / r) B A, the projector replaced. */
export function mergeAudioAdapter(
  m: { config: UltravoxConfig; weights: TensorSource },
  method: AudioTrainMethod,
  lora: AudioLoraOptions | null,
  values: Record<string, Float32Array>,
): TensorSource {
  const t = buildTrainableAudioLlm(m, method, lora, 2 * m.config.audio.maxSourcePositions);
  const byWeight = new Map(t.modules.map((mod) => [`${mod.module}.weight`, mod]));
  const scaling = lora ? lora.alpha / lora.rank : 1;
  const base = m.weights;
  return {
    names: () => base.names(),
    has: (n) => base.has(n),
    info: (n) => base.info(n),
    get: (n) => {
      if (t.projector.includes(n)) return values[n];
      const mod = byWeight.get(n);
      if (!mod) return base.get(n);
      const w = Float32Array.from(base.get(n));
      const a = values[mod.keyA];
      const b = values[mod.keyB];
      const r = lora!.rank;
      const I = mod.inFeatures;
      for (let o = 0; o < mod.outFeatures; o++)
        for (let k = 0; k < r; k++) {
          const s = scaling * b[o * r + k];
          if (s === 0) continue;
          for (let i = 0; i < I; i++) w[o * I + i] += s * a[k * I + i];
        }
      return w;
    },
  };
}
