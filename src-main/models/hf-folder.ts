// Hugging Face model folders, read exactly as published and written back in the classic layout.
//
// loadHfFolder(dir) reads config.json, the weights (model.safetensors or the sharded index), tokenizer.json +
// tokenizer_config.json, the chat template and preprocessor_config.json, and checks every tensor the config
// implies against the files: a missing tensor, a wrong shape, or a tensor the config does not explain is an
// error naming the file and the tensor. Weights stay on disk and are read one tensor at a time.
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, isVlm, parseHfConfig, type ModelConfig } from './config';
import type { FamilyImageProcessor } from './families/types';
import { vlmFamilyOf } from './registry';
import { writeTextAtomic } from '../util/atomic-write';
import {
  ShardedSafetensors,
  SafetensorsError,
  writeWeightsFolder,
  type TensorInfo,
  type TensorSource,
  type TensorToWrite,
} from './weights/safetensors';
import { isFloatDtype, type Dtype, type FloatDtype } from './weights/dtype';
import { canonicalName, expectedTensors, weightLayout, type TensorSpec, type WeightLayout } from './weights/names';
import { LensTokenizer, TokenizerError } from './tokenizer';
import { ChatTemplate, findChatTemplate } from './chat-template';
import { ImageProcessor, PreprocessorError, parsePreprocessorConfig } from './image-processor';

export class HfFolderError extends Error {}

/** The weights of a loaded folder under canonical names, read lazily from the safetensors files. */
export class HfWeights implements TensorSource {
  /** canonical name -> name stored in the file */
  private stored = new Map<string, string>();
  readonly specs: Map<string, TensorSpec>;
  constructor(
    readonly files: ShardedSafetensors,
    stored: Map<string, string>,
    specs: TensorSpec[],
  ) {
    this.stored = stored;
    this.specs = new Map(specs.filter((s) => stored.has(s.name)).map((s) => [s.name, s]));
  }
  names(): string[] {
    return [...this.specs.keys()];
  }
  has(name: string): boolean {
    return this.specs.has(name);
  }
  /** dtype and shape as stored, plus the file the tensor is in */
  info(name: string): TensorInfo & { file: string } {
    const s = this.stored.get(name);
    if (s === undefined) throw new HfFolderError(`no tensor "${name}" in this model`);
    const f = this.files.fileOf(s);
    return { ...f.info(s), file: f.path };
  }
  get(name: string): Float32Array {
    const s = this.stored.get(name);
    if (s === undefined) throw new HfFolderError(`no tensor "${name}" in this model`);
    return this.files.get(s);
  }
  getRange(name: string, start: number, count: number): Float32Array {
    const s = this.stored.get(name);
    if (s === undefined) throw new HfFolderError(`no tensor "${name}" in this model`);
    return this.files.getRange(s, start, count);
  }
  /** the name under which the tensor is stored in the file (differs for transformers >= 4.52 LLaVA layouts) */
  storedName(name: string): string | undefined {
    return this.stored.get(name);
  }
  close(): void {
    this.files.close();
  }
}

export interface HfModel {
  dir: string;
  config: ModelConfig;
  layout: WeightLayout;
  weights: HfWeights;
  tokenizer: LensTokenizer | null;
  chatTemplate: ChatTemplate | null;
  /** the CLIP / SigLIP one-frame processor (LLaVA, vision towers); null where the family has its own (Idefics3) */
  imageProcessor: ImageProcessor | null;
  /** a vision-language model's processor, as its family defines it (frames, tiles, token grid) */
  images: FamilyImageProcessor | null;
  /** the JSON files as read, for saving back unchanged */
  json: {
    config: Record<string, unknown>;
    tokenizer?: Record<string, unknown>;
    tokenizerConfig?: Record<string, unknown>;
    preprocessorConfig?: Record<string, unknown>;
    processorConfig?: Record<string, unknown>;
    generationConfig?: Record<string, unknown>;
    chatTemplateJinja?: string;
  };
  close(): void;
}

export interface LoadOptions {
  /** require tokenizer.json (default: true for llava and text models) */
  tokenizer?: boolean;
  /** require preprocessor_config.json (default: true for llava and vision models) */
  preprocessor?: boolean;
}

/**
 * A JSON object from a regular file (a FIFO or device would block the read, or never end). Errors name the file;
 * `toError` gives them the caller's error class.
 */
export function readJsonObject(
  path: string,
  toError: (message: string) => Error = (m) => new HfFolderError(m),
): Record<string, unknown> {
  let text: string;
  try {
    if (!statSync(path).isFile()) throw Object.assign(new Error('not a regular file'), { code: 'not a regular file' });
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw toError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw toError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (!j || typeof j !== 'object' || Array.isArray(j)) throw toError(`${path}: not valid JSON (not a JSON object)`);
  return j as Record<string, unknown>;
}

function listNames(names: string[], max = 8): string {
  return names.slice(0, max).join(', ') + (names.length > max ? ` and ${names.length - max} more` : '');
}

/** Map stored names to canonical ones and check them against the expected tensors. */
export function checkWeights(config: ModelConfig, files: ShardedSafetensors, where: string): HfWeights {
  const specs = expectedTensors(config);
  const bySpec = new Map(specs.map((s) => [s.name, s]));
  const stored = new Map<string, string>();
  const extra: string[] = [];
  for (const name of files.names()) {
    const canon = canonicalName(config, name);
    if (canon === null) continue;
    const spec = bySpec.get(canon);
    if (!spec) {
      extra.push(name);
      continue;
    }
    const prev = stored.get(canon);
    if (prev !== undefined) throw new HfFolderError(`${where}: tensors "${prev}" and "${name}" both map to "${canon}"`);
    const info = files.info(name);
    const file = files.fileOf(name).path;
    if (!isFloatDtype(info.dtype))
      throw new HfFolderError(`${file}: tensor "${name}" has dtype ${info.dtype}; expected F32, F16 or BF16`);
    if (info.shape.length !== spec.shape.length || info.shape.some((d, i) => d !== spec.shape[i]))
      throw new HfFolderError(
        `${file}: tensor "${name}" has shape ${JSON.stringify(info.shape)}, expected ${JSON.stringify(spec.shape)} from config.json`,
      );
    stored.set(canon, name);
  }
  const missing = specs.filter((s) => !s.optional && !stored.has(s.name)).map((s) => s.name);
  if (missing.length > 0)
    throw new HfFolderError(
      `${where}: missing ${missing.length} tensor(s) that config.json requires: ${listNames(missing)}`,
    );
  if (extra.length > 0)
    throw new HfFolderError(
      `${where}: ${extra.length} unexpected tensor(s) that config.json does not explain: ${listNames(extra)}`,
    );
  return new HfWeights(files, stored, specs);
}

/** Open a Hugging Face folder. Call close() on the result to release the weight files. */
export function loadHfFolder(dir: string, opts: LoadOptions = {}): HfModel {
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new HfFolderError(`${dir}: no config.json`);
  const configJson = readJsonObject(configPath);
  const config = parseHfConfig(configJson, configPath);

  if (!existsSync(join(dir, 'model.safetensors')) && !existsSync(join(dir, 'model.safetensors.index.json'))) {
    const pickle = ['pytorch_model.bin', 'pytorch_model.bin.index.json'].find((f) => existsSync(join(dir, f)));
    if (pickle)
      throw new HfFolderError(
        `${join(dir, pickle)}: PyTorch pickle weights are not loaded (they can run code); convert the model to safetensors`,
      );
    throw new HfFolderError(`${dir}: no model.safetensors or model.safetensors.index.json`);
  }
  const files = ShardedSafetensors.openFolder(dir);
  const where = files.indexPath ?? files.files[0].path;
  let weights: HfWeights;
  try {
    weights = checkWeights(config, files, where);
  } catch (e) {
    files.close();
    throw e;
  }
  try {
    const json: HfModel['json'] = { config: configJson };
    let tokenizer: LensTokenizer | null = null;
    let chatTemplate: ChatTemplate | null = null;
    const tokPath = join(dir, 'tokenizer.json');
    const tokCfgPath = join(dir, 'tokenizer_config.json');
    const needTok = opts.tokenizer ?? config.kind !== 'vision';
    if (existsSync(tokPath)) {
      tokenizer = LensTokenizer.fromFiles(tokPath, tokCfgPath);
      json.tokenizer = tokenizer.files.tokenizerJson;
      if (existsSync(tokCfgPath)) json.tokenizerConfig = tokenizer.files.tokenizerConfig;
      if (config.kind !== 'vision') {
        const vocab = config.text.vocabSize;
        if (tokenizer.vocabSize > vocab)
          throw new HfFolderError(
            `${tokPath}: has ${tokenizer.vocabSize} tokens but config.json's vocab_size is ${vocab}`,
          );
      }
      if (isVlm(config) && tokenizer.idToToken(config.imageTokenIndex) === undefined)
        throw new HfFolderError(
          `${tokPath}: no token with id ${config.imageTokenIndex} (config.json's ${config.kind === 'llava' ? 'image_token_index' : 'image_token_id'})`,
        );
      const found = findChatTemplate(dir, tokenizer.files.tokenizerConfig);
      if (found) {
        chatTemplate = new ChatTemplate(
          found.source,
          {
            bos_token: tokenizer.bosToken,
            eos_token: tokenizer.eosToken,
            unk_token: tokenizer.unkToken,
            pad_token: tokenizer.padToken,
          },
          found.origin,
        );
        if (existsSync(join(dir, 'chat_template.jinja'))) json.chatTemplateJinja = found.source;
      }
    } else if (needTok) {
      throw new HfFolderError(`${dir}: no tokenizer.json (a ${config.modelType} model needs one)`);
    }
    let imageProcessor: ImageProcessor | null = null;
    let images: FamilyImageProcessor | null = null;
    const ppPath = join(dir, 'preprocessor_config.json');
    const pcPath = join(dir, 'processor_config.json');
    if (existsSync(pcPath)) json.processorConfig = readJsonObject(pcPath);
    if (existsSync(ppPath)) {
      json.preprocessorConfig = readJsonObject(ppPath);
      if (isVlm(config)) {
        const family = vlmFamilyOf(config);
        images = family.imageProcessor(config, json.preprocessorConfig, ppPath, json.processorConfig);
        imageProcessor = images.base ?? null;
        if (tokenizer) {
          const missing = family
            .requiredTokens(config, images.maxGrid())
            .filter((t) => tokenizer!.tokenToId(t) === undefined);
          if (missing.length)
            throw new HfFolderError(
              `${tokPath}: no token ${missing.slice(0, 4).join(', ')}${missing.length > 4 ? ` and ${missing.length - 4} more` : ''} (a ${config.modelType} model's processor writes them)`,
            );
        }
      } else imageProcessor = new ImageProcessor(parsePreprocessorConfig(json.preprocessorConfig, ppPath));
    } else if (opts.preprocessor ?? config.kind !== 'text') {
      throw new HfFolderError(`${dir}: no preprocessor_config.json (a ${config.modelType} model needs one)`);
    }
    const genPath = join(dir, 'generation_config.json');
    if (existsSync(genPath)) json.generationConfig = readJsonObject(genPath);
    return {
      dir,
      config,
      layout: weightLayout(config),
      weights,
      tokenizer,
      chatTemplate,
      imageProcessor,
      images,
      json,
      close: () => weights.close(),
    };
  } catch (e) {
    weights.close();
    throw e;
  }
}

/** Everything saveHfFolder writes. Weights are keyed by canonical names. */
export interface HfFolderContent {
  /** config.json as an object */
  config: Record<string, unknown>;
  weights: TensorSource;
  /** storage dtype for every tensor; default: each tensor's own dtype when it is F32/F16/BF16, else F32 */
  dtype?: FloatDtype;
  tokenizer?: Record<string, unknown>;
  tokenizerConfig?: Record<string, unknown>;
  preprocessorConfig?: Record<string, unknown>;
  /** processor_config.json (Idefics3 / SmolVLM: image_seq_len) */
  processorConfig?: Record<string, unknown>;
  generationConfig?: Record<string, unknown>;
  chatTemplateJinja?: string;
  /** shard when the weights are larger than this many bytes (default 5 GB) */
  maxShardBytes?: number;
}

export { writeTextAtomic };

export function writeJsonAtomic(path: string, obj: unknown): void {
  writeTextAtomic(path, JSON.stringify(obj, null, 2) + '\n');
}
const writeJson = writeJsonAtomic;

/**
 * Write a folder in the classic Hugging Face layout. The config is parsed first and every expected tensor must be
 * in `weights` with its exact shape (no tensor outside the config is written), so a folder that loads is all
 * that can come out. Each file is written atomically.
 */
export function saveHfFolder(dir: string, content: HfFolderContent | HfModel): string[] {
  const c: HfFolderContent =
    'layout' in content
      ? {
          config: content.json.config,
          weights: content.weights,
          tokenizer: content.json.tokenizer,
          tokenizerConfig: content.json.tokenizerConfig,
          preprocessorConfig: content.json.preprocessorConfig,
          processorConfig: content.json.processorConfig,
          generationConfig: content.json.generationConfig,
          chatTemplateJinja: content.json.chatTemplateJinja,
        }
      : content;
  const config = parseHfConfig(c.config, join(dir, 'config.json'));
  const specs = expectedTensors(config);
  const specNames = new Set(specs.map((s) => s.name));
  const unexpected = c.weights.names().filter((n) => !specNames.has(n));
  if (unexpected.length > 0)
    throw new HfFolderError(
      `${dir}: ${unexpected.length} tensor(s) to save that config.json does not explain: ${listNames(unexpected)}`,
    );
  const toWrite: TensorToWrite[] = [];
  for (const s of specs) {
    if (!c.weights.has(s.name)) {
      if (s.optional) continue;
      throw new HfFolderError(`${dir}: cannot save, tensor "${s.name}" is missing`);
    }
    const info = c.weights.info(s.name);
    if (info.shape.length !== s.shape.length || info.shape.some((d, i) => d !== s.shape[i]))
      throw new HfFolderError(
        `${dir}: cannot save, tensor "${s.name}" has shape ${JSON.stringify(info.shape)}, expected ${JSON.stringify(s.shape)}`,
      );
    const dtype: FloatDtype = c.dtype ?? (isFloatDtype(info.dtype as Dtype) ? (info.dtype as FloatDtype) : 'F32');
    toWrite.push({ name: s.name, dtype, shape: s.shape, data: () => c.weights.get(s.name) });
  }
  mkdirSync(dir, { recursive: true });
  const written = writeWeightsFolder(dir, toWrite, { maxShardBytes: c.maxShardBytes });
  const configOut = { ...c.config };
  if (c.dtype) configOut.torch_dtype = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[c.dtype];
  writeJson(join(dir, 'config.json'), configOut);
  written.push('config.json');
  const opt: Array<[string, unknown]> = [
    ['tokenizer.json', c.tokenizer],
    ['tokenizer_config.json', c.tokenizerConfig],
    ['preprocessor_config.json', c.preprocessorConfig],
    ['processor_config.json', c.processorConfig],
    ['generation_config.json', c.generationConfig],
  ];
  for (const [name, obj] of opt) {
    if (obj === undefined) continue;
    writeJson(join(dir, name), obj);
    written.push(name);
  }
  if (c.chatTemplateJinja !== undefined) {
    writeTextAtomic(join(dir, 'chat_template.jinja'), c.chatTemplateJinja);
    written.push('chat_template.jinja');
  }
  return written;
}

export { ConfigError, SafetensorsError, TokenizerError, PreprocessorError };
