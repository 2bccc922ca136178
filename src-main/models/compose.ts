// "LLaVA on a budget": compose a vision-language model from a CLIP/SigLIP folder, a LLaMA/Qwen2 folder and a new,
// randomly initialized projector, saved as a classic LLaVA-layout Hugging Face folder.
//
// The LLM's tokenizer gets the image token as a new special token when it lacks one; if that id is past the
// config's vocab_size, embed_tokens (and an untied lm_head) grow by the needed rows, initialized to the mean of
// the existing rows (transformers' resize_token_embeddings(mean_resizing=True) does the same).
import { join } from 'node:path';
import { llavaToHf, parseHfConfig, type Activation, type LlavaModelConfig } from './config';
import { loadHfFolder, saveHfFolder, HfFolderError, type HfModel } from './hf-folder';
import { expectedTensors, projectorTensors, weightLayout } from './weights/names';
import type { TensorSource } from './weights/safetensors';
import type { FloatDtype } from './weights/dtype';
import { demoRng } from './demo/rng';

export interface ComposeOptions {
  /** CLIP / SigLIP folder (model_type clip, clip_vision_model, siglip or siglip_vision_model) */
  visionDir: string;
  /** LLaMA / Qwen2 folder */
  textDir: string;
  outDir: string;
  projectorType?: 'mlp' | 'linear';
  projectorHiddenAct?: Activation;
  projectorBias?: boolean;
  visionFeatureLayer?: number | number[];
  /** default 'default' for CLIP (drops the class token), 'full' for SigLIP (it has none) */
  visionFeatureSelectStrategy?: 'default' | 'full';
  imageToken?: string;
  /** projector init: weights ~ N(0, initStd), biases 0 */
  seed?: number;
  initStd?: number;
  dtype?: FloatDtype;
  maxShardBytes?: number;
}

export interface ComposeResult {
  config: LlavaModelConfig;
  imageTokenId: number;
  /** true when the image token was added to the tokenizer */
  addedImageToken: boolean;
  files: string[];
}

function addImageToken(
  text: HfModel,
  token: string,
): { tokenizer: Record<string, unknown>; tokenizerConfig: Record<string, unknown>; id: number; added: boolean } {
  const tk = text.tokenizer!;
  const tokenizer = structuredClone(text.json.tokenizer!);
  const tokenizerConfig = structuredClone(text.json.tokenizerConfig ?? {});
  const existing = tk.tokenToId(token);
  if (existing !== undefined) return { tokenizer, tokenizerConfig, id: existing, added: false };
  const id = tk.vocabSize;
  const entry = {
    id,
    content: token,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  };
  tokenizer.added_tokens = [...((tokenizer.added_tokens as unknown[]) ?? []), entry];
  const dec = (tokenizerConfig.added_tokens_decoder as Record<string, unknown>) ?? {};
  dec[String(id)] = {
    content: token,
    lstrip: false,
    normalized: false,
    rstrip: false,
    single_word: false,
    special: true,
  };
  tokenizerConfig.added_tokens_decoder = dec;
  const extra = Array.isArray(tokenizerConfig.additional_special_tokens)
    ? (tokenizerConfig.additional_special_tokens as unknown[])
    : [];
  tokenizerConfig.additional_special_tokens = [...extra, token];
  tokenizerConfig.image_token = token;
  return { tokenizer, tokenizerConfig, id, added: true };
}

export function composeLlava(opts: ComposeOptions): ComposeResult {
  const vision = loadHfFolder(opts.visionDir, { tokenizer: false, preprocessor: false });
  let text: HfModel | null = null;
  try {
    if (vision.config.kind !== 'vision')
      throw new HfFolderError(
        `${join(opts.visionDir, 'config.json')}: field "model_type": "${vision.config.modelType}" is not a vision tower (clip, clip_vision_model, siglip, siglip_vision_model)`,
      );
    if (!vision.json.preprocessorConfig)
      throw new HfFolderError(
        `${opts.visionDir}: no preprocessor_config.json (the vision tower's image preprocessing)`,
      );
    text = loadHfFolder(opts.textDir, { tokenizer: false, preprocessor: false });
    if (text.config.kind !== 'text')
      throw new HfFolderError(
        `${join(opts.textDir, 'config.json')}: field "model_type": "${text.config.modelType}" is not a language model (llama, qwen2)`,
      );
    // a LLaVA's decoder is LLaMA-style (language_model.model.layers.*); OPT is BLIP-2's decoder, not LLaVA's
    if (text.config.text.modelType === 'opt')
      throw new HfFolderError(
        `${join(opts.textDir, 'config.json')}: field "model_type": "opt" cannot be composed into a LLaVA (llama, qwen2)`,
      );
    if (!text.tokenizer) throw new HfFolderError(`${opts.textDir}: no tokenizer.json`);
    const v = vision.config.vision;
    const t = text.config.text;
    const tok = addImageToken(text, opts.imageToken ?? '<image>');
    const vocabSize = Math.max(t.vocabSize, tok.id + 1);
    const grow = vocabSize - t.vocabSize;
    const json = llavaToHf({
      vision: v,
      text: { ...t, vocabSize },
      projectorType: opts.projectorType,
      projectorHiddenAct: opts.projectorHiddenAct,
      projectorBias: opts.projectorBias,
      imageTokenIndex: tok.id,
      visionFeatureLayer: opts.visionFeatureLayer ?? -2,
      visionFeatureSelectStrategy: opts.visionFeatureSelectStrategy ?? (v.classToken ? 'default' : 'full'),
    });
    const config = parseHfConfig(json, join(opts.outDir, 'config.json')) as LlavaModelConfig;
    const lay = weightLayout(config);
    const vlay = weightLayout(vision.config);
    const tlay = weightLayout(text.config);

    // projector: fresh weights
    const rng = demoRng(opts.seed ?? 0);
    const std = opts.initStd ?? 0.02;
    const projector = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const s of projectorTensors(config.projector, lay.projector!)) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      if (s.name.endsWith('.weight')) for (let i = 0; i < n; i++) data[i] = std * rng.normal();
      projector.set(s.name, { shape: s.shape, data });
    }
    const textW = text.weights;
    const visionW = vision.weights;
    const source = (name: string): { src: TensorSource; name: string; grow: boolean } | null => {
      if (name.startsWith(lay.vision!))
        return { src: visionW, name: vlay.vision + name.slice(lay.vision!.length), grow: false };
      if (name === lay.lmHead) return { src: textW, name: tlay.lmHead!, grow: true };
      if (name.startsWith(lay.decoder!)) {
        const inner = name.slice(lay.decoder!.length);
        return { src: textW, name: tlay.decoder + inner, grow: inner === 'embed_tokens.weight' };
      }
      return null;
    };
    const names = expectedTensors(config)
      .map((s) => s.name)
      .filter((n) => projector.has(n) || (source(n) !== null && source(n)!.src.has(source(n)!.name)));
    const weights: TensorSource = {
      names: () => names,
      has: (n) => names.includes(n),
      info: (n) => {
        const p = projector.get(n);
        if (p) return { dtype: 'F32', shape: p.shape };
        const s = source(n)!;
        const i = s.src.info(s.name);
        return { dtype: i.dtype, shape: s.grow ? [i.shape[0] + grow, ...i.shape.slice(1)] : i.shape };
      },
      get: (n) => {
        const p = projector.get(n);
        if (p) return p.data;
        const s = source(n)!;
        const d = s.src.get(s.name);
        if (!s.grow || grow === 0) return d;
        const shape = s.src.info(s.name).shape;
        const [rows, cols] = shape;
        const out = new Float32Array((rows + grow) * cols);
        out.set(d);
        const mean = new Float64Array(cols);
        for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) mean[c] += d[r * cols + c];
        for (let g = 0; g < grow; g++) for (let c = 0; c < cols; c++) out[(rows + g) * cols + c] = mean[c] / rows;
        return out;
      },
    };
    const files = saveHfFolder(opts.outDir, {
      config: json,
      weights,
      dtype: opts.dtype,
      tokenizer: tok.tokenizer,
      tokenizerConfig: tok.tokenizerConfig,
      preprocessorConfig: vision.json.preprocessorConfig,
      generationConfig: text.json.generationConfig,
      chatTemplateJinja: text.json.chatTemplateJinja,
      maxShardBytes: opts.maxShardBytes,
    });
    return { config, imageTokenId: tok.id, addedImageToken: tok.added, files };
  } finally {
    vision.close();
    text?.close();
  }
}
