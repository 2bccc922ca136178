// Dataset contents: import / export, items and their labels, tags, splits, undo/redo, lint, tokenized preview.
// (Datasets themselves — list/create/rename/delete — are in datasets.ts.) Pure TS + zod.
import { z } from 'zod';
import { defineEvents, defineMethods } from './define';
import { Id, Name, Timestamp } from './common';
import { AdapterRef } from './models';

export const IMPORT_FORMATS = [
  'folder',
  'imagefolder',
  'llava',
  'messages',
  'vqa',
  'vqa-folders',
  'parquet',
  'zip',
  'icon-vqa',
] as const;
export const EXPORT_FORMATS = ['llava', 'messages', 'imagefolder'] as const;
export const SplitName = z.enum(['train', 'val', 'test']);
const Text = z.string().max(1_000_000, 'must be at most 1,000,000 characters');
const Path = z.string().min(1, 'must not be empty').max(4096);
const ItemIds = z.array(Id).min(1, 'select at least one item').max(1_000_000);
const Tag = z.string().trim().min(1, 'must not be empty').max(200);

export const ChatMessage = z.strictObject({ role: z.enum(['system', 'user', 'assistant']), content: Text });
export const AnnotationInput = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('caption'), data: z.strictObject({ text: Text }) }),
  z.strictObject({ kind: z.literal('qa'), data: z.strictObject({ question: Text, answer: Text }) }),
  z.strictObject({
    kind: z.literal('chat'),
    data: z.strictObject({ messages: z.array(ChatMessage).min(1).max(1000) }),
  }),
]);
export type AnnotationInput = z.infer<typeof AnnotationInput>;
export const Annotation = z.intersection(z.object({ id: Id }), AnnotationInput);

export const Item = z.object({
  id: Id,
  datasetId: Id,
  /** Content-addressed image: the renderer builds its URL from hash + ext (images/ and thumbs/ in the data dir). */
  image: z
    .object({
      hash: z.string(),
      ext: z.string(),
      width: z.int().nullable(),
      height: z.int().nullable(),
      bytes: z.int().nullable(),
    })
    .nullable(),
  /** An audio clip or a video instead of an image (media/<h[0:2]>/<hash>.<ext> in the data dir; a video's poster is its thumb). */
  media: z
    .object({
      kind: z.enum(['audio', 'video']),
      hash: z.string(),
      ext: z.string(),
      bytes: z.int().nullable(),
      meta: z.record(z.string(), z.union([z.number(), z.string()])),
    })
    .nullable()
    .optional(),
  /** Where the item came from (original image path or record). */
  sourcePath: z.string().nullable(),
  split: SplitName.nullable(),
  position: z.int(),
  annotations: z.array(Annotation),
  tags: z.array(z.string()),
});
export type Item = z.infer<typeof Item>;

export const Problem = z.object({
  ref: z.string(),
  field: z.string().optional(),
  message: z.string(),
  severity: z.enum(['error', 'warning']),
});
export const ImportReport = z.object({
  datasetId: Id,
  datasetName: z.string(),
  importId: Id,
  format: z.enum(IMPORT_FORMATS),
  source: z.string(),
  imported: z.int().nonnegative(),
  annotations: z.int().nonnegative(),
  /** Records not imported, each with its reason (capped at 1000; see skippedCount). */
  skipped: z.array(Problem),
  skippedCount: z.int().nonnegative(),
  warnings: z.array(Problem),
  warningCount: z.int().nonnegative(),
  imagesStored: z.int().nonnegative(),
  imagesReused: z.int().nonnegative(),
  /**
   * Incoming items not stored because the dataset already holds the same item (same image content and the
   * same labels after normalization; an unlabeled one whose image is already there). Not errors.
   * Capped at 1000; see alreadyPresentCount. Always empty for a new dataset.
   */
  alreadyPresent: z.array(z.object({ ref: z.string(), itemId: Id, message: z.string() })),
  alreadyPresentCount: z.int().nonnegative(),
});
export type ImportReport = z.infer<typeof ImportReport>;

export const HistoryState = z.object({
  canUndo: z.boolean(),
  canRedo: z.boolean(),
  undoLabel: z.string().optional(),
  redoLabel: z.string().optional(),
  position: z.int(),
  entries: z.array(z.object({ seq: z.int(), label: z.string(), createdAt: Timestamp, applied: z.boolean() })),
});

export const LINT_RULES = [
  'image_missing',
  'image_corrupt',
  'image_token_mismatch',
  'empty_answer',
  'no_assistant',
  'empty_question',
  'duplicate_image',
  'duplicate_sample',
  'near_duplicate_caption',
  'near_duplicate_image',
  'too_long',
  'render_error',
  'unlabeled',
  'media_missing',
  'clip_too_long',
] as const;
export const LintRule = z.enum(LINT_RULES);
export const LintSeverity = z.enum(['error', 'warning', 'info']);
export const LintFinding = z.object({
  itemId: Id,
  rule: LintRule,
  severity: LintSeverity,
  message: z.string(),
  data: z.record(z.string(), z.unknown()).optional(),
});

export const PreviewToken = z.object({
  id: z.int(),
  text: z.string(),
  inLoss: z.boolean(),
  repeat: z.int().optional(),
});
export const ConversationPreview = z.object({
  kind: z.enum(['caption', 'qa', 'chat']),
  text: z.string(),
  tokens: z.array(PreviewToken),
  totalTokens: z.int(),
  lossTokens: z.int(),
});

const Changed = z.object({ changed: z.int().nonnegative(), history: HistoryState });

export const datasetsIoMethods = defineMethods({
  'datasets.import': {
    input: z.strictObject({
      /** A folder, a .zip, a .json/.jsonl/.csv file or a .parquet file. */
      path: Path,
      /** Target dataset by name (created when missing; default: the source's name) ... */
      dataset: Name.optional(),
      /** ... or by id (appends). */
      datasetId: Id.optional(),
      format: z.enum(IMPORT_FORMATS).optional(),
      /** Store nothing when any record has an error (default: skip bad records and report them). */
      strict: z.boolean().optional(),
      /** Folder where relative image paths are also looked up (LLaVA's image folder). */
      imageRoot: Path.optional(),
      textColumn: z.string().min(1).max(200).optional(),
      imageColumn: z.string().min(1).max(200).optional(),
      /** Records naming the same image file become one item (default true). */
      groupByImage: z.boolean().optional(),
    }),
    output: ImportReport,
    summary:
      'Import a dataset (format detected unless given): all of it or nothing; lists skipped records with reasons.',
  },
  'datasets.export': {
    input: z.strictObject({
      datasetId: Id,
      /** Output folder (created; must be empty unless overwrite). */
      dir: Path,
      format: z.enum(EXPORT_FORMATS),
      split: SplitName.optional(),
      itemIds: z.array(Id).optional(),
      captionPrompt: z.string().max(2000).optional(),
      lenslabFields: z.boolean().optional(),
      overwrite: z.boolean().optional(),
    }),
    output: z.object({
      format: z.enum(EXPORT_FORMATS),
      dir: z.string(),
      file: z.string(),
      items: z.int(),
      records: z.int(),
      images: z.int(),
      skipped: z.array(z.object({ itemId: Id, reason: z.string() })),
    }),
    summary: 'Export as LLaVA JSON, messages+images JSONL or imagefolder metadata.jsonl, images copied alongside.',
  },
  'items.list': {
    input: z.strictObject({
      datasetId: Id,
      offset: z.int().nonnegative().optional(),
      limit: z.int().positive().max(10_000).optional(),
      split: z.union([SplitName, z.literal('none')]).optional(),
      tag: z.string().max(200).optional(),
      /** Only items with a finding of this rule in the latest lint. */
      lintRule: LintRule.optional(),
      /** Case-insensitive text search in labels. */
      search: z.string().max(1000).optional(),
      /** true: only items without labels; false: only labeled items. */
      unlabeled: z.boolean().optional(),
    }),
    output: z.object({ items: z.array(Item), total: z.int().nonnegative() }),
    summary: "A page of a dataset's items with labels and tags, filtered.",
  },
  'items.get': {
    input: z.strictObject({ id: Id }),
    output: Item.extend({
      provenance: z
        .object({ importId: Id.nullable(), record: z.string(), imageOriginal: z.string().nullable() })
        .nullable(),
    }),
    summary: 'One item, with where it was imported from.',
  },
  'items.videoFrames': {
    input: z.strictObject({
      id: Id,
      /** How many frames, sampled uniformly as the model samples them (default 8). */
      frames: z.int().min(1).max(64).optional(),
      /** Height of each frame in pixels, aspect kept (default 72: a strip thumbnail). */
      height: z.int().min(16).max(1024).optional(),
    }),
    output: z.object({
      frames: z.array(z.object({ index: z.int().nonnegative(), time: z.number().nonnegative(), png: z.string() })),
      total: z.int().nonnegative(),
      fps: z.number().nonnegative(),
    }),
    summary:
      "A video item's uniformly sampled frames (the frames the model is shown), decoded by ffmpeg, as base64 PNG.",
  },
  'items.add': {
    input: z.strictObject({
      datasetId: Id,
      items: z
        .array(
          z.strictObject({
            imagePath: Path.optional(),
            annotations: z.array(AnnotationInput).max(1000).optional(),
            tags: z.array(Tag).max(100).optional(),
            split: SplitName.nullable().optional(),
          }),
        )
        .min(1)
        .max(10_000),
    }),
    output: z.object({ ids: z.array(Id), history: HistoryState }),
    summary: 'Add items (images from local paths are copied into the data folder). Undoable.',
  },
  'items.delete': {
    input: z.strictObject({ datasetId: Id, itemIds: ItemIds }),
    output: Changed,
    summary: 'Delete items. Undoable.',
  },
  'items.setAnnotations': {
    input: z.strictObject({ datasetId: Id, itemId: Id, annotations: z.array(AnnotationInput).max(1000) }),
    output: z.object({ ids: z.array(Id), history: HistoryState }),
    summary: "Replace an item's labels (captions, QA pairs, chats). Undoable.",
  },
  'annotations.add': {
    input: z.strictObject({
      datasetId: Id,
      itemId: Id,
      annotation: AnnotationInput,
      position: z.int().nonnegative().optional(),
    }),
    output: z.object({ id: Id, history: HistoryState }),
    summary: 'Add one label to an item. Undoable.',
  },
  'annotations.update': {
    input: z.strictObject({ id: Id, annotation: AnnotationInput }),
    output: Changed,
    summary: 'Edit one label (its kind stays). Undoable.',
  },
  'annotations.delete': { input: z.strictObject({ id: Id }), output: Changed, summary: 'Delete one label. Undoable.' },
  'items.tag': {
    input: z.strictObject({ datasetId: Id, itemIds: ItemIds, tags: z.array(Tag).min(1).max(100) }),
    output: Changed,
    summary: 'Tag a selection. Undoable.',
  },
  'items.untag': {
    input: z.strictObject({ datasetId: Id, itemIds: ItemIds, tags: z.array(Tag).min(1).max(100) }),
    output: Changed,
    summary: 'Remove tags from a selection. Undoable.',
  },
  'items.setSplit': {
    input: z.strictObject({ datasetId: Id, itemIds: ItemIds, split: SplitName.nullable() }),
    output: Changed,
    summary: 'Move a selection to a split. Undoable.',
  },
  'items.replaceText': {
    input: z.strictObject({
      datasetId: Id,
      itemIds: ItemIds,
      find: z.string().min(1, 'must not be empty').max(10_000),
      replace: z.string().max(10_000),
      regex: z.boolean().optional(),
      caseSensitive: z.boolean().optional(),
      scope: z.enum(['all', 'answers']).optional(),
    }),
    output: Changed,
    summary: 'Find and replace in the labels of a selection. Undoable.',
  },
  'datasets.search': {
    input: z.strictObject({
      datasetId: Id,
      modelId: Id,
      text: z.string().min(1).max(1000).optional(),
      itemId: Id.optional(),
      /** A contrastive adapter of the model (a folder, or a run's final / checkpoint adapter). */
      adapter: AdapterRef.optional(),
      limit: z.int().min(1).max(10_000).optional(),
    }),
    output: z.object({
      items: z.array(z.object({ itemId: Id, score: z.number() })),
      embedded: z.int().nonnegative(),
      cached: z.int().nonnegative(),
    }),
    summary:
      "Rank a dataset's images against a text or an item's image with a CLIP / SigLIP model (embeddings cached per model).",
  },
  'datasets.tags': {
    input: z.strictObject({ datasetId: Id }),
    output: z.object({ tags: z.array(z.object({ name: z.string(), count: z.int() })) }),
    summary: "A dataset's tags with item counts.",
  },
  'datasets.split': {
    input: z.strictObject({
      datasetId: Id,
      seed: z.int(),
      train: z.number().nonnegative(),
      val: z.number().nonnegative(),
      test: z.number().nonnegative(),
      stratifyBy: z.enum(['tag']).nullable().optional(),
    }),
    output: z.object({
      splitId: Id,
      counts: z.object({ train: z.int(), val: z.int(), test: z.int() }),
      groups: z.record(z.string(), z.object({ train: z.int(), val: z.int(), test: z.int() })).optional(),
      history: HistoryState,
    }),
    summary: 'Assign train/val/test with a seed (optionally stratified by tag). Undoable.',
  },
  'datasets.undo': {
    input: z.strictObject({ datasetId: Id }),
    output: z.object({ label: z.string().nullable(), history: HistoryState }),
    summary: 'Undo the last labeling operation.',
  },
  'datasets.redo': {
    input: z.strictObject({ datasetId: Id }),
    output: z.object({ label: z.string().nullable(), history: HistoryState }),
    summary: 'Redo the last undone operation.',
  },
  'datasets.history': {
    input: z.strictObject({ datasetId: Id }),
    output: HistoryState,
    summary: "A dataset's undo/redo history.",
  },
  'datasets.lint': {
    input: z.strictObject({
      datasetId: Id,
      /** Decode and re-hash every image. */
      deep: z.boolean().optional(),
      /** Check lengths against this model's context (models table id). */
      modelId: Id.optional(),
      /** Override the model's context length. */
      contextLength: z.int().positive().optional(),
      /** Find near-duplicate images with this CLIP / SigLIP model (models table id): their embeddings' cosine. */
      imageModelId: Id.optional(),
      /** A contrastive adapter of imageModelId. */
      imageAdapter: AdapterRef.optional(),
      /** Cosine at or above which two different images are near-duplicates (default 0.95). */
      nearDuplicateImageThreshold: z.number().gt(0).max(1).optional(),
    }),
    output: z.object({
      datasetId: Id,
      items: z.int(),
      counts: z.record(z.string(), z.int()),
      itemsWithErrors: z.int(),
      findings: z.array(LintFinding),
    }),
    summary: 'Lint a dataset; findings are stored and filterable.',
  },
  'datasets.lintResults': {
    input: z.strictObject({
      datasetId: Id,
      rule: LintRule.optional(),
      severity: LintSeverity.optional(),
      itemId: Id.optional(),
    }),
    output: z.object({ findings: z.array(LintFinding) }),
    summary: 'Findings of the latest lint, filtered.',
  },
  'items.preview': {
    input: z.strictObject({ itemId: Id, modelId: Id, captionPrompt: z.string().max(2000).optional() }),
    output: z.object({ contextLength: z.int(), conversations: z.array(ConversationPreview) }),
    summary: "The item rendered through a model's chat template: each token and whether it is in the loss.",
  },
  'datasets.cancelImport': {
    input: z.strictObject({ path: Path }),
    output: z.object({ cancelled: z.boolean() }),
    summary: 'Cancel the running import of this path: nothing of it is stored. cancelled is false when none runs.',
  },
  'datasets.cleanImages': {
    input: z.strictObject({ minAgeMinutes: z.number().nonnegative().optional() }),
    output: z.object({ removed: z.int(), kept: z.int(), bytesFreed: z.int() }),
    summary: 'Remove stored images no item, chat or undo history refers to (older than minAgeMinutes, default 60).',
  },
});

export const datasetsIoEvents = defineEvents({
  /** Images processed so far during an import. */
  'datasets.importProgress': z.object({ path: z.string(), done: z.int().nonnegative(), total: z.int().nonnegative() }),
  /** A dataset's items or labels changed (import, edit, undo, ...). */
  'items.changed': z.object({ datasetId: Id, reason: z.string() }),
  /** Images embedded so far by a datasets.search whose model had not seen them. */
  'datasets.searchProgress': z.object({
    datasetId: Id,
    modelId: Id,
    done: z.int().nonnegative(),
    total: z.int().nonnegative(),
  }),
});
