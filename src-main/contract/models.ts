// Models known to Lenslab (the models table): base checkpoints in Hugging Face layout, the bundled demo model,
// composed LLaVA models and merged fine-tunes. A folder is validated (config, every tensor's shape, tokenizer,
// preprocessor) before it is registered; the report says what it holds. Pure TS + zod.
import { z } from 'zod';
import { defineEvents, defineMethods } from './define';
import { Id, Name, Timestamp } from './common';

const Path = z.string().min(1, 'must not be empty').max(4096);

export const ModelReport = z.object({
  /** The folder as resolved on the backend's machine. */
  path: z.string(),
  /** config.json model_type ('llava', 'llama', 'clip_vision_model', ...). */
  modelType: z.string(),
  /**
   * What it can do here: a full LLaVA (train + chat), a language model or a vision tower (compose them), or a
   * CLIP / SigLIP dual encoder (image search, contrastive training; its vision tower composes like a 'vision' one),
   * or an audio LLM (Whisper encoder + projector + decoder, Ultravox layout: chats about audio clips; trains with
   * `lenslab audio train`).
   */
  kind: z.enum(['llava', 'text', 'vision', 'contrastive', 'audio-llm']),
  /** e.g. 'llava-llama' / 'llava-qwen2' / 'llama' / 'clip'. */
  family: z.string(),
  params: z.number(),
  bytes: z.number(),
  files: z.array(z.string()),
  vision: z
    .object({ modelType: z.string(), imageSize: z.int(), patchSize: z.int(), hiddenSize: z.int(), layers: z.int() })
    .nullable(),
  text: z
    .object({
      modelType: z.string(),
      hiddenSize: z.int(),
      layers: z.int(),
      heads: z.int(),
      kvHeads: z.int(),
      vocabSize: z.int(),
      contextLength: z.int(),
    })
    .nullable(),
  projector: z.string().nullable(),
  /** Tokens one <image> becomes (LLaVA). */
  imageTokens: z.int().nullable(),
  /** What the model takes in chat besides text ('image', 'audio'); absent in reports stored before it was added. */
  inputs: z.array(z.enum(['text', 'image', 'audio'])).optional(),
  /** An audio LLM's encoder and the tokens one clip becomes. */
  audio: z
    .object({
      modelType: z.string(),
      melBins: z.int(),
      hiddenSize: z.int(),
      layers: z.int(),
      windowSeconds: z.number(),
      stackFactor: z.int(),
      audioTokens: z.int(),
    })
    .nullable()
    .optional(),
  hasTokenizer: z.boolean(),
  hasChatTemplate: z.boolean(),
  hasPreprocessor: z.boolean(),
  /** Things that work but deserve a look (no chat template: the built-in LLaVA one is used, ...). */
  warnings: z.array(z.string()),
});
export type ModelReport = z.infer<typeof ModelReport>;

export const Model = z.object({
  id: Id,
  name: z.string(),
  kind: z.enum(['base', 'adapter', 'merged']),
  family: z.string().nullable(),
  /** Absolute folder. */
  path: z.string(),
  baseModelId: Id.nullable(),
  /** Whether the folder is still there. */
  available: z.boolean(),
  /** The report made when it was registered. */
  report: ModelReport.nullable(),
  params: z.number().nullable(),
  bytes: z.number().nullable(),
  /** 'demo' (the demo model), 'composed', 'merged', or null for an imported folder. */
  source: z.string().nullable(),
  /** The folder is inside the data folder's models/ (Lenslab made it): models.delete may delete its files. */
  managed: z.boolean(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
export type Model = z.infer<typeof Model>;

/** An adapter: a PEFT folder, or a run's final adapter / the adapter of one of its checkpoints. */
export const AdapterRef = z.union([
  z.strictObject({ path: Path }),
  z.strictObject({ runId: Id, step: z.int().nonnegative().optional() }),
]);

export const modelsMethods = defineMethods({
  'models.list': {
    input: z.strictObject({}),
    output: z.object({ models: z.array(Model) }),
    summary: 'Registered models, newest first.',
  },
  'models.get': { input: z.strictObject({ id: Id }), output: Model, summary: 'One model.' },
  'models.inspect': {
    input: z.strictObject({ path: Path }),
    output: ModelReport,
    summary: 'Validate a Hugging Face folder without registering it (errors name the file and tensor).',
  },
  'models.import': {
    input: z.strictObject({ path: Path, name: Name.optional() }),
    output: z.object({ model: Model, report: ModelReport }),
    summary: 'Validate a Hugging Face model folder and register it in place (nothing is copied).',
  },
  'models.installDemo': {
    input: z.strictObject({}),
    output: z.object({ model: Model, report: ModelReport, created: z.boolean() }),
    summary: 'Register the bundled tiny demo LLaVA (generated into the data folder when not bundled).',
  },
  'models.compose': {
    input: z.strictObject({
      name: Name,
      visionPath: Path,
      textPath: Path,
      projectorType: z.enum(['mlp', 'linear']).optional(),
      seed: z.int().optional(),
    }),
    output: z.object({ model: Model, report: ModelReport, addedImageToken: z.boolean() }),
    summary:
      'Compose a LLaVA model from a CLIP/SigLIP folder and a LLaMA/Qwen2 folder with a new projector (saved in the data folder).',
  },
  'models.update': { input: z.strictObject({ id: Id, name: Name }), output: Model, summary: 'Rename a model.' },
  'models.delete': {
    input: z.strictObject({ id: Id, deleteFiles: z.boolean().optional() }),
    output: z.object({ deleted: z.literal(true), id: Id, filesDeleted: z.boolean() }),
    summary:
      'Forget a model; with deleteFiles its folder is removed too when Lenslab created it (inside the data folder).',
  },
  'models.exportAdapter': {
    input: z.strictObject({ adapter: AdapterRef, dir: Path, overwrite: z.boolean().optional() }),
    output: z.object({ dir: z.string(), files: z.array(z.string()), bytes: z.number() }),
    summary: "Copy a run's adapter (PEFT layout: adapter_config.json + adapter_model.safetensors) to a folder.",
  },
  'models.merge': {
    input: z.strictObject({
      /** Base model: registered id or folder. */
      model: z.union([z.strictObject({ id: Id }), z.strictObject({ path: Path })]),
      adapter: AdapterRef,
      name: Name,
      /** Output folder (default: inside the data folder); must be empty unless overwrite. */
      dir: Path.optional(),
      overwrite: z.boolean().optional(),
      dtype: z.enum(['F32', 'F16', 'BF16']).optional(),
    }),
    output: z.object({ model: Model, report: ModelReport }),
    summary: 'Merge an adapter into its base weights and save (and register) a full Hugging Face folder.',
  },
});

export const modelsEvents = defineEvents({
  'models.changed': z.object({ kind: z.enum(['created', 'updated', 'deleted']), id: Id }),
});
