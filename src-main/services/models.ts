// Models behind the contract (contract/models.ts): thin wrappers over models/hf-folder.ts (validate + report),
// models/compose.ts (compose a LLaVA), models/peft.ts (adapters, merge) and the demo model generator. Rows live
// in the models table (path absolute; config_json holds {report, source}).
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiError } from '../contract/errors';
import type { Model, ModelReport } from '../contract/models';
import { handlers, type ServiceContext } from './context';
import type { Database } from '../storage/database';
import {
  deleteModelRow,
  getModelRow,
  insertModelRow,
  listModelRows,
  modelByPath,
  modelNameTaken,
  renameModel,
  type ModelRow,
} from '../storage/models-queries';
import { loadHfFolder, saveHfFolder, type HfModel } from '../models/hf-folder';
import { isVlm } from '../models/config';
import { vlmFamilyOf } from '../models/registry';
import { composeLlava } from '../models/compose';
import { loadAdapter, mergeAdapter } from '../models/peft';
import { writeTinyLlava } from '../models/demo/tiny-llava';
import { requireNotAudioLlm, resolveAdapter } from './model-refs';
import { isContrastiveFolder } from '../models/families/contrastive/folder';
import { mergeContrastiveFolder } from '../models/families/contrastive/merge';
import { ContrastiveAdapterError } from '../models/families/contrastive/adapter';
import { chatInputsOf } from '../models/generate-worker';
import { loadAudioLlm, type LoadedAudioLlm } from '../models/audio/ultravox';

/** Where a pretrained demo model is bundled (scripts/pretrain-demo.ts --out resources/demo/model). */
export const BUNDLED_DEMO_DIR = fileURLToPath(new URL('../../resources/demo/model', import.meta.url));
export const DEMO_NAME = 'Demo: tiny LLaVA';

function folderBytes(dir: string): { bytes: number; files: string[] } {
  let bytes = 0;
  const files: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    // a Hub cache snapshot holds symlinks into blobs/: count what they point at
    if (!e.isFile() && !(e.isSymbolicLink() && statSync(join(dir, e.name), { throwIfNoEntry: false })?.isFile()))
      continue;
    files.push(e.name);
    bytes += statSync(join(dir, e.name)).size;
  }
  return { bytes, files: files.sort() };
}

/** The report of a loaded folder. */
export function reportOf(model: HfModel): ModelReport {
  const c = model.config;
  let params = 0;
  for (const name of model.weights.names()) params += model.weights.info(name).shape.reduce((a, b) => a * b, 1);
  const { bytes, files } = folderBytes(model.dir);
  const v = c.kind === 'text' ? null : c.vision;
  const t = c.kind === 'vision' ? null : c.text;
  const warnings: string[] = [];
  if (c.kind !== 'vision' && !model.chatTemplate)
    warnings.push('no chat template in the folder: the built-in LLaVA-1.5 template is used');
  if (c.kind === 'text')
    warnings.push('a language model alone cannot see images: compose it with a vision tower first');
  const contrastive = c.kind === 'vision' && (c.modelType === 'clip' || c.modelType === 'siglip');
  if (contrastive)
    warnings.push(
      `a ${c.modelType === 'clip' ? 'CLIP' : 'SigLIP'} model searches images and trains contrastively; to chat, compose its vision tower with a language model`,
    );
  else if (c.kind === 'vision')
    warnings.push('a vision tower alone cannot answer: compose it with a language model first');
  const vlm = isVlm(c);
  if (vlm && model.chatTemplate) {
    // a template that drops image parts would make chat and training run without the image: say so up front
    try {
      if (!model.chatTemplate.writesImages)
        warnings.push(
          `${model.chatTemplate.origin}: the chat template writes nothing for an image, so the model could never see one`,
        );
    } catch (e) {
      warnings.push((e as Error).message);
    }
  }
  const family = isVlm(c) ? vlmFamilyOf(c).describe(c) : c.modelType.replace(/_vision_model$/, '');
  const shape = isVlm(c) ? vlmFamilyOf(c).shape(c, model.images) : null;
  return {
    path: model.dir,
    modelType: c.modelType,
    // 'llava' in the contract means a whole vision-language model (trains and chats), of any family
    kind: vlm ? 'llava' : contrastive ? 'contrastive' : (c.kind as 'text' | 'vision'),
    family,
    params,
    bytes,
    files,
    vision: v
      ? {
          modelType: v.modelType,
          imageSize: v.imageSize,
          patchSize: v.patchSize,
          hiddenSize: v.hiddenSize,
          layers: v.numHiddenLayers,
        }
      : null,
    text: t
      ? {
          modelType: t.modelType,
          hiddenSize: t.hiddenSize,
          layers: t.numHiddenLayers,
          heads: t.numAttentionHeads,
          kvHeads: t.numKeyValueHeads,
          vocabSize: t.vocabSize,
          contextLength: t.maxPositionEmbeddings,
        }
      : null,
    projector: isVlm(c) ? vlmFamilyOf(c).connectorLabel(c) : null,
    imageTokens: shape ? shape.tokensPerFrame * shape.maxFramesPerImage : null,
    inputs: vlm ? ['text', 'image'] : c.kind === 'text' ? ['text'] : [],
    hasTokenizer: !!model.tokenizer,
    hasChatTemplate: !!model.chatTemplate,
    hasPreprocessor: !!(model.images ?? model.imageProcessor),
    warnings,
  };
}

/** Features of the app an audio LLM does not have yet, said on its report. */
export const AUDIO_LLM_LIMITS =
  'training jobs from the app, evaluations and GGUF export are not available for audio LLMs yet: train with `lenslab audio train` and chat here with its adapter';

/** The report of an audio LLM folder (models/audio/: Whisper encoder + projector + decoder, Ultravox layout). */
export function audioLlmReport(m: LoadedAudioLlm): ModelReport {
  const c = m.config;
  let params = 0;
  for (const name of m.weights.names()) params += m.weights.info(name).shape.reduce((a, b) => a * b, 1);
  const { bytes, files } = folderBytes(m.dir);
  const t = c.text;
  const warnings = [AUDIO_LLM_LIMITS];
  if (!m.chatTemplate)
    warnings.push(
      'no chat template in the folder: the model cannot chat until one is added (tokenizer_config.json chat_template)',
    );
  return {
    path: m.dir,
    modelType: c.modelType,
    kind: 'audio-llm',
    family: `ultravox-${t.modelType}`,
    params,
    bytes,
    files,
    vision: null,
    text: {
      modelType: t.modelType,
      hiddenSize: t.hiddenSize,
      layers: t.numHiddenLayers,
      heads: t.numAttentionHeads,
      kvHeads: t.numKeyValueHeads,
      vocabSize: t.vocabSize,
      contextLength: t.maxPositionEmbeddings,
    },
    projector: `stack ${c.projector.stackFactor} + ${c.projector.act} MLP`,
    imageTokens: null,
    inputs: ['text', 'audio'],
    audio: {
      modelType: 'whisper',
      melBins: c.audio.numMelBins,
      hiddenSize: c.audio.dModel,
      layers: c.audio.numLayers,
      windowSeconds: m.features.config.chunkLength,
      stackFactor: c.projector.stackFactor,
      audioTokens: m.tokensPerClip,
    },
    hasTokenizer: true,
    hasChatTemplate: !!m.chatTemplate,
    hasPreprocessor: true,
    warnings,
  };
}

/** Validate a folder (every tensor's shape, tokenizer, preprocessor); errors become invalid_request naming the file. */
export function inspectFolder(dir: string, field = 'path'): ModelReport {
  const abs = resolve(dir);
  if (!existsSync(abs)) throw new ApiError('invalid_request', `${abs} does not exist`, field);
  if (!statSync(abs).isDirectory())
    throw new ApiError('invalid_request', `${abs} is not a folder (give the folder holding config.json)`, field);
  if (chatInputsOf(abs).audio) {
    let m: LoadedAudioLlm;
    try {
      m = loadAudioLlm(abs);
    } catch (e) {
      throw new ApiError('invalid_request', (e as Error).message, field);
    }
    try {
      return audioLlmReport(m);
    } finally {
      m.close();
    }
  }
  let model: HfModel;
  try {
    model = loadHfFolder(abs, { tokenizer: false, preprocessor: false });
  } catch (e) {
    throw new ApiError('invalid_request', (e as Error).message, field);
  }
  try {
    return reportOf(model);
  } finally {
    model.close();
  }
}

function parseConfig(row: ModelRow): { report: ModelReport | null; source: string | null } {
  try {
    const j = JSON.parse(row.config_json) as { report?: ModelReport; source?: string };
    return { report: j.report ?? null, source: j.source ?? null };
  } catch {
    return { report: null, source: null };
  }
}

function absPath(ctx: ServiceContext, p: string): string {
  return isAbsolute(p) ? p : join(ctx.dataDir, p);
}

export function toModel(ctx: ServiceContext, row: ModelRow): Model {
  const { report, source } = parseConfig(row);
  const path = absPath(ctx, row.path);
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    family: row.family,
    path,
    baseModelId: row.base_model_id,
    available: existsSync(join(path, 'config.json')),
    report,
    params: row.params,
    bytes: row.bytes,
    source,
    managed: isManaged(ctx, path),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function isManaged(ctx: ServiceContext, dir: string): boolean {
  return resolve(dir).startsWith(resolve(ctx.dataDir, 'models') + sep);
}

function getRow(db: Database, id: number, field = 'id'): ModelRow {
  const row = getModelRow(db, id);
  if (!row) throw new ApiError('not_found', `model ${id} does not exist`, field);
  return row;
}

/** Stored path: relative to the data dir when inside it (the data dir may move), else absolute. */
function storedPath(ctx: ServiceContext, dir: string): string {
  const rel = relative(resolve(ctx.dataDir), dir);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : dir;
}

function insertModel(
  ctx: ServiceContext,
  p: {
    name: string;
    kind: Model['kind'];
    dir: string;
    report: ModelReport;
    source?: string;
    baseModelId?: number | null;
  },
): Model {
  if (modelNameTaken(ctx.db, p.name))
    throw new ApiError('conflict', `a model named "${p.name}" already exists`, 'name');
  const id = insertModelRow(ctx.db, {
    name: p.name,
    kind: p.kind,
    family: p.report.family,
    path: storedPath(ctx, p.dir),
    baseModelId: p.baseModelId ?? null,
    config: { report: p.report, source: p.source ?? null },
    params: p.report.params,
    bytes: p.report.bytes,
  });
  ctx.emit('models.changed', { kind: 'created', id });
  return toModel(ctx, getRow(ctx.db, id));
}

/** A folder name for something Lenslab writes into <data>/models. */
function modelsDir(ctx: ServiceContext, name: string): string {
  const slug =
    name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 60) || 'model';
  let dir = join(ctx.dataDir, 'models', slug);
  for (let i = 2; existsSync(dir); i++) dir = join(ctx.dataDir, 'models', `${slug}-${i}`);
  return dir;
}

function requireEmptyDir(dir: string, overwrite: boolean | undefined, field: string): void {
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new ApiError('invalid_request', `${dir} is a file, not a folder`, field);
    if (readdirSync(dir).length > 0 && !overwrite)
      throw new ApiError('conflict', `${dir} is not empty (choose an empty folder or allow overwriting)`, field);
  }
}

function toApi(e: unknown, field: string): never {
  if (e instanceof ApiError) throw e;
  throw new ApiError('invalid_request', (e as Error).message, field);
}

export const modelsHandlers = handlers({
  'models.list': (_p, ctx) => {
    const rows = listModelRows(ctx.db);
    return { models: rows.map((r) => toModel(ctx, r)) };
  },
  'models.get': (p, ctx) => toModel(ctx, getRow(ctx.db, p.id)),
  'models.inspect': (p) => inspectFolder(p.path),
  'models.import': (p, ctx) => {
    const report = inspectFolder(p.path);
    const dup = modelByPath(ctx.db, storedPath(ctx, report.path));
    if (dup) throw new ApiError('conflict', `this folder is already registered as "${dup.name}"`, 'path');
    const name = p.name ?? (report.path.split(/[\\/]/).filter(Boolean).pop() || 'model');
    return { model: insertModel(ctx, { name, kind: 'base', dir: report.path, report }), report };
  },
  'models.installDemo': (_p, ctx) => {
    const existing = listModelRows(ctx.db).find((r) => parseConfig(r).source === 'demo');
    if (existing && existsSync(join(absPath(ctx, existing.path), 'config.json'))) {
      const model = toModel(ctx, existing);
      return { model, report: model.report ?? inspectFolder(model.path), created: false };
    }
    if (existing) deleteModelRow(ctx.db, existing.id);
    let dir: string;
    let name: string;
    if (existsSync(join(BUNDLED_DEMO_DIR, 'config.json'))) {
      dir = BUNDLED_DEMO_DIR;
      name = `${DEMO_NAME} (pretrained)`;
    } else {
      dir = join(ctx.dataDir, 'models', 'demo-tiny-llava');
      rmSync(dir, { recursive: true, force: true });
      writeTinyLlava(dir, 0);
      name = `${DEMO_NAME} (random init)`;
    }
    const report = inspectFolder(dir);
    if (modelNameTaken(ctx.db, name)) name = `${name} ${Date.now()}`;
    return { model: insertModel(ctx, { name, kind: 'base', dir, report, source: 'demo' }), report, created: true };
  },
  'models.compose': (p, ctx) => {
    if (modelNameTaken(ctx.db, p.name))
      throw new ApiError('conflict', `a model named "${p.name}" already exists`, 'name');
    inspectFolder(p.visionPath, 'visionPath');
    inspectFolder(p.textPath, 'textPath');
    const out = modelsDir(ctx, p.name);
    let added = false;
    try {
      const r = composeLlava({
        visionDir: resolve(p.visionPath),
        textDir: resolve(p.textPath),
        outDir: out,
        projectorType: p.projectorType,
        seed: p.seed,
      });
      added = r.addedImageToken;
    } catch (e) {
      rmSync(out, { recursive: true, force: true });
      toApi(e, /vision/i.test((e as Error).message) ? 'visionPath' : 'textPath');
    }
    const report = inspectFolder(out);
    return {
      model: insertModel(ctx, { name: p.name, kind: 'base', dir: out, report, source: 'composed' }),
      report,
      addedImageToken: added,
    };
  },
  'models.update': (p, ctx) => {
    const row = getRow(ctx.db, p.id);
    if (p.name !== row.name && modelNameTaken(ctx.db, p.name))
      throw new ApiError('conflict', `a model named "${p.name}" already exists`, 'name');
    renameModel(ctx.db, p.id, p.name);
    ctx.emit('models.changed', { kind: 'updated', id: p.id });
    return toModel(ctx, getRow(ctx.db, p.id));
  },
  'models.delete': (p, ctx) => {
    const row = getRow(ctx.db, p.id);
    const dir = resolve(absPath(ctx, row.path));
    const inside = isManaged(ctx, dir);
    if (p.deleteFiles && !inside)
      throw new ApiError(
        'invalid_request',
        `${dir} was not created by Lenslab (it is outside the data folder): delete it yourself`,
        'deleteFiles',
      );
    deleteModelRow(ctx.db, p.id);
    let filesDeleted = false;
    if (p.deleteFiles && inside) {
      rmSync(dir, { recursive: true, force: true });
      filesDeleted = true;
    }
    ctx.emit('models.changed', { kind: 'deleted', id: p.id });
    return { deleted: true as const, id: p.id, filesDeleted };
  },
  'models.exportAdapter': (p, ctx) => {
    const src = resolveAdapter(ctx, p.adapter);
    const dir = resolve(p.dir);
    requireEmptyDir(dir, p.overwrite, 'dir');
    mkdirSync(dir, { recursive: true });
    const files: string[] = [];
    let bytes = 0;
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) {
      if (!existsSync(join(src, f))) throw new ApiError('invalid_request', `${join(src, f)} is missing`, 'adapter');
      cpSync(join(src, f), join(dir, f));
      bytes += statSync(join(dir, f)).size;
      files.push(f);
    }
    return { dir, files, bytes };
  },
  'models.merge': (p, ctx) => {
    if (modelNameTaken(ctx.db, p.name))
      throw new ApiError('conflict', `a model named "${p.name}" already exists`, 'name');
    let baseDir: string;
    let baseId: number | null = null;
    if ('id' in p.model) {
      const row = getRow(ctx.db, p.model.id, 'model.id');
      baseDir = absPath(ctx, row.path);
      baseId = row.id;
    } else baseDir = resolve(p.model.path);
    requireNotAudioLlm(baseDir, 'merging an adapter into the weights', 'id' in p.model ? 'model.id' : 'model.path');
    const adapterDir = resolveAdapter(ctx, p.adapter);
    const out = p.dir ? resolve(p.dir) : modelsDir(ctx, p.name);
    requireEmptyDir(out, p.overwrite, 'dir');
    if (isContrastiveFolder(baseDir)) {
      // a CLIP / SigLIP dual encoder with a contrastive adapter: its own layout (both towers, projections)
      try {
        mergeContrastiveFolder(baseDir, adapterDir, out, { dtype: p.dtype });
      } catch (e) {
        toApi(e, e instanceof ContrastiveAdapterError ? 'adapter' : 'model');
      }
      const report = inspectFolder(out);
      return {
        model: insertModel(ctx, {
          name: p.name,
          kind: 'merged',
          dir: out,
          report,
          source: 'merged',
          baseModelId: baseId,
        }),
        report,
      };
    }
    let base: HfModel;
    try {
      base = loadHfFolder(baseDir, { tokenizer: false, preprocessor: false });
    } catch (e) {
      toApi(e, 'model');
    }
    try {
      const adapter = (() => {
        try {
          return loadAdapter(adapterDir, base.config);
        } catch (e) {
          toApi(e, 'adapter');
        }
      })();
      saveHfFolder(out, {
        config: base.json.config,
        weights: mergeAdapter(base.weights, adapter),
        dtype: p.dtype,
        tokenizer: base.json.tokenizer,
        tokenizerConfig: base.json.tokenizerConfig,
        preprocessorConfig: base.json.preprocessorConfig,
        processorConfig: base.json.processorConfig,
        generationConfig: base.json.generationConfig,
        chatTemplateJinja: base.json.chatTemplateJinja,
      });
    } finally {
      base.close();
    }
    const report = inspectFolder(out);
    return {
      model: insertModel(ctx, {
        name: p.name,
        kind: 'merged',
        dir: out,
        report,
        source: 'merged',
        baseModelId: baseId,
      }),
      report,
    };
  },
});
