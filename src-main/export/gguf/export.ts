// Export a Hugging Face folder (LLaVA, SmolVLM / Idefics3, or a LLaMA / Qwen2 text model), optionally with a PEFT adapter merged in,
// as GGUF files llama.cpp, Ollama and LM Studio load:
//   <name>-<quant>.gguf          the decoder: architecture "llama" or "qwen2", tensor names and metadata as
//                                llama.cpp's convert_hf_to_gguf.py writes them (LLaMA's q/k rows permuted for
//                                ggml's interleaved RoPE), tokenizer.ggml.* from tokenizer.json, the chat template
//   mmproj-<name>-<quant>.gguf   a vision-language model's vision side, as its family writes it (families/*/gguf.ts;
//                                LLaVA: projector "mlp"; Idefics3: projector "idefics3")
//   Modelfile                    for `ollama create NAME -f Modelfile`
// The folder is written under a temporary name and renamed into place; an existing folder is replaced only when
// asked and only if it holds nothing but an earlier GGUF export.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { loadHfFolder, type HfModel } from '../../models/hf-folder';
import { loadAdapter, mergeAdapter } from '../../models/peft';
import { isVlm, type TextConfig, type VlmModelConfig } from '../../models/config';
import { vlmFamilyOf } from '../../models/registry';
import type { VlmGgufExport } from '../../models/families/types';
import type { TensorSource } from '../../models/weights/safetensors';
import { LlamaFileType, ggufWeightType, type GgufQuant } from './format';
import { tokenizerMetadata } from './tokenizer-meta';
import { writeGguf, type GgufTensorPlan, type GgufValue, type GgufWriteReport } from './writer';
import { ollamaModelfile } from './modelfile';

export { GGUF_QUANTS, type GgufQuant } from './format';

export class GgufExportError extends Error {
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export interface GgufExportOptions {
  modelDir: string;
  /** a PEFT adapter folder to merge into the weights first */
  adapterDir?: string;
  outDir: string;
  quant: GgufQuant;
  /** the model's name inside the files and in the file names (default: the model folder's name) */
  name?: string;
  /** replace an earlier GGUF export in outDir (anything else there is refused by name) */
  overwrite?: boolean;
  onProgress?: (p: { file: string; tensor: number; tensors: number }) => void;
}

export interface GgufExportReport {
  dir: string;
  quant: GgufQuant;
  model: GgufWriteReport & { file: string };
  mmproj: (GgufWriteReport & { file: string }) | null;
  modelfile: string;
  /** what llama.cpp will compute differently from Lenslab with these files (its known bugs), in words */
  notes: string[];
}

/** Files an export writes; a folder with anything else in it is not an earlier export. */
const EXPORT_FILE = /^(.*\.gguf|Modelfile)$/;

function checkOutDir(dir: string, overwrite: boolean | undefined): void {
  if (!existsSync(dir)) return;
  if (!statSync(dir).isDirectory()) throw new GgufExportError(`${dir} is a file, not a folder`, 'dir');
  const entries = readdirSync(dir);
  if (entries.length === 0) return;
  if (!overwrite) throw new GgufExportError(`${dir}: folder is not empty (choose another or allow overwriting)`, 'dir');
  const foreign = entries.find((e) => !EXPORT_FILE.test(e) || !statSync(join(dir, e)).isFile());
  if (foreign)
    throw new GgufExportError(
      `${dir}: will not overwrite a folder that is not a GGUF export (it holds ${foreign}); choose an empty folder`,
      'dir',
    );
}

function slug(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 60) || 'model'
  );
}

/** The family's writer of the vision side (mmproj), if it has one. */
function visionExport(c: VlmModelConfig): VlmGgufExport<VlmModelConfig> | undefined {
  return vlmFamilyOf(c).gguf;
}

/** What llama.cpp cannot represent of a config, as one error naming the family, the field and the reason. */
export function checkGgufSupport(m: HfModel): void {
  const c = m.config;
  const vlm = isVlm(c) ? c : null;
  const fam = vlm ? `${vlm.kind} (${vlm.vision.modelType} + ${vlm.text.modelType})` : c.modelType;
  const no = (field: string, why: string): never => {
    throw new GgufExportError(`GGUF export does not support this ${fam} model: config.json ${field} ${why}`, 'model');
  };
  if (c.kind === 'vision')
    return no(
      'model_type',
      `is ${c.modelType}: a vision tower alone is not a model llama.cpp can chat with (export a LLaVA or a text model)`,
    );
  const t: TextConfig = c.text;
  if (t.hiddenAct !== 'silu' && t.hiddenAct !== 'swish')
    no(`${vlm ? 'text_config.' : ''}hidden_act`, `is ${t.hiddenAct}; llama.cpp's llama/qwen2 use SiLU`);
  if (t.modelType === 'qwen2' && (t.oBias || t.mlpBias))
    no('text_config', 'has o_proj or MLP biases, which qwen2 in llama.cpp has no tensors for');
  if (!m.tokenizer) no('tokenizer.json', 'is missing');
  if (!vlm) return;
  // a decoder without its vision side would chat blind: a family without an mmproj writer is refused whole
  const g = visionExport(vlm);
  if (!g)
    no('model_type', `is ${vlm.modelType}: Lenslab cannot write this family's vision side (mmproj) for llama.cpp yet`);
  g!.check(vlm, no);
  if (!m.images) no('preprocessor_config.json', 'is missing (image mean and std)');
}

/** LLaMA's q/k rows permuted from HF's rotate-half order to ggml's interleaved RoPE (convert_hf_to_gguf permute). */
export function permuteRope(w: Float32Array, nHead: number, rows: number, cols: number): Float32Array {
  const half = rows / nHead / 2;
  const out = new Float32Array(w.length);
  // reshape(n_head, 2, half, cols).swapaxes(1, 2): out[h][i][j] = in[h][j][i]
  for (let h = 0; h < nHead; h++)
    for (let i = 0; i < half; i++)
      for (let j = 0; j < 2; j++) {
        const src = ((h * 2 + j) * half + i) * cols;
        const dst = ((h * half + i) * 2 + j) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
  return out;
}

/** llama3 RoPE frequency factors (rope_freqs.weight), as the converter computes them. */
export function llama3RopeFactors(t: TextConfig): Float32Array {
  const dim = t.headDim;
  const factor = t.rope.factor;
  const low = t.rope.lowFreqFactor ?? 1;
  const high = t.rope.highFreqFactor ?? 4;
  const old = t.rope.originalMaxPositionEmbeddings ?? 8192;
  const lowWave = old / low;
  const highWave = old / high;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const freq = Math.fround(1 / Math.fround(t.rope.theta ** Math.fround((2 * i) / dim)));
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWave) out[i] = 1;
    else if (wavelen > lowWave) out[i] = factor;
    else {
      const smooth = (old / wavelen - low) / (high - low);
      out[i] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return out;
}

function decoderPlan(
  c: { text: TextConfig },
  decPrefix: string,
  lmHead: string,
  w: TensorSource,
  quant: GgufQuant,
): GgufTensorPlan[] {
  const t = c.text;
  const plans: GgufTensorPlan[] = [];
  const add = (name: string, src: string, opts: { output?: boolean; permuteHeads?: number } = {}) => {
    const shape = w.info(src).shape;
    const type = ggufWeightType(quant, shape, opts);
    const read = opts.permuteHeads
      ? () => permuteRope(w.get(src), opts.permuteHeads!, shape[0], shape.length === 2 ? shape[1] : 1)
      : () => w.get(src);
    plans.push({ name, shape, type, read });
  };
  const llama = t.modelType === 'llama';
  add('token_embd.weight', `${decPrefix}embed_tokens.weight`, { output: t.tieWordEmbeddings });
  if (t.rope.type === 'llama3') {
    const f = llama3RopeFactors(t);
    plans.push({ name: 'rope_freqs.weight', shape: [f.length], type: 'F32', read: () => f });
  }
  for (let l = 0; l < t.numHiddenLayers; l++) {
    const L = `${decPrefix}layers.${l}.`;
    const B = `blk.${l}.`;
    add(`${B}attn_norm.weight`, `${L}input_layernorm.weight`);
    for (const [g, hf, heads] of [
      ['attn_q', 'q_proj', t.numAttentionHeads],
      ['attn_k', 'k_proj', t.numKeyValueHeads],
      ['attn_v', 'v_proj', 0],
    ] as const) {
      add(`${B}${g}.weight`, `${L}self_attn.${hf}.weight`, { permuteHeads: llama && heads ? heads : undefined });
      if (t.qkvBias)
        add(`${B}${g}.bias`, `${L}self_attn.${hf}.bias`, { permuteHeads: llama && heads ? heads : undefined });
    }
    add(`${B}attn_output.weight`, `${L}self_attn.o_proj.weight`);
    if (t.oBias) add(`${B}attn_output.bias`, `${L}self_attn.o_proj.bias`);
    add(`${B}ffn_norm.weight`, `${L}post_attention_layernorm.weight`);
    for (const [g, hf] of [
      ['ffn_gate', 'gate_proj'],
      ['ffn_up', 'up_proj'],
      ['ffn_down', 'down_proj'],
    ] as const) {
      add(`${B}${g}.weight`, `${L}mlp.${hf}.weight`);
      if (t.mlpBias) add(`${B}${g}.bias`, `${L}mlp.${hf}.bias`);
    }
  }
  add('output_norm.weight', `${decPrefix}norm.weight`);
  if (!t.tieWordEmbeddings) add('output.weight', lmHead, { output: true });
  return plans;
}

function decoderKv(
  m: HfModel,
  t: TextConfig,
  name: string,
  quant: GgufQuant,
  fileType: number,
): Map<string, GgufValue> {
  const arch = t.modelType;
  const kv = new Map<string, GgufValue>();
  kv.set('general.architecture', { type: 'string', value: arch });
  kv.set('general.type', { type: 'string', value: 'model' });
  kv.set('general.name', { type: 'string', value: name });
  kv.set('general.file_type', { type: 'u32', value: fileType });
  kv.set('general.quantization_version', { type: 'u32', value: 2 });
  kv.set(`${arch}.context_length`, { type: 'u32', value: t.maxPositionEmbeddings });
  kv.set(`${arch}.embedding_length`, { type: 'u32', value: t.hiddenSize });
  kv.set(`${arch}.block_count`, { type: 'u32', value: t.numHiddenLayers });
  kv.set(`${arch}.feed_forward_length`, { type: 'u32', value: t.intermediateSize });
  kv.set(`${arch}.attention.head_count`, { type: 'u32', value: t.numAttentionHeads });
  kv.set(`${arch}.attention.head_count_kv`, { type: 'u32', value: t.numKeyValueHeads });
  kv.set(`${arch}.attention.key_length`, { type: 'u32', value: t.headDim });
  kv.set(`${arch}.attention.value_length`, { type: 'u32', value: t.headDim });
  kv.set(`${arch}.rope.dimension_count`, { type: 'u32', value: t.headDim });
  kv.set(`${arch}.rope.freq_base`, { type: 'f32', value: t.rope.theta });
  if (t.rope.type === 'linear') {
    kv.set(`${arch}.rope.scaling.type`, { type: 'string', value: 'linear' });
    kv.set(`${arch}.rope.scaling.factor`, { type: 'f32', value: t.rope.factor });
  }
  kv.set(`${arch}.attention.layer_norm_rms_epsilon`, { type: 'f32', value: t.rmsNormEps });
  kv.set(`${arch}.vocab_size`, { type: 'u32', value: t.vocabSize });
  void quant;
  for (const [k, v] of tokenizerMetadata(m.tokenizer!, t.vocabSize, m.chatTemplate?.source ?? null)) kv.set(k, v);
  return kv;
}

/** Export a model folder (plus an optional adapter merged in) as GGUF files and an Ollama Modelfile. */
export function exportGguf(o: GgufExportOptions): GgufExportReport {
  const dir = resolve(o.outDir);
  checkOutDir(dir, o.overwrite);
  let m: HfModel;
  try {
    m = loadHfFolder(resolve(o.modelDir));
  } catch (e) {
    throw new GgufExportError((e as Error).message, 'model');
  }
  try {
    checkGgufSupport(m);
    const c = m.config as Exclude<typeof m.config, { kind: 'vision' }>;
    let weights: TensorSource = m.weights;
    if (o.adapterDir) {
      try {
        weights = mergeAdapter(m.weights, loadAdapter(resolve(o.adapterDir), c));
      } catch (e) {
        throw new GgufExportError((e as Error).message, 'adapter');
      }
    }
    const name = o.name ?? basename(resolve(o.adapterDir ?? o.modelDir));
    const base = slug(name);
    const tmp = join(dirname(dir), `.${basename(dir)}.gguf-export-${process.pid}-${Date.now()}`);
    mkdirSync(tmp, { recursive: true });
    try {
      const fileType =
        LlamaFileType[o.quant === 'f32' ? 'F32' : o.quant === 'f16' ? 'F16' : o.quant === 'q8_0' ? 'Q8_0' : 'Q4_0'];
      const modelFile = `${base}-${o.quant}.gguf`;
      const decPrefix = m.layout.decoder!;
      const model = {
        file: modelFile,
        ...writeGguf(
          join(tmp, modelFile),
          decoderKv(m, c.text, name, o.quant, fileType),
          decoderPlan(c, decPrefix, m.layout.lmHead!, weights, o.quant),
          (i, n) => o.onProgress?.({ file: modelFile, tensor: i, tensors: n }),
        ),
      };
      let mmproj: GgufExportReport['mmproj'] = null;
      const notes: string[] = [];
      if (isVlm(c)) {
        const g = visionExport(c)!;
        const f = `mmproj-${base}-${o.quant === 'q4_0' ? 'q8_0' : o.quant}.gguf`;
        mmproj = {
          file: f,
          ...writeGguf(join(tmp, f), g.kv(c, m.images!, name, o.quant), g.tensors(c, weights, o.quant), (i, n) =>
            o.onProgress?.({ file: f, tensor: i, tensors: n }),
          ),
        };
        notes.push(...(g.notes?.(c) ?? []));
      }
      writeFileSync(
        join(tmp, 'Modelfile'),
        ollamaModelfile({
          model: modelFile,
          mmproj: mmproj?.file ?? null,
          template: m.chatTemplate,
          tokenizer: m.tokenizer!,
        }),
      );
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
      mkdirSync(dirname(dir), { recursive: true });
      renameSync(tmp, dir);
      const fix = <T extends { path: string; file: string }>(r: T): T => ({ ...r, path: join(dir, r.file) });
      return {
        dir,
        quant: o.quant,
        model: fix(model),
        mmproj: mmproj && fix(mmproj),
        modelfile: join(dir, 'Modelfile'),
        notes,
      };
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  } finally {
    m.close();
  }
}
