// The backend worker: heavy work that service handlers need (services/work.ts hosts it), run in a worker_thread so that the backend's event loop (every client's
// requests and events) never stalls on it:
//   check     checkVlmRun (runs.estimate / runs.start): loads the model folder and tokenizer, renders and tokenizes
//             every sample of the split, plans and estimates memory; synchronous, seconds for thousands of items
//   evaluate  evaluateModel (evaluations.start): loads the model (ORT sessions, graph compile: synchronous) and
//             generates for every item
//   preview   items.preview: the model's tokenizer + template (loaded once per folder, cached in the worker) and
//             one item rendered and tokenized
//   exportGguf models.exportGguf: a model folder (+ adapter merged) written as GGUF files, tensor by tensor
//   lintLengths datasets.lint with a model: every item's conversations rendered and measured in tokens (the items are
//             read from SQLite and the findings stored on the main thread)
//   score / generateBlip / evaluateContrastive / trainFolder / embed  inference.score, BLIP's inference.generate,
//             inference.evaluate, inference.train and inference.embed on a model folder (inference-work.ts; train steps as 'step' messages)
// Errors cross the thread boundary by name + own fields and are rebuilt as the same classes (HparamsError,
// SampleError, VlmCheckError, MemoryRefusalError), so the services map them to the same typed API errors.
// Where the worker entry is not on disk (a bundle without it) or `inProcess` is set, the same work runs in this
// thread (WorkLocal). This file is also the worker's entry (built as backend-worker.js, electron.vite.config.ts).
import {
  keepItems,
  keptItems,
  nearDuplicateImages,
  searchImages,
  type EmbedOptions,
  type NearDuplicateImage,
  type SearchItem,
  type SearchOptions,
  type SearchResult,
} from '../datasets/embedding-search';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SHARE_ENV, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { WorkerHost, errorName } from '../util/worker-host';
import { checkVlmRun, MemoryRefusalError, VlmCheckError, type VlmCheck } from '../training/vlm-config';
import { HparamsError } from '../training/hparams';
import { SampleError } from '../training/batching';
import { evaluateModel, type ModelEvalOptions } from '../eval/model-eval';
import type { EvalRunResult } from '../eval/evaluate';
import { renderSetupFromFolder } from '../datasets/model-setup';
import { previewItem, type ConversationPreview } from '../datasets/render';
import { measureLengths, type ItemLengths, type LengthItem } from '../datasets/lint-lengths';
import type { ConversationOptions } from '../datasets/conversation';
import { exportGguf, GgufExportError, type GgufExportOptions, type GgufExportReport } from '../export/gguf/export';
import { ApiError } from '../contract/errors';
import {
  embedFolder,
  evaluateContrastiveFolder,
  generateBlip,
  scoreFolder,
  trainFolder,
  type EmbedOutput,
  type EvaluateOutput,
  type FolderEvaluateInput,
  type FolderGenerateInput,
  type FolderScoreInput,
  type FolderTrainInput,
  type GenerateOutput,
  type ScoreOutput,
  type TrainOutput,
} from './inference-work';

export type GgufExportInput = Omit<GgufExportOptions, 'onProgress'>;
export type EmbedInput = Omit<FolderScoreInput, 'cacheDir'>;

export type CheckInput = Parameters<typeof checkVlmRun>[0];
export type EvaluateInput = Omit<ModelEvalOptions, 'signal' | 'onProgress'>;
export interface PreviewInput {
  modelDir: string;
  item: Parameters<typeof previewItem>[0];
  opts?: Parameters<typeof previewItem>[2];
}
export interface PreviewResult {
  contextLength: number;
  conversations: ConversationPreview[];
}
export interface LintLengthsInput {
  modelDir: string;
  items: LengthItem[];
  conversation?: ConversationOptions;
}
export interface LintLengthsResult {
  /** The model's context length. */
  contextLength: number;
  /** One per item, in order. */
  lengths: ItemLengths[];
}

/** items.preview / datasets.lint: the model folder cannot give a tokenizer + template (the message is the loader's). */
export class PreviewSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PreviewSetupError';
  }
}

export interface WorkHooks {
  signal?: AbortSignal;
  onProgress?(done: number, total: number): void;
  /** A training step (trainFolder). */
  onStep?(s: { step: number; total: number; loss: number }): void;
}

/** What the services call; the same in a worker or in this thread. */
export interface WorkHost {
  check(input: CheckInput): Promise<VlmCheck>;
  evaluate(input: EvaluateInput, hooks?: WorkHooks): Promise<EvalRunResult>;
  preview(input: PreviewInput): Promise<PreviewResult>;
  lintLengths(input: LintLengthsInput): Promise<LintLengthsResult>;
  exportGguf(input: GgufExportInput, hooks?: WorkHooks): Promise<GgufExportReport>;
  embeddingSearch(input: EmbeddingSearchInput, hooks?: WorkHooks): Promise<EmbeddingSearchOutput>;
  nearDuplicateImages(
    input: NearDuplicateImagesInput,
    hooks?: WorkHooks,
  ): Promise<{ items: NearDuplicateImage[]; embedded: number }>;
  score(input: FolderScoreInput, hooks?: WorkHooks): Promise<ScoreOutput>;
  generateBlip(input: FolderGenerateInput, hooks?: WorkHooks): Promise<GenerateOutput>;
  evaluateContrastive(input: FolderEvaluateInput, hooks?: WorkHooks): Promise<EvaluateOutput>;
  trainFolder(input: FolderTrainInput, hooks?: WorkHooks): Promise<TrainOutput>;
  embed(input: EmbedInput): Promise<EmbedOutput>;
  close(): Promise<void>;
}

/** datasets.lint with an image model: items whose images embed near another's. */
export interface NearDuplicateImagesInput {
  dataDir: string;
  items: SearchItem[];
  options: EmbedOptions;
  threshold: number;
}

/** datasets.search: a dataset's image items ranked against a text or an item's image (CLIP / SigLIP). */
export interface EmbeddingSearchInput {
  dataDir: string;
  /** the dataset's image items; may be left out when `itemsKey` names a list this worker kept */
  items?: SearchItem[];
  /** identifies the item list (it changes whenever the items may have): the worker keeps the list under it */
  itemsKey?: string;
  options: SearchOptions;
}

/** The ranked items as two arrays (cheap to pass between threads), or a request for the item list. */
export type EmbeddingSearchOutput =
  | { needItems: true }
  | { needItems?: undefined; ids: Float64Array; scores: Float32Array; embedded: number; cached: number };

// ---------------------------------------------------------------- the work itself

function setupOf(modelDir: string) {
  try {
    return renderSetupFromFolder(modelDir);
  } catch (e) {
    throw new PreviewSetupError((e as Error).message);
  }
}

function preview(input: PreviewInput): PreviewResult {
  const setup = setupOf(input.modelDir);
  return { contextLength: setup.contextLength, conversations: previewItem(input.item, setup, input.opts) };
}

function lintLengths(input: LintLengthsInput): LintLengthsResult {
  const setup = setupOf(input.modelDir);
  return { contextLength: setup.contextLength, lengths: measureLengths(input.items, setup, input.conversation) };
}

/** The work in this thread (tests, bundles without the worker entry, LENSLAB_WORK_IN_PROCESS=1). */
export class WorkLocal implements WorkHost {
  async check(input: CheckInput): Promise<VlmCheck> {
    return checkVlmRun(input);
  }
  evaluate(input: EvaluateInput, hooks: WorkHooks = {}): Promise<EvalRunResult> {
    return evaluateModel({ ...input, signal: hooks.signal, onProgress: hooks.onProgress });
  }
  async preview(input: PreviewInput): Promise<PreviewResult> {
    return preview(input);
  }
  async lintLengths(input: LintLengthsInput): Promise<LintLengthsResult> {
    return lintLengths(input);
  }
  async exportGguf(input: GgufExportInput, hooks: WorkHooks = {}): Promise<GgufExportReport> {
    return exportGguf({ ...input, onProgress: (p) => hooks.onProgress?.(p.tensor, p.tensors) });
  }
  async embeddingSearch(input: EmbeddingSearchInput, hooks: WorkHooks = {}): Promise<EmbeddingSearchOutput> {
    let items: readonly SearchItem[] | null = input.items ?? null;
    if (input.itemsKey !== undefined) items = items ? keepItems(input.itemsKey, items) : keptItems(input.itemsKey);
    if (!items) return { needItems: true };
    const r: SearchResult = await searchImages(input.dataDir, items, input.options, hooks);
    const ids = new Float64Array(r.items.length);
    const scores = new Float32Array(r.items.length);
    r.items.forEach((it, i) => ((ids[i] = it.itemId), (scores[i] = it.score)));
    return { ids, scores, embedded: r.embedded, cached: r.cached };
  }
  nearDuplicateImages(
    input: NearDuplicateImagesInput,
    hooks: WorkHooks = {},
  ): Promise<{ items: NearDuplicateImage[]; embedded: number }> {
    return nearDuplicateImages(input.dataDir, input.items, input.options, input.threshold, hooks);
  }
  score(input: FolderScoreInput, hooks: WorkHooks = {}): Promise<ScoreOutput> {
    return scoreFolder(input, hooks);
  }
  generateBlip(input: FolderGenerateInput, hooks: WorkHooks = {}): Promise<GenerateOutput> {
    return generateBlip(input, hooks);
  }
  evaluateContrastive(input: FolderEvaluateInput, hooks: WorkHooks = {}): Promise<EvaluateOutput> {
    return evaluateContrastiveFolder(input, hooks);
  }
  trainFolder(input: FolderTrainInput, hooks: WorkHooks = {}): Promise<TrainOutput> {
    return trainFolder(input, hooks);
  }
  embed(input: EmbedInput): Promise<EmbedOutput> {
    return embedFolder(input);
  }
  async close(): Promise<void> {}
}

// ---------------------------------------------------------------- errors across the boundary

interface WireError {
  name: string;
  message: string;
  fields: Record<string, unknown>;
}

function toWire(e: unknown): WireError {
  const fields: Record<string, unknown> = {};
  if (e && typeof e === 'object')
    for (const [k, v] of Object.entries(e)) if (k !== 'name' && k !== 'message' && k !== 'stack') fields[k] = v;
  return { name: errorName(e), message: e instanceof Error ? e.message : String(e), fields };
}

/** Rebuild an error from the worker as its own class (so instanceof checks in the services hold). */
export function fromWire(w: WireError): Error {
  const f = w.fields as Record<string, any>;
  let e: Error;
  switch (w.name) {
    case 'HparamsError':
      e = new HparamsError(f.issues ?? []);
      break;
    case 'SampleError':
      e = new SampleError(f.problems ?? []);
      break;
    case 'VlmCheckError':
      e = new VlmCheckError(w.message, f.field);
      break;
    case 'MemoryRefusalError':
      e = new MemoryRefusalError(f.estimate);
      break;
    case 'PreviewSetupError':
      e = new PreviewSetupError(w.message);
      break;
    case 'GgufExportError':
      e = new GgufExportError(w.message, f.field);
      break;
    case 'ApiError':
      e = new ApiError(f.code ?? 'internal', w.message, f.field);
      break;
    default:
      e = Object.assign(new Error(w.message), f);
      e.name = w.name;
  }
  e.message = w.message;
  return e;
}

// ---------------------------------------------------------------- worker thread

type Op =
  | { op: 'check'; input: CheckInput }
  | { op: 'evaluate'; input: EvaluateInput }
  | { op: 'preview'; input: PreviewInput }
  | { op: 'lintLengths'; input: LintLengthsInput }
  | { op: 'exportGguf'; input: GgufExportInput }
  | { op: 'embeddingSearch'; input: EmbeddingSearchInput }
  | { op: 'nearDuplicateImages'; input: NearDuplicateImagesInput }
  | { op: 'score'; input: FolderScoreInput }
  | { op: 'generateBlip'; input: FolderGenerateInput }
  | { op: 'evaluateContrastive'; input: FolderEvaluateInput }
  | { op: 'trainFolder'; input: FolderTrainInput }
  | { op: 'embed'; input: EmbedInput };
type ToWorker = ({ t: 'call'; rid: number } & Op) | { t: 'cancel'; rid: number } | { t: 'close' };
type FromWorker =
  | { t: 'progress'; rid: number; done: number; total: number }
  | { t: 'step'; rid: number; step: number; total: number; loss: number }
  | { t: 'done'; rid: number; result: unknown }
  | { t: 'error'; rid: number; error: WireError }
  | { t: 'closed' };

const WORKER_FLAG = 'lenslabBackendWorker';

/** The worker entry's default location (this file). */
export const BACKEND_WORKER_ENTRY = fileURLToPath(import.meta.url);

export interface WorkThreadOptions {
  /** Worker entry (default this file; a .ts entry is loaded through tsx, a built .js one directly). */
  entry?: string;
  execArgv?: string[];
  /** Stop the worker (freeing its caches) after this long without requests (default 5 min). */
  idleMs?: number;
}

/** The work in a worker_thread, started on first use; it does not keep the process alive while idle. */
export class WorkThread extends WorkerHost<WorkHooks, FromWorker> implements WorkHost {
  constructor(options: WorkThreadOptions = {}) {
    super({
      entry: options.entry ?? BACKEND_WORKER_ENTRY,
      // SHARE_ENV: the worker reads this thread's environment as it is at each call (LENSLAB_MEMORY_LIMIT,
      // LENSLAB_GRAPH_CACHE), not a copy taken when it started
      worker: { workerData: { [WORKER_FLAG]: true }, execArgv: options.execArgv ?? [], env: SHARE_ENV },
      idleMs: options.idleMs ?? 5 * 60_000,
      label: 'backend worker',
    });
  }

  /** Whether a worker entry exists to start (false in a bundle without it: use WorkLocal instead). */
  static available(entry = BACKEND_WORKER_ENTRY): boolean {
    return existsSync(entry);
  }

  protected onEvent(m: FromWorker, hooks: WorkHooks): void {
    if (m.t === 'progress') hooks.onProgress?.(m.done, m.total);
    else if (m.t === 'step') hooks.onStep?.({ step: m.step, total: m.total, loss: m.loss });
  }

  protected errorOf(m: Extract<FromWorker, { t: 'error' }>): Error {
    return fromWire(m.error);
  }

  private call<T>(op: Op, hooks: WorkHooks = {}): Promise<T> {
    return this.request((rid) => ({ t: 'call', rid, ...op }) satisfies ToWorker, hooks);
  }

  check(input: CheckInput): Promise<VlmCheck> {
    return this.call({ op: 'check', input });
  }
  evaluate(input: EvaluateInput, hooks: WorkHooks = {}): Promise<EvalRunResult> {
    return this.call({ op: 'evaluate', input }, hooks);
  }
  preview(input: PreviewInput): Promise<PreviewResult> {
    return this.call({ op: 'preview', input });
  }
  lintLengths(input: LintLengthsInput): Promise<LintLengthsResult> {
    return this.call({ op: 'lintLengths', input });
  }
  exportGguf(input: GgufExportInput, hooks: WorkHooks = {}): Promise<GgufExportReport> {
    return this.call({ op: 'exportGguf', input }, hooks);
  }
  embeddingSearch(input: EmbeddingSearchInput, hooks: WorkHooks = {}): Promise<EmbeddingSearchOutput> {
    return this.call({ op: 'embeddingSearch', input }, hooks);
  }
  nearDuplicateImages(
    input: NearDuplicateImagesInput,
    hooks: WorkHooks = {},
  ): Promise<{ items: NearDuplicateImage[]; embedded: number }> {
    return this.call({ op: 'nearDuplicateImages', input }, hooks);
  }
  score(input: FolderScoreInput, hooks: WorkHooks = {}): Promise<ScoreOutput> {
    return this.call({ op: 'score', input }, hooks);
  }
  generateBlip(input: FolderGenerateInput, hooks: WorkHooks = {}): Promise<GenerateOutput> {
    return this.call({ op: 'generateBlip', input }, hooks);
  }
  evaluateContrastive(input: FolderEvaluateInput, hooks: WorkHooks = {}): Promise<EvaluateOutput> {
    return this.call({ op: 'evaluateContrastive', input }, hooks);
  }
  trainFolder(input: FolderTrainInput, hooks: WorkHooks = {}): Promise<TrainOutput> {
    return this.call({ op: 'trainFolder', input }, hooks);
  }
  embed(input: EmbedInput): Promise<EmbedOutput> {
    return this.call({ op: 'embed', input });
  }
}

function runWorker(): void {
  const port = parentPort!;
  const local = new WorkLocal();
  const controllers = new Map<number, { ac: AbortController; done: Promise<unknown> }>();
  const send = (m: FromWorker) => {
    try {
      port.postMessage(m);
    } catch (e) {
      // a result or error field that cannot be cloned: answer with the message alone
      if (m.t === 'done' || m.t === 'error')
        port.postMessage({ t: 'error', rid: m.rid, error: { ...toWire(e), fields: {} } } satisfies FromWorker);
      else throw e;
    }
  };
  port.on('message', (m: ToWorker) => {
    if (m.t === 'cancel') controllers.get(m.rid)?.ac.abort();
    else if (m.t === 'close') {
      for (const c of controllers.values()) c.ac.abort();
      void Promise.allSettled([...controllers.values()].map((c) => c.done)).finally(() => {
        send({ t: 'closed' });
        port.close();
      });
    } else if (m.t === 'call') {
      const ac = new AbortController();
      const run = (): Promise<unknown> => {
        if (m.op === 'check') return local.check(m.input);
        if (m.op === 'preview') return local.preview(m.input);
        if (m.op === 'lintLengths') return local.lintLengths(m.input);
        if (m.op === 'embed') return local.embed(m.input);
        let last = 0;
        const hooks: WorkHooks = {
          signal: ac.signal,
          onProgress: (done, total) => {
            // the service throttles what it emits; spare the port most of the messages anyway
            const now = Date.now();
            if (done === total || now - last > 100) {
              last = now;
              send({ t: 'progress', rid: m.rid, done, total });
            }
          },
        };
        if (m.op === 'exportGguf') return local.exportGguf(m.input, hooks);
        if (m.op === 'embeddingSearch') return local.embeddingSearch(m.input, hooks);
        if (m.op === 'nearDuplicateImages') return local.nearDuplicateImages(m.input, hooks);
        if (m.op === 'score') return local.score(m.input, hooks);
        if (m.op === 'generateBlip') return local.generateBlip(m.input, hooks);
        if (m.op === 'evaluateContrastive') return local.evaluateContrastive(m.input, hooks);
        if (m.op === 'trainFolder')
          return local.trainFolder(m.input, { ...hooks, onStep: (s) => send({ t: 'step', rid: m.rid, ...s }) });
        return local.evaluate(m.input, hooks);
      };
      const done = run()
        .then(
          (result) => send({ t: 'done', rid: m.rid, result }),
          (e: unknown) => send({ t: 'error', rid: m.rid, error: toWire(e) }),
        )
        .finally(() => controllers.delete(m.rid));
      controllers.set(m.rid, { ac, done });
    }
  });
}

if (!isMainThread && (workerData as Record<string, unknown> | null)?.[WORKER_FLAG]) runWorker();
